"""Training-time augmentation and regularisation of keyword spotting (``train.train_kws``).

* :class:`Augment` describes it: speed perturbation, a random time shift and background noise on the
  *waveforms* (features are then recomputed every epoch), and SpecAugment-style masks on the *features*
  (time and frequency bands set to the clip's mean).
* :data:`KWS_AUGMENT` is ``train_kws``'s default, chosen by speaker-disjoint 5-fold cross-validation on
  real Speech Commands clips (benchmarks/kws_real.py, DS-CNN on MFCC, 30 epochs): +-100 ms shift and noise
  on 80 % of the clips from the dataset's own training ``_silence_`` / ``_background_noise_`` clips
  (``KWSData.noise``) gave 0.865 +- 0.021 top-1 at seed 0 against 0.850 +- 0.025 without, but only 0.826 and
  0.835 at seeds 1 and 2 (folds 0-2); resampling each clip by a factor in [0.9, 1.1] first (``speed=0.1``:
  speakers talk faster or slower, higher or lower) gave 0.877 / 0.877 / 0.883 at seeds 0 / 1 / 2 on the same
  folds (2026-12-01). Masks and label smoothing did not help at 30 epochs.
* :func:`waveform_fn`, :func:`mask_fn` and :func:`smoothed_sparse_ce` are the ``tf.data`` maps and the loss.

TensorFlow is imported inside the functions (``import labkit.augment`` stays cheap).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

__all__ = ["Augment", "KWS_AUGMENT", "resolve", "waveform_fn", "mask_fn", "smoothed_sparse_ce"]


@dataclasses.dataclass(frozen=True)
class Augment:
    """KWS training augmentation.

    ``speed``: each clip resampled around its centre by a factor drawn in [1 - s, 1 + s] (linear
    interpolation; tempo and pitch change together, the clip keeps its length, zero padded when it
    shrinks); ``time_shift_ms``: random shift in [-t, +t] ms (zero padded); ``noise_prob``: probability of adding
    background noise to a clip, at a volume drawn uniformly in [0, ``noise_volume``] times the noise clip
    (the dataset's noise clips, else white noise of RMS 1); ``time_masks`` bands of up to
    ``time_mask_frames`` frames and ``freq_masks`` bands of up to ``freq_mask_bins`` feature bins are
    masked on the features (SpecAugment). Used by notebook 03 and benchmarks/kws_real.py.
    """

    time_shift_ms: float = 100.0
    noise_prob: float = 0.8
    noise_volume: float = 0.1
    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0
    speed: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.speed < 1.0:
            raise ValueError(f"speed is the largest relative change of the playback rate, in [0, 1); got {self.speed}")

    @property
    def on_waveform(self) -> bool:
        """Whether waveforms change (speed, shift or noise), so features must be recomputed every epoch."""
        return self.speed > 0 or self.time_shift_ms > 0 or (self.noise_prob > 0 and self.noise_volume > 0)

    @property
    def on_features(self) -> bool:
        """Whether SpecAugment-style masks are drawn on the features."""
        return (self.time_masks > 0 and self.time_mask_frames > 0) or (self.freq_masks > 0 and self.freq_mask_bins > 0)


KWS_AUGMENT = Augment(time_shift_ms=100.0, noise_prob=0.8, noise_volume=0.1, speed=0.1)
"""``train_kws``'s default augmentation (``augment=None``); see the module docstring for the measurement."""


def resolve(augment: "Augment | bool | None") -> Augment | None:
    """``None`` or ``True`` -> :data:`KWS_AUGMENT`, ``False`` -> no augmentation (``None``), an :class:`Augment`
    as it is. Used by ``train.train_kws``."""
    if augment is None or augment is True:
        return KWS_AUGMENT
    if augment is False:
        return None
    if not isinstance(augment, Augment):
        raise TypeError(f"augment must be an Augment, True, False or None, got {type(augment).__name__}")
    return augment


def waveform_fn(aug: Augment, noise: np.ndarray | None, sample_rate: int = 16000) -> Callable:
    """A ``tf.data`` map on a batch ``(x (B, samples), y)``: speed perturbation, time shift, then background
    noise."""
    import tensorflow as tf

    max_shift = int(round(aug.time_shift_ms * sample_rate / 1000))
    noise_t = None if noise is None else tf.constant(np.asarray(noise, np.float32))

    def fn(x: "tf.Tensor", y: "tf.Tensor"):
        n = tf.shape(x)[0]
        length = x.shape[-1]
        if aug.speed > 0:
            x = _resample(x, tf.random.uniform([n, 1], 1.0 - aug.speed, 1.0 + aug.speed))
        if max_shift > 0:
            padded = tf.pad(x, [[0, 0], [max_shift, max_shift]])
            shifts = tf.random.uniform([n], 0, 2 * max_shift + 1, dtype=tf.int32)
            idx = shifts[:, None] + tf.range(length)[None, :]
            x = tf.gather(padded, idx, batch_dims=1)
        if aug.noise_prob > 0 and aug.noise_volume > 0:
            if noise_t is None:
                bg = tf.random.normal(tf.shape(x))
            else:
                pick = tf.random.uniform([n], 0, tf.shape(noise_t)[0], dtype=tf.int32)
                bg = tf.gather(noise_t, pick)[:, :length]
            vol = tf.random.uniform([n, 1], 0.0, aug.noise_volume)
            use = tf.cast(tf.random.uniform([n, 1]) < aug.noise_prob, x.dtype)
            x = tf.clip_by_value(x + use * vol * bg, -1.0, 1.0)
        return x, y

    return fn


def _resample(x: "tf.Tensor", rate: "tf.Tensor") -> "tf.Tensor":
    """Each row of ``x`` (B, samples) played ``rate`` (B, 1) times as fast around its centre: sample i of the
    output is the input at ``c + (i - c) * rate`` (linear interpolation), zero outside the clip."""
    import tensorflow as tf

    length = x.shape[-1]
    centre = (length - 1) / 2.0
    pos = centre + (tf.cast(tf.range(length), tf.float32)[None, :] - centre) * rate
    lo = tf.floor(pos)
    frac = pos - lo
    lo = tf.cast(lo, tf.int32)

    def at(i: "tf.Tensor") -> "tf.Tensor":
        inside = tf.cast((i >= 0) & (i < length), x.dtype)
        return tf.gather(x, tf.clip_by_value(i, 0, length - 1), batch_dims=1) * inside

    return at(lo) * (1.0 - frac) + at(lo + 1) * frac


def mask_fn(aug: Augment) -> Callable:
    """A ``tf.data`` map on a batch of features ``(B, T, F, 1)``: ``time_masks`` bands of up to
    ``time_mask_frames`` frames and ``freq_masks`` bands of up to ``freq_mask_bins`` bins, each of a random
    width and position per clip, set to the clip's mean feature value."""
    import tensorflow as tf

    def bands(n: Any, size: Any, count: int, max_width: int) -> Any:
        keep = tf.ones([n, size], tf.bool)
        pos = tf.range(size)[None, :]
        for _ in range(int(count)):
            width = tf.random.uniform([n, 1], 0, int(max_width) + 1, dtype=tf.int32)
            start = tf.random.uniform([n, 1], 0, 1 << 30, dtype=tf.int32) % tf.maximum(size - width + 1, 1)
            keep &= ~((pos >= start) & (pos < start + width))
        return keep

    def fn(f: "tf.Tensor", y: "tf.Tensor"):
        n, t, b = tf.shape(f)[0], tf.shape(f)[1], tf.shape(f)[2]
        keep = tf.ones_like(f, tf.bool)
        if aug.time_masks > 0 and aug.time_mask_frames > 0:
            keep &= bands(n, t, aug.time_masks, aug.time_mask_frames)[:, :, None, None]
        if aug.freq_masks > 0 and aug.freq_mask_bins > 0:
            keep &= bands(n, b, aug.freq_masks, aug.freq_mask_bins)[:, None, :, None]
        mean = tf.reduce_mean(f, axis=[1, 2, 3], keepdims=True)
        return tf.where(keep, f, mean), y

    return fn


def smoothed_sparse_ce(classes: int, smoothing: float) -> Callable:
    """Sparse categorical cross-entropy with label smoothing (tf.keras' sparse loss has none): the target
    puts ``1 - smoothing`` on the class and spreads ``smoothing`` over all ``classes``."""
    import tensorflow as tf

    cce = tf.keras.losses.CategoricalCrossentropy(label_smoothing=float(smoothing))

    def loss(y_true: "tf.Tensor", y_pred: "tf.Tensor") -> "tf.Tensor":
        return cce(tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), classes), y_pred)

    return loss
