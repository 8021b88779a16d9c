"""The arithmetic of quantization at any bit width, in NumPy so every number can be checked by hand.

``q = clip(round(x / scale) + zero_point, qmin, qmax)`` and ``x_hat = (q - zero_point) * scale``, with
``round`` half away from zero (TFLite's ``std::round``); weights symmetric over the narrow range with
one scale per output channel (or per tensor), activations asymmetric from a calibrated range.
Used by notebook 06 (through ``labkit.quantize``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MIN_BITS", "MAX_BITS", "check_bits", "qrange", "round_half_away", "quantize_int", "fake_quant",
           "symmetric_params", "asymmetric_params", "quantize_weights"]

MIN_BITS, MAX_BITS = 2, 16
"""The bit widths the kit simulates."""


def check_bits(num_bits: int) -> int:
    """``num_bits`` as an int, or a clear error when it is not a whole number in [MIN_BITS, MAX_BITS]."""
    if int(num_bits) != num_bits or not MIN_BITS <= num_bits <= MAX_BITS:
        raise ValueError(f"num_bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {num_bits!r}")
    return int(num_bits)


def qrange(num_bits: int, *, narrow_range: bool = False) -> tuple[int, int]:
    """Signed integer range of ``num_bits`` codes: ``(-2^(b-1), 2^(b-1)-1)``; ``narrow_range`` drops the
    most negative code (symmetric weights: ``(-127, 127)`` at 8 bits). Used by notebook 06."""
    b = check_bits(num_bits)
    qmax = 2 ** (b - 1) - 1
    return (-qmax if narrow_range else -qmax - 1), qmax


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, ties away from zero (``std::round``, as TFLite does; NumPy's
    ``np.round`` rounds ties to even)."""
    x = np.asarray(x)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _broadcast_params(x: np.ndarray, scale: Any, zero_point: Any, axis: int) -> tuple[np.ndarray, np.ndarray]:
    scale = np.asarray(scale, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    zero_point = np.asarray(zero_point, dtype=scale.dtype)
    if scale.ndim == 0 and zero_point.ndim == 0:
        return scale, zero_point
    axis = axis % x.ndim
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return np.broadcast_to(scale, (x.shape[axis],)).reshape(shape), \
        np.broadcast_to(zero_point, (x.shape[axis],)).reshape(shape)


def quantize_int(x: np.ndarray, num_bits: int, scale: Any, zero_point: Any = 0, *, narrow_range: bool = False,
                 axis: int = -1) -> np.ndarray:
    """The integer codes ``clip(round(x / scale) + zero_point, qmin, qmax)`` (int32). ``scale`` and
    ``zero_point`` are scalars or one value per index of ``axis`` (per-channel). Used by notebook 06."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    s, z = _broadcast_params(x, scale, zero_point, axis)
    if np.any(s <= 0):
        raise ValueError("scale must be > 0")
    qmin, qmax = qrange(num_bits, narrow_range=narrow_range)
    return np.clip(round_half_away(x / s) + z, qmin, qmax).astype(np.int32)


def fake_quant(x: np.ndarray, num_bits: int, scale: Any, zero_point: Any = 0, *, narrow_range: bool = False,
               axis: int = -1) -> np.ndarray:
    """Quantize then dequantize ``x`` in float: ``(clip(round(x / scale) + zp, qmin, qmax) - zp) * scale``.

    Pure NumPy, so every number can be checked by hand; the result keeps ``x``'s float dtype. Per-channel
    parameters (arrays) apply along ``axis``. Used by notebook 06 and by :func:`ptq`.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    q = quantize_int(x, num_bits, scale, zero_point, narrow_range=narrow_range, axis=axis)
    s, z = _broadcast_params(x, scale, zero_point, axis)
    return ((q.astype(s.dtype) - z) * s).astype(x.dtype)


def symmetric_params(w: np.ndarray, num_bits: int, *, per_channel: bool = True, axis: int = -1
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Weight parameters like TFLite: ``scale = max|w| / (2^(b-1) - 1)`` (narrow range), zero point 0,
    one per index of ``axis`` (``per_channel``) or one for the whole tensor. A channel of zeros gets
    scale 1 (its codes are 0 anyway). Used by :func:`quantize_weights` (notebook 06)."""
    w = np.asarray(w, dtype=np.float64)
    _, qmax = qrange(num_bits, narrow_range=True)
    if per_channel:
        axis = axis % w.ndim
        m = np.max(np.abs(np.moveaxis(w, axis, -1)).reshape(-1, w.shape[axis]), axis=0)
    else:
        m = np.asarray(np.max(np.abs(w)) if w.size else 0.0)
    scale = np.where(m > 0, m / qmax, 1.0)
    return scale, np.zeros_like(scale, dtype=np.int64)


def asymmetric_params(rmin: float, rmax: float, num_bits: int) -> tuple[float, int]:
    """Activation parameters from a calibrated range, like TFLite's int8 calibration: the range is
    widened to contain 0 (so zero is exact), ``scale = (rmax - rmin) / (qmax - qmin)`` and
    ``zero_point = round(qmin - rmin / scale)`` clipped to ``[qmin, qmax]``. Used by :func:`ptq`."""
    qmin, qmax = qrange(num_bits)
    rmin, rmax = min(float(rmin), 0.0), max(float(rmax), 0.0)
    if not (np.isfinite(rmin) and np.isfinite(rmax)):
        raise ValueError(f"calibrated range [{rmin}, {rmax}] is not finite; check the representative data")
    if rmax == rmin:  # an all-zero tensor: any scale represents it exactly
        return 1.0, 0
    scale = (rmax - rmin) / (qmax - qmin)
    zp = int(np.clip(round_half_away(qmin - rmin / scale), qmin, qmax))
    return float(scale), zp


def quantize_weights(w: np.ndarray, num_bits: int, *, per_channel: bool = True, axis: int = -1) -> np.ndarray:
    """``w`` fake-quantized with symmetric narrow-range parameters (:func:`symmetric_params`).

    Used by :func:`ptq` (notebook 06).
    """
    w = np.asarray(w)
    scale, zp = symmetric_params(w, num_bits, per_channel=per_channel, axis=axis)
    return fake_quant(w.astype(np.float64), num_bits, scale, zp, narrow_range=True,
                      axis=axis if per_channel else -1).astype(w.dtype)
