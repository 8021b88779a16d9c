"""Plot style and the one way figures are saved (``save_fig``), shared by all notebooks."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from . import config
from .results import atomic_write_bytes


def use_style() -> None:
    """The kit's plot style (readable in the HTML report). Called by notebooks' setup."""
    plt.rcParams.update({
        "figure.figsize": (7.5, 4.0), "figure.dpi": 100, "savefig.dpi": 120,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "font.size": 10,
    })


def figures_dir() -> Path:
    """``reports/figures`` (or under ``$LABKIT_REPORTS``)."""
    path = config.reports_dir() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def figure_path(name: str) -> Path:
    """Where :func:`save_fig` writes figure ``name``: ``reports/figures/<name>.png``. Used by the tests."""
    return figures_dir() / f"{name}.png"


def figure_caption(fig: "matplotlib.figure.Figure") -> str:
    """A caption for ``fig`` from its own titles: the figure title, else the axes titles (first three)."""
    suptitle = fig.get_suptitle().strip()
    if suptitle:
        return suptitle
    titles = [t for ax in fig.axes if (t := ax.get_title().strip())]
    return " · ".join(titles[:3]) + (" …" if len(titles) > 3 else "")


def save_fig(fig: "matplotlib.figure.Figure", name: str, *, show: bool = True, caption: str | None = None) -> None:
    """Save ``fig`` as ``reports/figures/<name>.png`` (atomically) and show it inline. Used by every notebook.

    The PNG carries a caption (``caption``, else the figure's own titles) and the notebook that made it
    in its metadata; the report's index shows both under the thumbnail. Returns nothing, so that a
    call ending a cell leaves no stray ``Out[n]:`` in the notebook (the file is :func:`figure_path`).
    """
    import os

    buf = io.BytesIO()
    text = caption if caption is not None else figure_caption(fig)
    fig.savefig(buf, format="png", bbox_inches="tight",
                metadata={"Title": text, "Source": os.environ.get("LABKIT_NOTEBOOK", "")})
    atomic_write_bytes(figure_path(name), buf.getvalue())
    if show:
        try:
            from IPython.display import display

            from IPython import get_ipython

            if get_ipython() is not None:
                display(fig)
        except ImportError:  # pragma: no cover
            pass
    plt.close(fig)


def twin_series(frame, columns: list[str], *, title: str = "") -> tuple["matplotlib.figure.Figure", list]:
    """Plot two columns of a time-indexed frame on twin y axes (e.g. temperature and humidity). Used by notebook 00."""
    if len(columns) != 2:
        raise ValueError("twin_series plots exactly two columns")
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax2 = ax.twinx()
    ax.plot(frame.index, frame[columns[0]], color="tab:red", lw=1.2, label=columns[0])
    ax2.plot(frame.index, frame[columns[1]], color="tab:blue", lw=1.2, label=columns[1])
    ax.set_ylabel(columns[0], color="tab:red")
    ax2.set_ylabel(columns[1], color="tab:blue")
    ax2.grid(False)
    ax.set_title(title)
    fig.autofmt_xdate()
    return fig, [ax, ax2]


# --------------------------------------------------------------------------------------------
# Audio views (waveform / FFT / spectrogram / log-mel / MFCC) and preprocessing cost.
# Used by notebook 01; they take arrays from labkit.features and never compute features.
# --------------------------------------------------------------------------------------------
AUDIO_PANELS: tuple[str, ...] = ("waveform", "fft", "spectrogram", "logmel", "mfcc")
"""The panels :func:`audio_views` can draw, left to right."""


def _audio_panel(ax, v, panel: str, title: str) -> None:
    """Draw one panel of one clip (few fixed ticks: tick and text layout dominate drawing time)."""
    import numpy as np

    cfg, sr = v.cfg, v.sample_rate
    duration = cfg.frame_step * (len(v.spectrogram_db) - 1) / sr + cfg.frame_length / sr
    if panel == "waveform":
        ax.plot(np.arange(len(v.waveform)) / sr, v.waveform, lw=0.5)
        ax.set(title=f"{title}: waveform", xlabel="time (s)", ylim=(-1.0, 1.0), yticks=[-1, 0, 1],
               xticks=np.linspace(0, len(v.waveform) / sr, 3).round(2))
        return
    if panel == "fft":
        ax.plot(v.fft_freqs / 1000.0, v.fft_db, lw=0.5)
        ax.set(title="FFT magnitude (dB)", xlabel="frequency (kHz)", ylim=(-80, 2), yticks=[-80, -40, 0],
               xticks=np.linspace(0, sr / 2000.0, 5))
        return
    if panel == "spectrogram":
        img, name, (lo, hi), ylabel, kw = v.spectrogram_db, "spectrogram (dB, -80..0)", (0, sr / 2000.0), "kHz", \
            dict(vmin=-80, vmax=0, cmap="magma")
        ticks = np.linspace(lo, hi, 3)
    elif panel == "logmel":
        n = v.log_mel.shape[1]
        img, name, (lo, hi), ylabel, kw = v.log_mel, f"log-mel ({n} bins)", (0, n), "mel bin", dict(cmap="magma")
        ticks = np.linspace(lo, hi, 3)
    elif panel == "mfcc":
        n = v.mfcc.shape[1]
        # Colour range from c1.. (c0, the log-energy, is an order of magnitude larger and is clipped).
        lim = float(np.abs(v.mfcc[:, 1:] if n > 1 else v.mfcc).max()) or 1.0
        img, name, (lo, hi), ylabel, kw = v.mfcc, f"MFCC ({n} coeff., c0 clipped)", (-0.5, n - 0.5), \
            "coefficient", dict(vmin=-lim, vmax=lim, cmap="coolwarm")
        ticks = [0, (n - 1) // 2, n - 1]
    else:
        raise ValueError(f"unknown panel {panel!r}; choose from {AUDIO_PANELS}")
    ax.imshow(img.T, origin="lower", aspect="auto", extent=(0, duration, lo, hi), interpolation="nearest", **kw)
    label = f"{title}: {name}" if ax.get_subplotspec().colspan.start == 0 else name
    ax.set(title=label, xlabel="time (s)", ylabel=ylabel, yticks=np.round(ticks, 1),
           xticks=np.linspace(0, duration, 3).round(2))
    ax.grid(False)


def audio_views(views: "dict[str, object]", *, panels: "tuple[str, ...]" = AUDIO_PANELS, width: float = 15.0,
                row_height: float = 2.1) -> "plt.Figure":
    """One row per clip (``{title: features.AudioViews}``), panels side by side: by default waveform,
    whole-clip FFT magnitude, linear spectrogram, log-mel spectrogram and MFCC (see
    :data:`AUDIO_PANELS`). Used by notebook 01."""
    if not views:
        raise ValueError("audio_views needs at least one clip: {title: features.views(clip)}")
    n = len(views)
    fig, axes = plt.subplots(n, len(panels), figsize=(width * len(panels) / 5, row_height * n), squeeze=False)
    # Fixed margins instead of tight_layout (which costs a full extra draw of up to ~50 axes).
    fig.subplots_adjust(left=0.2 / len(panels), right=0.99, wspace=0.32, top=1 - 0.35 / (row_height * n),
                        bottom=0.45 / (row_height * n), hspace=0.9)
    for row, (title, v) in zip(axes, views.items()):
        for ax, panel in zip(row, panels):
            _audio_panel(ax, v, panel, title)
    return fig


def audio_gallery(views: "dict[str, object]", fig: "plt.Figure | None" = None, *, dpi: int = 72) -> "object":
    """An HTML table: for each clip an audio player next to its row of :func:`audio_views` panels
    (``fig``, drawn once and cut into rows; made here if not given). Plain HTML with embedded WAV and
    PNG, so it also plays in the static report. Used by notebook 01."""
    import base64

    import numpy as np
    from IPython.display import HTML, Audio

    own = fig is None
    fig = audio_views(views) if own else fig
    saved_dpi = fig.dpi
    fig.set_dpi(dpi)
    try:
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())
        renderer = fig.canvas.get_renderer()
        height = pixels.shape[0]
        tops = []
        for row in np.asarray(fig.axes).reshape(len(views), -1):
            boxes = [ax.get_tightbbox(renderer) for ax in row]
            tops.append((max(b.y1 for b in boxes), min(b.y0 for b in boxes)))
    finally:
        fig.set_dpi(saved_dpi)
        if own:
            plt.close(fig)
    rows = []
    for (title, v), (top, bottom) in zip(views.items(), tops):
        crop = pixels[max(0, int(height - top) - 2): min(height, int(height - bottom) + 2)]
        buf = io.BytesIO()
        plt.imsave(buf, crop, format="png")
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        player = Audio(v.waveform, rate=v.sample_rate)._repr_html_()
        rows.append(f"<tr><td style='vertical-align:middle;text-align:left'><b>{title}</b><br>{player}</td>"
                    f"<td><img style='max-width:100%' src='data:image/png;base64,{png}'></td></tr>")
    return HTML("<table>" + "".join(rows) + "</table>")


def mel_filters(matrix: "object", sample_rate: int = 16000, *, title: str = "") -> "plt.Figure":
    """The triangular mel filters (``features.mel_matrix(cfg)``, shape ``(bins, mel_bins)``) over
    frequency: narrow and dense at low frequencies, wide and sparse at high ones. Used by notebook 01."""
    import numpy as np

    matrix = np.asarray(matrix)
    freqs = np.linspace(0.0, sample_rate / 2000.0, matrix.shape[0])
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.plot(freqs, matrix, lw=0.8)
    ax.set(xlabel="frequency (kHz)", ylabel="weight",
           title=title or f"{matrix.shape[1]} mel filters (each line is one band)")
    fig.tight_layout()
    return fig


def cost_bars(table: "object", *, value: str = "ms_per_clip", log: bool = True) -> "plt.Figure":
    """Grouped bar chart of ``features.cost_table`` rows: one group per pipeline, one bar per mode.
    Used by notebook 01."""
    import numpy as np

    pivot = table.pivot_table(index="pipeline", columns="mode", values=value, sort=False)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / max(1, len(pivot.columns))
    x = np.arange(len(pivot.index))
    for i, mode in enumerate(pivot.columns):
        bars = ax.bar(x + (i - (len(pivot.columns) - 1) / 2) * width, pivot[mode].to_numpy(), width, label=mode)
        ax.bar_label(bars, fmt="%.2g", fontsize=7, padding=1)
    ax.set_xticks(x, [f"{p}" for p in pivot.index])
    ax.set(ylabel=f"{value.replace('_', ' ')} (median)", title="Preprocessing cost per 1 s clip")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(top=float(np.nanmax(pivot.to_numpy())) * 10)  # room for the legend above the bars
    ax.legend(ncol=len(pivot.columns), fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- training (notebooks 03-04)
def training_curves(histories: "dict[str, dict[str, list[float]]]", *, metric: str = "accuracy",
                    title: str = "", ncols: int = 4) -> "matplotlib.figure.Figure":
    """One small panel per run: ``metric`` per epoch for training (solid) and validation (dashed),
    with the best validation epoch marked. ``histories`` maps a run name to a Keras-style history
    (``TrainResult.history``). Used by notebooks 03 and 04.
    """
    import numpy as np

    n = len(histories)
    if n == 0:
        raise ValueError("training_curves needs at least one history")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), sharey=True, squeeze=False)
    for ax, (name, hist) in zip(axes.flat, histories.items()):
        if metric not in hist:
            raise KeyError(f"history of {name!r} has no {metric!r}; it has {sorted(hist)}")
        epochs = np.arange(1, len(hist[metric]) + 1)
        ax.plot(epochs, hist[metric], color="tab:blue", lw=1.4, label="train")
        val = hist.get(f"val_{metric}")
        if val is not None:
            ax.plot(epochs, val, color="tab:orange", lw=1.4, ls="--", label="validation")
            best = int(np.argmax(val) if metric in ("accuracy", "acc") else np.argmin(val))
            ax.plot(epochs[best], val[best], "o", color="tab:orange", ms=5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel(metric)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(cm, labels: "list[str]", *, title: str = "", normalize: bool = True
                     ) -> "matplotlib.figure.Figure":
    """A confusion matrix (rows = true label, columns = predicted), row-normalised by default, with
    the counts written in each cell. Used by notebooks 03 and 05."""
    import numpy as np

    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    size = max(4.0, 0.45 * len(labels) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.grid(False)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true label" if normalize else "count")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def forecast_vs_truth(truth, predictions: "dict[str, object]", target_names: "list[str]", *, index=None,
                      step: int = 0, title: str = "") -> "matplotlib.figure.Figure":
    """Truth and each model's forecast ``step`` steps ahead (0 = the next step), one panel per target.

    ``truth`` and each prediction are ``(N, steps, targets)`` arrays in real units over consecutive
    windows; ``index`` (e.g. timestamps) labels the x axis. Used by notebook 04.
    """
    import numpy as np

    truth = np.asarray(truth)
    x = np.arange(len(truth)) if index is None else index
    fig, axes = plt.subplots(len(target_names), 1, figsize=(10, 2.6 * len(target_names)), sharex=True)
    axes = np.atleast_1d(axes)
    for j, (ax, name) in enumerate(zip(axes, target_names)):
        ax.plot(x, truth[:, step, j], color="black", lw=1.8, label="truth")
        for name_p, pred in predictions.items():
            ax.plot(x, np.asarray(pred)[:, step, j], lw=1.1, alpha=0.85,
                    ls=":" if name_p == "persistence" else "-", label=name_p)
        ax.set_ylabel(name)
    axes[0].legend(fontsize=8, ncol=len(predictions) + 1, loc="upper left")
    axes[-1].set_xlabel("time" if index is not None else "window")
    if index is not None:
        fig.autofmt_xdate()
    fig.suptitle(title or f"forecast {step + 1} step(s) ahead vs truth")
    fig.tight_layout()
    return fig


def forecast_step_errors(metrics: "dict[str, dict]", *, targets: "tuple[str, ...]" = ("T", "RH"),
                         units: "tuple[str, ...]" = ("degC", "%RH"), step_label: str = "step",
                         title: str = "") -> "matplotlib.figure.Figure":
    """MAE per forecast step for each model (``metrics[name]["T_mae_steps"]`` ...) with persistence
    (``"persist_T_mae_steps"`` of the first model) dashed, one panel per target. Used by notebook 04."""
    fig, axes = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 3.4))
    axes = [axes] if len(targets) == 1 else list(axes)
    first = next(iter(metrics.values()))
    for ax, t, unit in zip(axes, targets, units):
        persist = first[f"persist_{t}_mae_steps"]
        steps = range(1, len(persist) + 1)
        ax.plot(steps, persist, color="black", ls="--", marker="o", ms=3, label="persistence")
        for name, m in metrics.items():
            ax.plot(steps, m[f"{t}_mae_steps"], marker="o", ms=3, label=name)
        ax.set_xlabel(step_label)
        ax.set_ylabel(f"{t} MAE ({unit})")
        ax.set_xticks(list(steps))
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- conversion (notebook 05)
def latency_breakdown(frames: "object", *, title: str = "Latency per prediction (LiteRT, batch 1, 1 thread)"
                      ) -> "matplotlib.figure.Figure":
    """Stacked horizontal bars of ``bench.latency_breakdown`` rows: one bar per (model, mode), one
    segment per stage (preprocessing, inference, post-processing; medians in ms), with the end-to-end
    ``total`` written at the end of each bar. ``frames`` is one DataFrame or ``{panel title: DataFrame}``
    (one panel each, with its own time axis, e.g. keyword spotting vs forecasting). Used by notebook 05."""
    panels = dict(frames) if isinstance(frames, dict) else {"": frames}
    pivots = {}
    for name, frame in panels.items():
        pivots[name] = frame.pivot_table(index=["model", "mode"], columns="stage", values="ms", sort=False)
    heights = [0.38 * len(p) + 0.9 for p in pivots.values()]
    fig, axes = plt.subplots(len(pivots), 1, figsize=(8.5, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    colors = {"preprocessing": "tab:orange", "inference": "tab:blue", "postprocessing": "tab:green"}
    for ax, (name, pivot) in zip(axes[:, 0], pivots.items()):
        labels = [f"{m} · {md}" if md else str(m) for m, md in pivot.index]
        y = list(range(len(pivot)))[::-1]
        left = [0.0] * len(pivot)
        for stage in [s for s in colors if s in pivot.columns]:
            vals = pivot[stage].fillna(0.0).to_list()
            ax.barh(y, vals, left=left, color=colors[stage], label=stage, height=0.7)
            left = [a + b for a, b in zip(left, vals)]
        if "total" in pivot.columns:
            for yi, end, tot in zip(y, left, pivot["total"].to_list()):
                ax.text(end, yi, f" total {tot:.3g} ms", va="center", fontsize=7)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlim(0, max(left) * 1.2 if left and max(left) > 0 else 1)
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("median ms per prediction")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(names), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.955))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
