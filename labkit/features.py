"""Audio features for keyword spotting: STFT magnitude, log-mel spectrogram and MFCC in ``tf.signal``.

Everything the models see is computed by one TensorFlow function per :class:`FeatureConfig`, so the
same code runs in ``tf.data`` pipelines, in batch (:func:`compute`) and in latency measurements
(:func:`tf_fn`).  :func:`librosa_features` recomputes each feature with librosa as an independent
reference, and :func:`cost_table` measures what each pipeline costs per clip.

The pipeline (``kind`` selects where it stops)::

    waveform (16000,) float32 in [-1, 1]
      -> frames of ``frame_length`` samples every ``frame_step`` (no padding: T = 1 + (16000 - L) // S)
      -> periodic Hann window, zero-padded to ``fft_length``, |rFFT|          = "stft"   (T, fft/2+1)
         (optionally bilinear-resized, e.g. to 32x32)
      -> x HTK mel filterbank (triangles linear in mel, DC bin zeroed)
      -> log(mel + log_offset)                                                 = "logmel" (T, mel_bins)
      -> DCT-II scaled by 1/sqrt(2 * mel_bins), first ``num_coefficients``      = "mfcc"   (T, coeffs)

The spectrogram is a *magnitude* (power 1) spectrogram, as in the course and the TensorFlow audio
tutorials; librosa's defaults use power 2.

Parity with librosa (:func:`librosa_features`, :func:`parity`): with the same frames, window, mel
triangles and DCT scaling, the two implementations differ only by float32 round-off. Largest
absolute difference per clip, measured over the 3,066 real Speech Commands clips of the developers'
test set (median / 99th percentile / max): "stft" 7.9e-5 / 3.2e-4 / 7.1e-4 (log magnitudes -6.9..~3.5;
on raw magnitudes 4.8e-7 / 3.8e-6 / 7.6e-6),
"logmel" 3.1e-5 / 3.6e-4 / 2.4e-3 (values -13.8..~5), "mfcc_a" 8.2e-6 / 7.0e-5 / 1.9e-4 and
"mfcc_b" 3.8e-6 / 3.1e-5 / 2.8e-3 (MFCC values -124..~28). The largest log-domain differences sit in
mel bands holding almost no energy next to a loud band of the same frame, where log() magnifies the
FFT's float32 round-off. :data:`PARITY_ATOL` states the tolerances the tests enforce. librosa's own
``filters.mel(htk=True)`` (triangles linear in Hz) differs by 0.01-0.04 on the same clips.

Input conventions (checked by :func:`compute`, :func:`tf_fn` and :func:`librosa_features`):
float waveforms of exactly ``cfg.num_samples`` samples (1 s at 16 kHz), shape ``(num_samples,)`` or
``(N, num_samples)``; a trailing channel axis of size 1 is squeezed; float64 is cast to float32.
Integer PCM, stereo, wrong lengths and unscaled values (|x| > 8) raise an error that says how to fix
the input (``labkit.data`` loaders already return float32 clips of 16000 samples in [-1, 1]).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import tensorflow as tf

KINDS: tuple[str, ...] = ("stft", "logmel", "mfcc")
"""The feature kinds, in pipeline order."""

PARITY_ATOL: dict[str, float] = {"stft": 1e-3, "logmel": 5e-3, "mfcc": 5e-3}
"""Max absolute difference allowed between tf.signal and librosa features, per kind (tests enforce it)."""

MAX_ABS_VALUE = 8.0
"""Waveforms with larger values are rejected as unscaled PCM (float waveforms live in [-1, 1])."""


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Settings of one feature pipeline (hashable, so it can key caches). Used by notebooks 01-08.

    Lengths are in samples at ``sample_rate``. ``fft_length=None`` means the next power of two
    >= ``frame_length``. Mel fields are ignored by ``kind="stft"``; ``num_coefficients`` only
    matters for ``kind="mfcc"``. ``resize=(H, W)`` bilinearly resizes the (T, F) image.
    """

    kind: str = "mfcc"
    frame_length: int = 640
    frame_step: int = 320
    fft_length: int | None = None
    num_mel_bins: int = 40
    lower_edge_hz: float = 20.0
    upper_edge_hz: float = 4000.0
    num_coefficients: int = 10
    resize: tuple[int, int] | None = None
    sample_rate: int = 16000
    num_samples: int = 16000
    log_offset: float = 1e-6
    log_magnitude: bool = False  # kind="stft" only: log(|STFT| + log_offset), as int8 inputs need a compressed range

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"FeatureConfig.kind={self.kind!r}; choose one of {KINDS}")
        if self.fft_length is None:
            object.__setattr__(self, "fft_length", 1 << max(0, int(self.frame_length) - 1).bit_length())
        if self.resize is not None:
            object.__setattr__(self, "resize", tuple(int(v) for v in self.resize))
            if len(self.resize) != 2 or min(self.resize) < 1:
                raise ValueError(f"FeatureConfig.resize={self.resize!r}; use None or (height, width) > 0")
        if not 1 <= self.frame_length <= self.num_samples:
            raise ValueError(f"frame_length={self.frame_length} must be in [1, num_samples={self.num_samples}]")
        if self.frame_step < 1:
            raise ValueError(f"frame_step={self.frame_step} must be >= 1")
        if self.fft_length < self.frame_length:
            raise ValueError(f"fft_length={self.fft_length} must be >= frame_length={self.frame_length}")
        if self.kind != "stft":
            nyquist = self.sample_rate / 2
            if not 0 <= self.lower_edge_hz < self.upper_edge_hz <= nyquist:
                raise ValueError(f"need 0 <= lower_edge_hz ({self.lower_edge_hz}) < upper_edge_hz "
                                 f"({self.upper_edge_hz}) <= sample_rate / 2 ({nyquist})")
            if self.num_mel_bins < 1:
                raise ValueError(f"num_mel_bins={self.num_mel_bins} must be >= 1")
        if self.kind == "mfcc" and not 1 <= self.num_coefficients <= self.num_mel_bins:
            raise ValueError(f"num_coefficients={self.num_coefficients} must be in [1, num_mel_bins="
                             f"{self.num_mel_bins}]")

    @property
    def num_frames(self) -> int:
        """Frames per clip without padding: ``1 + (num_samples - frame_length) // frame_step``."""
        return 1 + (self.num_samples - self.frame_length) // self.frame_step

    @property
    def num_spectrogram_bins(self) -> int:
        """rFFT bins: ``fft_length // 2 + 1``."""
        return self.fft_length // 2 + 1

    def replace(self, **changes: Any) -> "FeatureConfig":
        """A copy with some fields changed (e.g. ``cfg.replace(num_mel_bins=32)``)."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, FeatureConfig] = {
    # The course's MFCC: 40 ms / 20 ms frames, 40 mel bins over 20-4000 Hz, 10 coefficients -> 49x10.
    "mfcc_a": FeatureConfig("mfcc", 640, 320, 1024, 40, 20.0, 4000.0, 10),
    # A coarser MFCC: 64 ms / 25 ms frames, 16 mel bins -> 38x10 (fewer, wider frames; cheaper).
    "mfcc_b": FeatureConfig("mfcc", 1024, 400, 1024, 16, 20.0, 4000.0, 10),
    # TinyConv's input: micro_speech's framing (30 ms window, 20 ms step) and its 40 channels over
    # 125-7500 Hz -> 49x40. Plain log-mel: micro_speech's noise reduction / PCAN / int8 scaling are not applied.
    "logmel": FeatureConfig("logmel", 480, 320, 512, 40, 125.0, 7500.0, 10),
    # The course's STFT input for the CNN: 16 ms / 8 ms frames -> 124x129 magnitude, resized to 32x32.
    # Log-compressed: raw magnitudes span 0..~30 with most energy near 0, and an int8 input
    # quantized over that range loses 20-40 points of top-1 (measured: DS-CNN 84 % -> 44 %).
    "stft": FeatureConfig("stft", 256, 128, 256, resize=(32, 32), log_magnitude=True, log_offset=1e-3),
}
"""Named feature settings; ``get(name)`` returns one."""


def get(name_or_cfg: str | FeatureConfig) -> FeatureConfig:
    """A preset by name (``"mfcc_a"``, ``"mfcc_b"``, ``"logmel"``, ``"stft"``) or the config itself.
    Used by notebooks 01-08."""
    if isinstance(name_or_cfg, FeatureConfig):
        return name_or_cfg
    try:
        return PRESETS[name_or_cfg]
    except (KeyError, TypeError):
        raise ValueError(f"unknown feature preset {name_or_cfg!r}; choose one of {sorted(PRESETS)} "
                         "or pass a FeatureConfig") from None


def preset_name(cfg: str | FeatureConfig) -> str | None:
    """The preset name of ``cfg`` if it equals a preset, else ``None``. Used by notebook 01."""
    cfg = get(cfg)
    return next((name for name, preset in PRESETS.items() if preset == cfg), None)


def output_shape(cfg: str | FeatureConfig) -> tuple[int, int, int]:
    """Shape ``(T, F, 1)`` of one clip's features (the model input shape). Used by notebooks 01-08."""
    cfg = get(cfg)
    if cfg.resize is not None:
        return (cfg.resize[0], cfg.resize[1], 1)
    width = {"stft": cfg.num_spectrogram_bins, "logmel": cfg.num_mel_bins, "mfcc": cfg.num_coefficients}
    return (cfg.num_frames, width[cfg.kind], 1)


def describe(cfg: str | FeatureConfig) -> str:
    """One paragraph saying what ``cfg`` computes, in samples and milliseconds. Used by notebook 01."""
    cfg = get(cfg)
    ms = 1000.0 / cfg.sample_rate
    name = preset_name(cfg)
    parts = [
        f"{name or 'custom'} ({cfg.kind}): {cfg.frame_length}-sample ({cfg.frame_length * ms:.1f} ms) "
        f"periodic Hann frames every {cfg.frame_step} samples ({cfg.frame_step * ms:.1f} ms), no padding "
        f"-> {cfg.num_frames} frames; {cfg.fft_length}-point FFT -> {cfg.num_spectrogram_bins} magnitude bins",
    ]
    if cfg.kind == "stft" and cfg.log_magnitude:
        parts.append(f"log(|X| + {cfg.log_offset:g})")
    if cfg.kind != "stft":
        parts.append(f"{cfg.num_mel_bins} HTK mel bands over {cfg.lower_edge_hz:g}-{cfg.upper_edge_hz:g} Hz, "
                     f"log(x + {cfg.log_offset:g})")
    if cfg.kind == "mfcc":
        parts.append(f"DCT-II -> first {cfg.num_coefficients} coefficients")
    if cfg.resize is not None:
        parts.append(f"bilinear resize to {cfg.resize[0]}x{cfg.resize[1]}")
    shape = output_shape(cfg)
    parts.append(f"output {shape[0]}x{shape[1]}x1 = {shape[0] * shape[1]:,} values per clip")
    return "; ".join(parts) + "."


def presets_table() -> "pd.DataFrame":
    """Every preset with its kind, model input shape, values per clip and :func:`describe` text.
    Used by notebook 01."""
    import pandas as pd

    rows = []
    for name, cfg in PRESETS.items():
        shape = output_shape(cfg)
        rows.append({"preset": name, "kind": cfg.kind, "input shape": "x".join(map(str, shape)),
                     "values per clip": shape[0] * shape[1], "what it computes": describe(cfg)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
def _check_waveforms(waveforms: Any, cfg: FeatureConfig) -> np.ndarray:
    """Validate and convert NumPy-like input to float32 ``(N, num_samples)`` (or ``(num_samples,)``)."""
    x = np.asarray(waveforms)
    if x.dtype == object or (x.size == 0 and x.shape != (0, cfg.num_samples)):
        raise ValueError(f"waveforms must be a numeric array of shape ({cfg.num_samples},) or "
                         f"(N, {cfg.num_samples}); got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        hint = " (int16 PCM: x.astype(np.float32) / 32768)" if np.issubdtype(x.dtype, np.integer) else ""
        raise TypeError(f"waveforms have dtype {x.dtype}; features need float waveforms in [-1, 1]{hint}. "
                        "labkit.data loaders already return float32.")
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 3 or (x.ndim == 2 and x.shape[0] == cfg.num_samples and x.shape[1] <= 8):
        raise ValueError(f"waveforms of shape {x.shape} look multi-channel (stereo); features need mono: "
                         "average the channels first, e.g. x.mean(axis=-1)")
    if x.ndim not in (1, 2):
        raise ValueError(f"waveforms must have shape (num_samples,) or (N, num_samples); got {x.shape}")
    if x.shape[-1] != cfg.num_samples:
        raise ValueError(f"waveforms have {x.shape[-1]} samples per clip but this FeatureConfig expects "
                         f"{cfg.num_samples} ({cfg.num_samples / cfg.sample_rate:g} s at {cfg.sample_rate} Hz); "
                         "pad or crop the clips first (labkit.data loaders return exactly 1 s)")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not math.isfinite(peak):
        raise ValueError("waveforms contain NaN or infinite values")
    if peak > MAX_ABS_VALUE:
        raise ValueError(f"waveforms reach |x| = {peak:g}; float waveforms must be scaled to [-1, 1] "
                         "(for int16 PCM divide by 32768)")
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# TensorFlow pipeline
# --------------------------------------------------------------------------------------------
def mel_matrix(cfg: str | FeatureConfig) -> np.ndarray:
    """TensorFlow's HTK mel filterbank for ``cfg``, shape ``(fft_length // 2 + 1, num_mel_bins)``.
    Used by notebook 01."""
    import tensorflow as tf

    cfg = get(cfg)
    return tf.signal.linear_to_mel_weight_matrix(
        cfg.num_mel_bins, cfg.num_spectrogram_bins, cfg.sample_rate, cfg.lower_edge_hz, cfg.upper_edge_hz
    ).numpy()


def _extract(waveforms: "tf.Tensor", cfg: FeatureConfig) -> "tf.Tensor":
    """The TF graph of one feature pipeline: ``(..., num_samples)`` -> ``(..., T, F, 1)``."""
    import tensorflow as tf

    x = tf.convert_to_tensor(waveforms)
    if x.dtype.is_integer or x.dtype.is_bool:
        raise TypeError(f"waveforms have dtype {x.dtype.name}; features need float waveforms in [-1, 1] "
                        "(int16 PCM: tf.cast(x, tf.float32) / 32768)")
    if x.shape.rank is None:
        raise ValueError("waveforms have an unknown rank; give them a static shape (num_samples,) or "
                         "(batch, num_samples), e.g. with tf.ensure_shape")
    if x.shape.rank not in (1, 2):
        raise ValueError(f"waveforms must have shape (num_samples,) or (batch, num_samples); got {x.shape} "
                         "(multi-channel audio: average the channels first)")
    if x.shape[-1] is not None and x.shape[-1] != cfg.num_samples:
        raise ValueError(f"waveforms have {x.shape[-1]} samples per clip; this FeatureConfig expects "
                         f"{cfg.num_samples}: pad or crop the clips first")
    x = tf.cast(x, tf.float32)
    if x.shape[-1] is None:
        x = tf.ensure_shape(x, [None] * (x.shape.rank - 1) + [cfg.num_samples])
    stft = tf.signal.stft(x, frame_length=cfg.frame_length, frame_step=cfg.frame_step,
                          fft_length=cfg.fft_length, window_fn=tf.signal.hann_window, pad_end=False)
    feats = tf.abs(stft)
    if cfg.kind == "stft" and cfg.log_magnitude:
        feats = tf.math.log(feats + cfg.log_offset)
    if cfg.kind != "stft":
        mel = tf.signal.linear_to_mel_weight_matrix(
            cfg.num_mel_bins, cfg.num_spectrogram_bins, cfg.sample_rate, cfg.lower_edge_hz, cfg.upper_edge_hz)
        feats = tf.math.log(tf.tensordot(feats, mel, 1) + cfg.log_offset)
        if cfg.kind == "mfcc":
            feats = tf.signal.mfccs_from_log_mel_spectrograms(feats)[..., : cfg.num_coefficients]
    feats = feats[..., tf.newaxis]
    if cfg.resize is not None:
        feats = tf.image.resize(feats, cfg.resize, method="bilinear")
    return feats


@functools.lru_cache(maxsize=32)
def _cached_tf_fn(cfg: FeatureConfig) -> Callable:
    import tensorflow as tf

    # One trace per input shape (a clip, a batch, the last partial batch): no reduce_retracing, which
    # would relax the signature to an unknown rank once clips and batches are mixed.
    return tf.function(functools.partial(_extract, cfg=cfg))


def tf_fn(cfg: str | FeatureConfig) -> Callable[["tf.Tensor"], "tf.Tensor"]:
    """A ``tf.function`` mapping a ``(num_samples,)`` clip or a ``(B, num_samples)`` batch to features
    ``(T, F, 1)`` / ``(B, T, F, 1)``; use it in ``tf.data`` ``.map`` or to time one inference's
    preprocessing. One function per config (cached). Used by notebooks 01-03."""
    return _cached_tf_fn(get(cfg))


def compute(
    waveforms: Any,
    cfg: str | FeatureConfig,
    *,
    batch_size: int = 256,
    progress: bool | None = None,
) -> np.ndarray:
    """Features of ``(N, num_samples)`` float waveforms as a float32 array ``(N, T, F, 1)``
    (a single ``(num_samples,)`` clip gives ``(1, T, F, 1)``). Batched through :func:`tf_fn`; shows
    tqdm progress when there are more than 8 batches (or when ``progress=True``). Used by notebooks 01-08."""
    cfg = get(cfg)
    x = _check_waveforms(waveforms, cfg)
    if x.ndim == 1:
        x = x[None]
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    fn = tf_fn(cfg)
    starts = range(0, len(x), batch_size)
    if progress is None:
        progress = len(starts) > 8
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"features {preset_name(cfg) or cfg.kind}", unit="batch")
    out = np.empty((len(x), *output_shape(cfg)), dtype=np.float32)
    for i in starts:
        chunk = x[i : i + batch_size]
        if len(chunk) < batch_size and len(x) > batch_size:  # pad the last batch: no retrace per dataset size
            chunk = np.concatenate([chunk, np.zeros((batch_size - len(chunk), x.shape[1]), np.float32)])
        out[i : i + batch_size] = fn(chunk).numpy()[: len(out) - i]
    return out


# --------------------------------------------------------------------------------------------
# librosa reference
# --------------------------------------------------------------------------------------------
def _htk_mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """tf.signal's HTK filterbank rebuilt on librosa's HTK mel scale, shape ``(num_mel_bins, bins)``:
    band edges equally spaced in mel, triangles linear *in mel* (not Hz), unnormalised, DC bin zeroed."""
    import librosa

    freqs = np.linspace(0.0, cfg.sample_rate / 2, cfg.num_spectrogram_bins)
    bins_mel = librosa.hz_to_mel(freqs, htk=True)
    edges = np.linspace(librosa.hz_to_mel(cfg.lower_edge_hz, htk=True),
                        librosa.hz_to_mel(cfg.upper_edge_hz, htk=True), cfg.num_mel_bins + 2)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0.0, np.minimum((bins_mel - lower) / (center - lower),
                                         (upper - bins_mel) / (upper - center)))
    weights[:, 0] = 0.0
    return weights.astype(np.float32)


def librosa_features(waveform: Any, cfg: str | FeatureConfig, *, filterbank: str = "matched") -> np.ndarray:
    """The same features computed with librosa, shape ``(T, F, 1)`` for one clip. Used by notebook 01.

    What matches :func:`tf_fn`: the frames (the clip is zero-padded by ``(fft_length - frame_length) / 2``
    on each side so librosa's ``center=False`` frames, whose window is centred in ``fft_length``, cover
    the same samples as tf.signal's), the periodic Hann window, the magnitude spectrum, the mel
    filterbank (``filterbank="matched"``: tf.signal's triangles, linear in HTK mel, rebuilt with
    ``librosa.hz_to_mel(htk=True)``), ``log(x + log_offset)`` and the DCT (``librosa.feature.mfcc`` with
    ``norm=None``, times ``1/sqrt(2 * num_mel_bins)`` as tf.signal does; ``norm="ortho"`` would differ
    in coefficient 0 only, by sqrt(2)). ``filterbank="librosa"`` uses ``librosa.filters.mel(htk=True,
    norm=None)`` instead, whose triangles are linear in Hz: close, but not identical. A ``resize`` is
    applied with the same ``tf.image.resize`` call (it is not part of the comparison).
    """
    import librosa

    cfg = get(cfg)
    y = _check_waveforms(waveform, cfg)
    if y.ndim != 1:
        raise ValueError(f"librosa_features takes one clip of shape ({cfg.num_samples},); got {y.shape}")
    left = (cfg.fft_length - cfg.frame_length) // 2
    y = np.pad(y, (left, cfg.fft_length - cfg.frame_length - left))
    spec = np.abs(librosa.stft(y, n_fft=cfg.fft_length, hop_length=cfg.frame_step, win_length=cfg.frame_length,
                               window="hann", center=False))  # (bins, T)
    feats = np.log(spec + cfg.log_offset) if cfg.kind == "stft" and cfg.log_magnitude else spec
    if cfg.kind != "stft":
        if filterbank == "matched":
            mel_basis = _htk_mel_filterbank(cfg)
        elif filterbank == "librosa":
            mel_basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.fft_length, n_mels=cfg.num_mel_bins,
                                            fmin=cfg.lower_edge_hz, fmax=cfg.upper_edge_hz, htk=True, norm=None)
        else:
            raise ValueError(f"filterbank={filterbank!r}; choose 'matched' or 'librosa'")
        feats = np.log(mel_basis @ spec + cfg.log_offset)
        if cfg.kind == "mfcc":
            feats = librosa.feature.mfcc(S=feats, n_mfcc=cfg.num_coefficients, dct_type=2, norm=None)
            feats = feats / np.sqrt(2.0 * cfg.num_mel_bins)
    feats = feats.T[..., None].astype(np.float32)  # (T, F, 1)
    if cfg.resize is not None:
        import tensorflow as tf

        feats = tf.image.resize(feats, cfg.resize, method="bilinear").numpy()
    return feats


def parity(waveforms: Any, cfg: str | FeatureConfig, *, filterbank: str = "matched") -> dict[str, float]:
    """Max and mean absolute difference between :func:`tf_fn` and :func:`librosa_features` over the
    clips, plus the feature range for scale. Used by notebook 01 and the tests."""
    cfg = get(cfg)
    x = _check_waveforms(waveforms, cfg)
    x = x[None] if x.ndim == 1 else x
    tf_out = compute(x, cfg, progress=False)
    ref = np.stack([librosa_features(clip, cfg, filterbank=filterbank) for clip in x])
    diff = np.abs(tf_out.astype(np.float64) - ref)
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "feature_min": float(tf_out.min()), "feature_max": float(tf_out.max()), "clips": len(x)}


def parity_table(
    waveforms: Any, presets: Sequence[str | FeatureConfig] = tuple(PRESETS), *, librosa_filterbank: bool = True
) -> "pd.DataFrame":
    """:func:`parity` of each preset as a table with its tolerance and a pass/fail column; with
    ``librosa_filterbank`` also each mel preset against librosa's own ``filters.mel(htk=True)``
    (no tolerance: it shows what the filterbank choice alone changes). Used by notebook 01."""
    import pandas as pd

    rows = []
    for p in presets:
        cfg = get(p)
        name = preset_name(cfg) or cfg.kind
        fbs = ("matched", "librosa") if librosa_filterbank and cfg.kind != "stft" else ("matched",)
        for fb in fbs:
            r = parity(waveforms, cfg, filterbank=fb)
            tol = PARITY_ATOL[cfg.kind] if fb == "matched" else None
            rows.append({"pipeline": name, "librosa filterbank": fb if cfg.kind != "stft" else "-", **r,
                         "tolerance": tol, "within": None if tol is None else r["max_abs_diff"] <= tol})
    return pd.DataFrame(rows)


def warmup() -> float:
    """Run librosa's feature code once so numba compiles and caches it (about 20-30 s in a fresh
    environment, ~2 s per later process); returns the seconds it took. Called by ``make setup``
    (``python -m labkit.cli warmup``) and notebook 01 before timing."""
    start = time.perf_counter()
    clip = 0.1 * np.sin(np.linspace(0.0, 2000.0 * np.pi, PRESETS["mfcc_a"].num_samples)).astype(np.float32)
    for cfg in PRESETS.values():
        librosa_features(clip, cfg)
    import librosa

    librosa.feature.mfcc(y=clip, sr=PRESETS["mfcc_a"].sample_rate, n_mfcc=10)
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------
# Views for teaching, and cost measurement
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class AudioViews:
    """Every representation of one clip, ready to plot (``plots.audio_views``). Used by notebook 01."""

    waveform: np.ndarray        # (num_samples,)
    sample_rate: int
    fft_freqs: np.ndarray       # (num_samples // 2 + 1,) Hz
    fft_db: np.ndarray          # whole-clip |FFT| in dB (re max)
    spectrogram_db: np.ndarray  # (T, bins) |STFT| in dB (re max)
    log_mel: np.ndarray         # (T, mel_bins)
    mfcc: np.ndarray            # (T, coefficients)
    cfg: FeatureConfig


def views(waveform: Any, cfg: str | FeatureConfig = "mfcc_a") -> AudioViews:
    """Waveform, whole-clip FFT, linear spectrogram, log-mel spectrogram and MFCC of one clip, all with
    the framing and mel settings of ``cfg`` (its ``kind`` and ``resize`` are ignored). Used by notebook 01."""
    cfg = get(cfg)
    y = _check_waveforms(waveform, cfg)
    if y.ndim != 1:
        raise ValueError(f"views takes one clip of shape ({cfg.num_samples},); got {y.shape}")
    base = cfg.replace(resize=None)

    def db(a: np.ndarray) -> np.ndarray:
        return 20.0 * np.log10(np.maximum(a, 1e-10) / max(float(a.max()), 1e-10))

    def run(kind: str) -> np.ndarray:  # eager: cheaper than tracing a tf.function for every new setting
        return _extract(y, base.replace(kind=kind)).numpy()[..., 0]

    return AudioViews(
        waveform=y, sample_rate=cfg.sample_rate, fft_freqs=np.fft.rfftfreq(len(y), 1.0 / cfg.sample_rate),
        fft_db=db(np.abs(np.fft.rfft(y))), spectrogram_db=db(run("stft")), log_mel=run("logmel"),
        mfcc=run("mfcc"), cfg=cfg,
    )


MODES: tuple[str, ...] = ("eager", "tf.function", "batched", "librosa")
"""How :func:`cost_table` runs a pipeline: eager TF per clip, compiled per clip (batch of 1),
compiled on a batch (time / batch size), librosa per clip."""


def cost_table(
    waveforms: Any,
    presets: Sequence[str | FeatureConfig] = ("stft", "logmel", "mfcc_a"),
    *,
    runs: int = 200,
    warmup: int = 20,
    batch_size: int = 32,
    modes: Iterable[str] = MODES,
    max_seconds: float | None = 4.0,
    progress: bool = True,
) -> "pd.DataFrame":
    """Per-clip preprocessing cost of each pipeline and mode (see :data:`MODES`): median of ``runs``
    timed calls after ``warmup`` calls (at least one), in milliseconds per clip. ``waveforms``
    ``(N, num_samples)`` supply the clip (the first) and the batch (cycled to ``batch_size``). ``max_seconds`` caps the
    timed runs of one measurement (estimated from the warm-up; never below 10 runs; ``None`` = no cap)
    so slow modes such as eager do not dominate the run time; the ``runs`` column says how many were
    timed. librosa runs with NumPy's BLAS limited to one thread. Call :func:`warmup` first so
    librosa's numba compilation is not timed. Used by notebook 01 and benchmarks/preprocessing.py."""
    import pandas as pd
    import tensorflow as tf
    from tqdm.auto import tqdm

    modes = list(modes)
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown mode(s) {sorted(unknown)}; choose from {MODES}")
    cfgs = [get(p) for p in presets]
    x = _check_waveforms(waveforms, cfgs[0])
    x = x[None] if x.ndim == 1 else x
    clip, one = x[0], tf.constant(x[:1])
    batch = tf.constant(np.resize(x, (batch_size, x.shape[1])))
    jobs = [(c, m) for c in cfgs for m in modes]
    rows = []
    for c, mode in tqdm(jobs, desc="preprocessing cost", disable=not progress):
        with _one_blas_thread() if mode == "librosa" else contextlib.nullcontext():
            rows.append(_cost_row(c, mode, one, batch, clip, runs=runs, warmup=warmup, max_seconds=max_seconds))
    return pd.DataFrame(rows)


def _one_blas_thread() -> Any:
    """Limit NumPy's BLAS to one thread while librosa is timed: its small matrix products gain nothing
    from threads, and on a busy 2-core machine the thread hand-off made the MFCC median ~8x slower
    (9.4 vs 1.2 ms). No-op when threadpoolctl (a scikit-learn dependency of librosa) is missing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _cost_row(c: FeatureConfig, mode: str, one: Any, batch: Any, clip: np.ndarray, *, runs: int, warmup: int,
              max_seconds: float | None) -> dict[str, Any]:
    """One row of :func:`cost_table`."""
    from .bench import median_time

    fn = tf_fn(c)
    call, per = {
        "eager": (lambda: _extract(one, c).numpy(), 1),
        "tf.function": (lambda: fn(one).numpy(), 1),
        "batched": (lambda: fn(batch).numpy(), int(batch.shape[0])),
        "librosa": (lambda: librosa_features(clip, c), 1),
    }[mode]
    start = time.perf_counter()
    for _ in range(max(1, warmup)):
        call()
    n = runs
    if max_seconds is not None:
        per_call = (time.perf_counter() - start) / max(1, warmup)
        n = min(runs, max(10, int(max_seconds / max(per_call, 1e-9))))
    t = median_time(call, n, 0)
    return {
        "pipeline": preset_name(c) or c.kind, "kind": c.kind,
        "shape": "x".join(str(v) for v in output_shape(c)[:2]), "mode": mode,
        "batch": per, "ms_per_clip": t["median_ms"] / per, "p90_ms_per_clip": t["p90_ms"] / per,
        "runs": t["runs"],
    }


def pick_examples(
    x: np.ndarray, y: np.ndarray, labels: Sequence[str], *, per_label: int = 1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Up to ``per_label`` clips of each label, ``{label: (k, num_samples)}``, chosen reproducibly;
    labels without clips are left out. Used by notebook 01."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    out: dict[str, np.ndarray] = {}
    for i, label in enumerate(labels):
        idx = np.flatnonzero(y == i)
        if len(idx):
            out[label] = np.asarray(x)[np.sort(rng.choice(idx, size=min(per_label, len(idx)), replace=False))]
    return out


def explorer(clips: Mapping[str, np.ndarray], *, cfg: str | FeatureConfig = "mfcc_a") -> Any:
    """An ipywidgets explorer: pick a word and clip, change frame length / step and mel bins, and see
    (and hear) the waveform, spectrogram, log-mel and MFCC update. ``clips`` is ``{word: (k, samples)}``
    (e.g. from :func:`pick_examples`). Live only in Jupyter / Colab; static HTML shows no widget.
    Used by notebook 01."""
    import io

    import ipywidgets as w
    from IPython.display import Audio, Image

    from . import colab, plots

    colab.enable_widgets()
    base = get(cfg)
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
        fig = plots.audio_views({f"{word.value} #{index.value}": views(clip, c)})
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=72)
        plots.plt.close(fig)
        # Set the Output widget's content directly (no `with out:` capture): simpler and thread-safe.
        out.outputs = ()
        out.append_display_data(Audio(clip, rate=c.sample_rate))
        out.append_display_data(Image(png.getvalue()))
        out.append_stdout(describe(c) + "\n")

    for widget in (word, index, frame_ms, step_ms, mels):
        widget.observe(render, names="value")
    render()
    return w.VBox([w.HBox([word, index]), w.HBox([frame_ms, step_ms, mels]), out])
