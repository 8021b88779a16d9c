"""Interactive widgets of the notebooks (live in Jupyter and Colab; the static HTML report shows none).

:func:`explorer` lets a student change the framing and mel settings of the audio features and see and
hear the result (notebook 01). It draws with ``labkit.plots`` and computes with ``labkit.features``.
"""
from __future__ import annotations

import io
from typing import Any, Mapping

import numpy as np

from . import colab, features, plots

__all__ = ["explorer"]


def explorer(clips: Mapping[str, np.ndarray], *, cfg: str | features.FeatureConfig = "mfcc_a") -> Any:
    """An ipywidgets explorer: pick a word and clip, change frame length / step and mel bins, and see
    (and hear) the waveform, spectrogram, log-mel and MFCC update. ``clips`` is ``{word: (k, samples)}``
    (e.g. from ``features.pick_examples``). Live only in Jupyter / Colab; static HTML shows no widget.
    Used by notebook 01."""
    import ipywidgets as w
    from IPython.display import Audio, Image

    colab.enable_widgets()  # ipywidgets 8 on Colab needs its custom widget manager
    base = features.get(cfg)
    if not clips:
        raise ValueError("explorer needs at least one clip: clips = {word: array (k, num_samples)}")
    words = list(clips)
    word = w.Dropdown(options=words, value=words[0], description="word")
    index = w.IntSlider(0, 0, len(clips[words[0]]) - 1, description="clip")
    frame0, step0 = (round(n * 1000 / base.sample_rate) for n in (base.frame_length, base.frame_step))
    frame_ms = w.SelectionSlider(options=sorted({16, 20, 25, 30, 40, 64, 128, frame0}), value=frame0,
                                 description="frame ms")
    step_ms = w.SelectionSlider(options=sorted({8, 10, 16, 20, 25, 32, 64, step0}), value=step0,
                                description="step ms")
    mels = w.IntSlider(base.num_mel_bins, 8, 80, step=4, description="mel bins")
    out = w.Output()

    def render(*_: Any) -> None:
        index.max = len(clips[word.value]) - 1
        c = base.replace(frame_length=frame_ms.value * base.sample_rate // 1000,
                         frame_step=step_ms.value * base.sample_rate // 1000, fft_length=None,
                         num_mel_bins=mels.value, num_coefficients=min(base.num_coefficients, mels.value))
        clip = clips[word.value][index.value]
        fig = plots.audio_views({f"{word.value} #{index.value}": features.views(clip, c)})
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=72)
        plots.plt.close(fig)
        # Set the Output widget's content directly (no `with out:` capture): simpler and thread-safe.
        out.outputs = ()
        out.append_display_data(Audio(clip, rate=c.sample_rate))
        out.append_display_data(Image(png.getvalue()))
        out.append_stdout(features.describe(c) + "\n")

    for widget in (word, index, frame_ms, step_ms, mels):
        widget.observe(render, names="value")
    render()
    return w.VBox([w.HBox([word, index]), w.HBox([frame_ms, step_ms, mels]), out])
