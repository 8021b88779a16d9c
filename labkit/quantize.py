"""Quantization at any bit width: fake-quant post-training quantization (PTQ) and quantization-aware
training (QAT) with tensorflow-model-optimization.

The arithmetic (the same as TensorFlow Lite's int8 scheme, generalised to ``num_bits``)::

    q     = clip(round(x / scale) + zero_point, qmin, qmax)      # integer code
    x_hat = (q - zero_point) * scale                              # what the integer stands for

``round`` is half away from zero (C's ``std::round``, as in TFLite). Signed codes: activations use
``[-2^(b-1), 2^(b-1) - 1]`` with a zero point (asymmetric, calibrated min/max), weights use the
*narrow* symmetric range ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` with zero point 0, one scale per output
channel (``"per_channel"``, TFLite's choice for Conv2D, DepthwiseConv2D and Dense) or one per tensor.

* :func:`fake_quant` (NumPy, hand-checkable), :func:`symmetric_params`, :func:`asymmetric_params`.
* :func:`fold_batchnorm` folds each BatchNorm into the Conv/Dense before it and splits softmax out of
  its layer, like the TFLite converter does, so 8-bit simulation matches the real int8 model.
* :func:`ptq` returns a plain ``tf.keras`` model whose weights are fake-quantized at ``num_bits``
  and, with ``activations=True``, with a :class:`FakeQuant` layer at every point where TFLite would
  store an int8 tensor (model input, output of each fused Conv/Dense+ReLU, Add, pooling ...), its
  range calibrated on representative inputs (:func:`calibrate`). Evaluate it like any other model.
* :func:`qat` fine-tunes a model with fake quantization in the loop: at 8 bits through tfmot's
  ``quantize_model`` scheme (convertible to a real int8 ``.tflite``), at other widths through custom
  ``QuantizeConfig`` s (:class:`NBitQuantizeConfig`) applied with ``quantize_annotate_layer`` /
  ``quantize_apply`` inside ``quantize_scope``; those models run in simulation only, because TFLite
  kernels exist for 8-bit (and 16x8) integers only.
* :func:`ptq_sweep`, :func:`qat_sweep` and :func:`plot_bit_sweep` give the course's accuracy-vs-bits
  figure. Recurrent layers (LSTM/GRU) are outside tfmot's QAT support: :func:`qat` raises
  :class:`UnsupportedLayerError` for them.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import pandas as pd

__all__ = [
    "UnsupportedLayerError", "qrange", "round_half_away", "fake_quant", "quantize_int", "symmetric_params",
    "asymmetric_params", "quantize_weights", "FakeQuant", "fold_batchnorm", "Calibration", "calibrate",
    "quant_points", "ptq", "NBitQuantizeConfig", "QATResult", "qat", "kws_evaluator", "forecast_evaluator",
    "ptq_sweep", "qat_sweep", "plot_bit_sweep", "summary_table", "predict", "init_activation_ranges",
    "qat_scope", "PerChannelLastValueQuantizer", "PTQ_METHODS", "SOFTMAX_SCALE", "weight_error",
    "quantization_table", "agreement", "calibration_set", "clipping_table",
]

MIN_BITS, MAX_BITS = 2, 16
SOFTMAX_SCALE = 1.0 / 256.0
"""TFLite's fixed int8 encoding of softmax/sigmoid outputs (scale 1/256, zero point -128)."""


class UnsupportedLayerError(ValueError):
    """A layer that this quantization path cannot handle (e.g. LSTM in tfmot QAT); the message names
    the layer and what to do instead. Used by notebook 06."""


# ------------------------------------------------------------------------------------ the arithmetic
def _check_bits(num_bits: int) -> int:
    if int(num_bits) != num_bits or not MIN_BITS <= num_bits <= MAX_BITS:
        raise ValueError(f"num_bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {num_bits!r}")
    return int(num_bits)


def qrange(num_bits: int, *, narrow_range: bool = False) -> tuple[int, int]:
    """Signed integer range of ``num_bits`` codes: ``(-2^(b-1), 2^(b-1)-1)``; ``narrow_range`` drops the
    most negative code (symmetric weights: ``(-127, 127)`` at 8 bits). Used by notebook 06."""
    b = _check_bits(num_bits)
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


# ------------------------------------------------------------------------------- the Keras FakeQuant
@tf.autograph.experimental.do_not_convert  # plain tensor maths: skip autograph's (slow) conversion
def _fake_quant_tf(x: "tf.Tensor", scale: float, zero_point: int, qmin: int, qmax: int) -> "tf.Tensor":
    s = tf.cast(scale, x.dtype)
    v = x / s
    q = tf.sign(v) * tf.floor(tf.abs(v) + 0.5) + float(zero_point)  # round half away from zero
    q = tf.clip_by_value(q, float(qmin), float(qmax))
    return (q - float(zero_point)) * s


@tf.keras.utils.register_keras_serializable(package="labkit")
class FakeQuant(tf.keras.layers.Layer):
    """Fake quantization with a fixed per-tensor ``scale`` and ``zero_point``: the formula and rounding of
    :func:`fake_quant` in TensorFlow ops, so a PTQ model is a plain Keras model (it saves and loads
    like any other). Inserted by :func:`ptq` (notebook 06)."""

    def __init__(self, num_bits: int, scale: float, zero_point: int, narrow_range: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_bits = _check_bits(num_bits)
        self.scale = float(scale)
        self.zero_point = int(zero_point)
        self.narrow_range = bool(narrow_range)
        self.qmin, self.qmax = qrange(self.num_bits, narrow_range=self.narrow_range)
        if not self.scale > 0:
            raise ValueError(f"FakeQuant scale must be > 0, got {scale}")

    def call(self, inputs):  # noqa: D102 - Keras API
        return _fake_quant_tf(inputs, self.scale, self.zero_point, self.qmin, self.qmax)

    def get_config(self) -> dict:  # noqa: D102 - Keras API
        return {**super().get_config(), "num_bits": self.num_bits, "scale": self.scale,
                "zero_point": self.zero_point, "narrow_range": self.narrow_range}


# ----------------------------------------------------------------------------------- graph rewriting
_KERNEL_LAYERS = ("Conv1D", "Conv2D", "DepthwiseConv2D", "Dense")
_RECURRENT_LAYERS = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")
_EXACT_PASS_THROUGH = ("Reshape", "Flatten", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
                       "GaussianDropout", "GaussianNoise", "MaxPooling1D", "MaxPooling2D", "GlobalMaxPooling1D",
                       "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
                       "Permute", "ActivityRegularization")
_SAME_SCALE = ("AveragePooling1D", "AveragePooling2D")   # TFLite requantizes them with the input's scale
_FUSING_PRODUCERS = _KERNEL_LAYERS + ("Add", "Subtract", "Multiply")
_SPLIT_ACTIVATIONS = ("softmax", "sigmoid", "tanh")


def _cls(layer: Any) -> str:
    return type(layer).__name__


def _activation_name(layer: Any) -> str | None:
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", type(act).__name__)


def _is_plain_relu(layer: Any) -> bool:
    """A ReLU that TFLite fuses into the op before it (ReLU layer without cap/slope, or Activation relu)."""
    if _cls(layer) == "ReLU":
        cfg = layer.get_config()
        return cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold")
    return _cls(layer) == "Activation" and _activation_name(layer) == "relu"


@dataclasses.dataclass
class _Graph:
    """A functional model as a list of layer names in topological order with their inbound tensors."""

    model: Any
    order: list[str]
    inbound: dict[str, list[tuple[str, int, int]]]
    kwargs: dict[str, dict]
    outputs: list[tuple[str, int, int]]
    consumers: dict[str, list[str]]
    inputs: list[str] = dataclasses.field(default_factory=list)

    def layer(self, name: str) -> Any:
        return self.model.get_layer(name)

    def is_output(self, name: str) -> bool:
        return any(o[0] == name for o in self.outputs)


def _graph(model: Any) -> _Graph:
    if not isinstance(model, tf.keras.Model) or not getattr(model, "_is_graph_network", False):
        raise TypeError(f"expected a built functional or Sequential tf.keras model, got {type(model).__name__}; "
                        "subclassed models cannot be rewritten (build the model with labkit.models.build)")
    if isinstance(model, tf.keras.Sequential):
        model = tf.keras.Model(model.inputs, model.outputs, name=model.name)
    cfg = model.get_config()
    order, inbound, kwargs = [], {}, {}
    for lc in cfg["layers"]:
        name, nodes = lc["name"], lc.get("inbound_nodes") or []
        layer = model.get_layer(name)
        if isinstance(layer, tf.keras.Model):
            raise UnsupportedLayerError(f"layer {name!r} is a nested model; rebuild it as one flat functional "
                                        "model before quantizing")
        if len(nodes) > 1:
            raise UnsupportedLayerError(f"layer {name!r} is shared ({len(nodes)} calls); quantization gives each "
                                        "call its own ranges, so unshare it (one layer per call)")
        node = nodes[0] if nodes else []
        if isinstance(node, dict):  # pragma: no cover - Keras 3 style config
            raise TypeError("this model config format is not supported; build models with tf.keras (tf_keras)")
        inbound[name] = [(str(n[0]), int(n[1]), int(n[2])) for n in node]
        kwargs[name] = dict(node[0][3]) if node and len(node[0]) > 3 and node[0][3] else {}
        if isinstance(layer.output, (list, tuple)):
            raise UnsupportedLayerError(f"layer {name!r} has several outputs; not supported by this rewriter")
        order.append(name)
    outputs = [(str(o[0]), int(o[1]), int(o[2])) for o in cfg["output_layers"]]
    consumers: dict[str, list[str]] = {n: [] for n in order}
    for name in order:
        for src, _, _ in inbound[name]:
            consumers[src].append(name)
    inputs = [str(i[0]) for i in cfg["input_layers"]]
    return _Graph(model, order, inbound, kwargs, outputs, consumers, inputs)


def _rebuild(g: _Graph, *, skip: Mapping[str, str] | None = None, configs: Mapping[str, dict] | None = None,
             weights: Mapping[str, list[np.ndarray]] | None = None,
             after: Mapping[str, list[Any]] | None = None, name: str | None = None) -> Any:
    """A new functional model from ``g``: layers in ``skip`` are replaced by their input (folded),
    ``configs`` overrides layer configs, ``weights`` sets new weights, ``after`` lists layers applied
    to a layer's output (e.g. a split activation, a FakeQuant). Layer names are kept."""
    skip, configs, weights, after = skip or {}, configs or {}, weights or {}, after or {}
    tensors: dict[str, Any] = {}
    for lname in g.order:
        layer = g.layer(lname)
        if _cls(layer) == "InputLayer":
            lc = layer.get_config()
            t = tf.keras.Input(batch_shape=lc["batch_input_shape"], dtype=lc.get("dtype"), name=lname)
            tensors[f"{lname}:input"] = t
        else:
            ins = [tensors[src] for src, _, _ in g.inbound[lname]]
            x = ins[0] if len(ins) == 1 else ins
            if lname in skip:
                t = x
            else:
                cfg = dict(configs.get(lname, layer.get_config()))
                new = type(layer).from_config(cfg)
                t = new(x, **g.kwargs[lname])
                w = weights.get(lname)
                new.set_weights(w if w is not None else layer.get_weights())
        for extra in after.get(lname, []):
            t = extra(t)
        tensors[lname] = t
    inputs = [tensors[f"{n}:input"] for n in g.inputs]
    outputs = [tensors[o[0]] for o in g.outputs]
    return tf.keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                          name=name or g.model.name)


def _fold_one(layer: Any, bn: Any) -> list[np.ndarray] | None:
    """Kernel and bias of ``layer`` with BatchNorm ``bn`` folded in, or None if it cannot be folded."""
    if _cls(layer) not in _KERNEL_LAYERS or _activation_name(layer) != "linear":
        return None
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    rank = len(layer.output.shape)
    if axis is None or axis % rank != rank - 1 or getattr(layer, "data_format", "channels_last") != "channels_last":
        return None
    mean, var = (np.asarray(v, np.float64) for v in (bn.moving_mean.numpy(), bn.moving_variance.numpy()))
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.gamma is not None else np.ones_like(mean)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.beta is not None else np.zeros_like(mean)
    s = gamma / np.sqrt(var + bn.epsilon)
    w = layer.get_weights()
    kernel = np.asarray(w[0], np.float64)
    bias = np.asarray(w[1], np.float64) if layer.use_bias else np.zeros_like(mean)
    if _cls(layer) == "DepthwiseConv2D":  # (kh, kw, in, mult): output channel = in * mult + m
        kernel = kernel * s.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * s
    return [kernel.astype(np.float32), ((bias - mean) * s + beta).astype(np.float32)]


def fold_batchnorm(model: "tf.keras.Model") -> "tf.keras.Model":
    """The inference graph that TFLite quantizes: every BatchNormalization right after a Conv1D/Conv2D/
    DepthwiseConv2D/Dense (linear activation, single consumer) folded into its kernel and bias
    (``w' = w * gamma / sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``), and a
    softmax/sigmoid/tanh activation inside a layer split into its own ``Activation`` layer (TFLite runs
    it as a separate op, quantizing the logits before it). Outputs equal the original's up to float
    rounding; other layers and names are kept. Used by :func:`ptq`, :func:`qat` (notebook 06)."""
    g = _graph(model)
    skip: dict[str, str] = {}
    configs: dict[str, dict] = {}
    weights: dict[str, list[np.ndarray]] = {}
    after: dict[str, list[Any]] = {}
    for name in g.order:
        layer = g.layer(name)
        if _cls(layer) == "BatchNormalization" and len(g.inbound[name]) == 1:
            src = g.inbound[name][0][0]
            if len(g.consumers[src]) == 1 and not g.is_output(src) and src not in skip:
                folded = _fold_one(g.layer(src), layer)
                if folded is not None:
                    skip[name] = src
                    configs[src] = {**g.layer(src).get_config(), "use_bias": True}
                    weights[src] = folded
        act = _activation_name(layer)
        if act in _SPLIT_ACTIVATIONS and _cls(layer) != "Activation":
            configs[name] = {**configs.get(name, layer.get_config()), "activation": "linear"}
            after[name] = [tf.keras.layers.Activation(act, name=f"{name}_{act}")]
    return _rebuild(g, skip=skip, configs=configs, weights=weights, after=after, name=f"{model.name}_folded")


# ------------------------------------------------------------------------------------ quant points
@dataclasses.dataclass(frozen=True)
class _Point:
    """Where an int8 tensor lives: after layer ``layer``; ``kind`` is "calibrate" (own min/max),
    "same" (``source``'s parameters, e.g. average pooling) or "fixed" (softmax: scale/zp given)."""

    layer: str
    kind: str
    source: str | None = None
    scale: float | None = None
    zero_point: int | None = None


def _plan(g: _Graph) -> list[_Point]:
    """The quantization points of a folded graph (see :func:`quant_points`)."""
    points: list[_Point] = []
    governed: dict[str, str | None] = {}   # layer -> the point whose parameters its output carries

    def fused(name: str) -> bool:  # output consumed only by a fusable ReLU: TFLite quantizes after the ReLU
        layer = g.layer(name)
        cons = g.consumers[name]
        return (_cls(layer) in _FUSING_PRODUCERS and _activation_name(layer) in (None, "linear")
                and len(cons) == 1 and _is_plain_relu(g.layer(cons[0])) and not g.is_output(name))

    for name in g.order:
        layer, cls = g.layer(name), _cls(g.layer(name))
        src = g.inbound[name][0][0] if g.inbound[name] else None
        if cls == "InputLayer":
            points.append(_Point(name, "calibrate"))
            governed[name] = name
        elif cls in _EXACT_PASS_THROUGH and governed.get(src):
            governed[name] = governed[src]
        elif cls in _SAME_SCALE and governed.get(src):
            points.append(_Point(name, "same", source=governed[src]))
            governed[name] = governed[src]
        elif cls == "Activation" and _activation_name(layer) in _SPLIT_ACTIVATIONS:
            act = _activation_name(layer)
            scale, zp = (2.0 / 256.0, 0) if act == "tanh" else (SOFTMAX_SCALE, -128)
            points.append(_Point(name, "fixed", scale=scale, zero_point=zp))
            governed[name] = name
        elif fused(name):
            governed[name] = None
        else:
            points.append(_Point(name, "calibrate"))
            governed[name] = name
    return points


def quant_points(model: "tf.keras.Model") -> list[dict[str, Any]]:
    """Where :func:`ptq` puts activation fake-quant in ``model`` once BatchNorm is folded: one row per
    point (layer, kind: ``calibrate`` / ``same`` (average pooling reuses its input's scale, as TFLite) /
    ``fixed`` (softmax output: scale 1/256, zero point -128)). Used by notebook 06."""
    g = _graph(fold_batchnorm(model))
    return [dataclasses.asdict(p) for p in _plan(g)]


# ------------------------------------------------------------------------------------- calibration
@dataclasses.dataclass
class Calibration:
    """Activation ranges (min, max) measured on the BN-folded float model, per quantization point.

    Independent of the bit width, so one calibration serves a whole sweep. Used by notebook 06.
    """

    model_name: str
    ranges: dict[str, tuple[float, float]]
    n_samples: int


def _batches(representative: Any, batch_size: int = 256) -> Iterable[np.ndarray]:
    if isinstance(representative, np.ndarray):
        for i in range(0, len(representative), batch_size):
            yield np.asarray(representative[i:i + batch_size], np.float32)
        return
    if isinstance(representative, tf.data.Dataset):
        representative = representative.as_numpy_iterator()
    for item in representative:
        if isinstance(item, (tuple, list)):
            item = item[0]
        yield np.asarray(item, np.float32)


def calibrate(model: "tf.keras.Model", representative: Any, *, folded: "tf.keras.Model | None" = None,
              batch_size: int = 256) -> Calibration:
    """Min/max of every activation quantization point over ``representative`` inputs (an array
    ``(N, ...)``, an iterable of batches or a ``tf.data.Dataset`` of ``x`` or ``(x, y)``), measured on the
    BN-folded float model like the TFLite calibrator (float ranges, not sequentially quantized). A few
    hundred samples from the training split are typical. Used by :func:`ptq` (notebook 06)."""
    folded = folded if folded is not None else fold_batchnorm(model)
    g = _graph(folded)
    names = [p.layer for p in _plan(g) if p.kind == "calibrate"]
    probe = tf.keras.Model(folded.inputs, [g.layer(n).output for n in names])
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    count = 0
    for xb in _batches(representative, batch_size):
        outs = probe(xb, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs):
            o = o.numpy()
            lo[n] = min(lo[n], float(o.min()))
            hi[n] = max(hi[n], float(o.max()))
        count += len(xb)
    if count == 0:
        raise ValueError("representative data is empty: pass a few hundred training inputs, e.g. x_train[:500]")
    return Calibration(model.name, {n: (lo[n], hi[n]) for n in names}, count)


# --------------------------------------------------------------------------------------------- PTQ
def _quantized_weights(layer: Any, num_bits: int, per_channel: bool) -> list[np.ndarray] | None:
    cls = _cls(layer)
    w = layer.get_weights()
    if cls in ("Conv1D", "Conv2D", "Dense"):
        return [quantize_weights(w[0], num_bits, per_channel=per_channel), *w[1:]]
    if cls == "DepthwiseConv2D":  # one scale per output channel (in * multiplier), like TFLite
        k = np.asarray(w[0])
        flat = k.reshape(k.shape[0], k.shape[1], -1)
        return [quantize_weights(flat, num_bits, per_channel=per_channel).reshape(k.shape), *w[1:]]
    if cls in ("LSTM", "GRU", "SimpleRNN"):  # kernel and recurrent kernel; biases stay float (int32 in TFLite)
        out = []
        for var, arr in zip(layer.weights, w):
            is_kernel = "kernel" in var.name
            out.append(quantize_weights(arr, num_bits, per_channel=per_channel) if is_kernel else arr)
        return out
    return None


def ptq(
    model: "tf.keras.Model",
    num_bits: int = 8,
    *,
    weights: str = "per_channel",
    activations: bool = False,
    representative: Any = None,
    calibration: Calibration | None = None,
) -> "tf.keras.Model":
    """Post-training quantization simulated in float at ``num_bits`` (2..16): a new ``tf.keras`` model.

    BatchNorm is folded first (:func:`fold_batchnorm`). Weights of Conv1D/Conv2D/DepthwiseConv2D/Dense
    (and the kernels of LSTM/GRU) are fake-quantized symmetric, narrow range, ``weights="per_channel"``
    (one scale per output channel, TFLite's default) or ``"per_tensor"``; biases stay float (TFLite stores
    them as int32, a negligible error). With ``activations=True`` a :class:`FakeQuant` layer follows every
    tensor TFLite would store in int8 (:func:`quant_points`), with asymmetric parameters from the ranges
    calibrated on ``representative`` inputs (or a precomputed ``calibration``); the final softmax keeps
    TFLite's fixed 8-bit output encoding at every width (a coarser grid on probabilities would only add
    argmax ties). At 8 bits it matches the real int8 ``.tflite`` within rounding (see tests).
    LSTM/GRU internals (gates, state) stay float here. Used by notebook 06.
    """
    num_bits = _check_bits(num_bits)
    if weights not in ("per_channel", "per_tensor"):
        raise ValueError(f"weights must be 'per_channel' or 'per_tensor', got {weights!r}")
    folded = fold_batchnorm(model)
    if activations and calibration is None:
        if representative is None:
            raise ValueError("activation quantization needs calibration data: pass representative="
                             "x_train[:500] (or calibration=quantize.calibrate(model, x))")
        calibration = calibrate(model, representative, folded=folded)
    return _ptq_folded(_graph(folded), model.name, num_bits, weights, calibration if activations else None)


def _ptq_folded(g: _Graph, model_name: str, num_bits: int, weights: str,
                calibration: Calibration | None) -> "tf.keras.Model":
    """:func:`ptq` on an already folded graph (a sweep folds once); ``calibration=None``: weights only."""
    new_weights = {}
    for name in g.order:
        q = _quantized_weights(g.layer(name), num_bits, weights == "per_channel")
        if q is not None:
            new_weights[name] = q
    after: dict[str, list[Any]] = {}
    if calibration is not None:
        params: dict[str, tuple[float, int]] = {}
        for p in _plan(g):
            bits = num_bits
            if p.kind == "calibrate":
                if p.layer not in calibration.ranges:
                    raise ValueError(f"calibration has no range for {p.layer!r}: it was made for another model "
                                     f"({calibration.model_name!r}); recalibrate with quantize.calibrate(model, x)")
                params[p.layer] = asymmetric_params(*calibration.ranges[p.layer], num_bits)
            elif p.kind == "same":
                params[p.layer] = params[p.source]
            else:  # fixed softmax/sigmoid/tanh output encoding, kept at 8 bits
                params[p.layer] = (float(p.scale), int(p.zero_point))
                bits = 8
            scale, zp = params[p.layer]
            after[p.layer] = [FakeQuant(bits, scale, zp, name=f"{p.layer}_fq")]
    kind = "wa" if calibration is not None else "w"
    tag = "" if weights == "per_channel" else "_pt"
    return _rebuild(g, weights=new_weights, after=after, name=f"{model_name}_ptq_{kind}{num_bits}{tag}")


def weight_error(model: "tf.keras.Model", bits: Sequence[int] = (8, 4)) -> "pd.DataFrame":
    """Per quantized layer of the BN-folded model: output channels, how unequal the channels' ranges are
    (largest / smallest channel max|w|) and the relative RMS weight error
    ``||w_q - w|| / ||w||`` per tensor vs per channel at each width in ``bits``. Used by notebook 06."""
    import pandas as pd

    g = _graph(fold_batchnorm(model))
    rows = []
    for name in g.order:
        layer = g.layer(name)
        if _cls(layer) not in _KERNEL_LAYERS:
            continue
        w = np.asarray(layer.get_weights()[0], np.float64)
        if _cls(layer) == "DepthwiseConv2D":
            w = w.reshape(w.shape[0], w.shape[1], -1)
        ch_max = np.max(np.abs(w.reshape(-1, w.shape[-1])), axis=0)
        row: dict[str, Any] = {"layer": name, "type": _cls(layer), "channels": int(w.shape[-1]),
                               "range_ratio": float(ch_max.max() / max(ch_max[ch_max > 0].min(), 1e-12))
                               if np.any(ch_max > 0) else float("nan")}
        norm = np.linalg.norm(w) or 1.0
        for b in bits:
            for per_channel, tag in ((False, "per_tensor"), (True, "per_channel")):
                err = np.linalg.norm(quantize_weights(w, b, per_channel=per_channel) - w) / norm
                row[f"err_{b}bit_{tag}"] = float(err)
        rows.append(row)
    return pd.DataFrame(rows)


def quantization_table(x: Sequence[float], num_bits: int, rmin: float, rmax: float) -> "pd.DataFrame":
    """A worked example: each value of ``x`` with its integer code, the value that code stands for and
    the error, for activations calibrated to ``[rmin, rmax]`` at ``num_bits`` (:func:`asymmetric_params`).
    Values outside the range are clipped. Used by notebook 06."""
    import pandas as pd

    x = np.asarray(x, np.float64)
    scale, zp = asymmetric_params(rmin, rmax, num_bits)
    q = quantize_int(x, num_bits, scale, zp)
    x_hat = fake_quant(x, num_bits, scale, zp)
    return pd.DataFrame({"bits": num_bits, "scale": scale, "zero_point": zp, "x": x, "x/scale": x / scale,
                         "q": q, "x_hat": x_hat, "error": x_hat - x})


def clipping_table(model: "tf.keras.Model", representative: Any, x: np.ndarray, *, num_bits: int = 8
                   ) -> "pd.DataFrame":
    """For every calibrated activation tensor: the range calibrated on ``representative``, the range the
    tensor actually takes on ``x`` (e.g. the test inputs), the fraction of its values on ``x`` that fall
    outside the calibrated range (clipped by quantization) and the step (scale) at ``num_bits``.
    Clipping, unlike rounding, does not shrink with more bits. Used by notebook 06."""
    import pandas as pd

    calibration = calibrate(model, representative)
    folded = fold_batchnorm(model)
    names = list(calibration.ranges)
    probe = tf.keras.Model(folded.inputs, [folded.get_layer(n).output for n in names])
    seen = {n: [np.inf, -np.inf, 0, 0] for n in names}
    for xb in _batches(np.asarray(x, np.float32)):
        outs = probe(xb, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs):
            o = o.numpy()
            lo, hi = calibration.ranges[n]
            rec = seen[n]
            rec[0], rec[1] = min(rec[0], float(o.min())), max(rec[1], float(o.max()))
            rec[2] += int(np.count_nonzero((o < min(lo, 0.0)) | (o > max(hi, 0.0))))
            rec[3] += o.size
    rows = []
    for n in names:
        lo, hi = calibration.ranges[n]
        rows.append({"tensor": n, "calibrated_min": lo, "calibrated_max": hi, "min": seen[n][0], "max": seen[n][1],
                     "clipped_fraction": seen[n][2] / max(seen[n][3], 1),
                     "scale": asymmetric_params(lo, hi, num_bits)[0]})
    return pd.DataFrame(rows)


def agreement(a: Any, b: Any, x: np.ndarray) -> dict[str, float]:
    """How closely two models (Keras, PTQ/QAT or a converted .tflite) agree on inputs ``x``: fraction of
    equal argmax (top-1 decisions) and the mean and max absolute output difference. Used by notebook 06."""
    pa, pb = predict(a, x), predict(b, x)
    pa, pb = pa.reshape(len(pa), -1), pb.reshape(len(pb), -1)
    diff = np.abs(pa - pb)
    return {"argmax_agreement": float((pa.argmax(-1) == pb.argmax(-1)).mean()),
            "mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max())}


# --------------------------------------------------------------------------------------------- QAT
_qk = tfmot.quantization.keras


class PerChannelLastValueQuantizer(_qk.quantizers.LastValueQuantizer):
    """Symmetric per-output-channel weight quantizer for any kernel rank, as TFLite stores weights: a
    Conv1D kernel ``(k, in, out)`` gets one range per ``out``, a DepthwiseConv2D kernel
    ``(kh, kw, in, mult)`` one per ``in * mult`` (``depthwise=True``). tfmot's per-axis quantizers take
    the last axis and handle 2-D and 4-D tensors only: one range for a whole depthwise kernel (its last
    axis is the multiplier, 1), an error for Conv1D. Used by :class:`NBitQuantizeConfig`."""

    def __init__(self, num_bits: int, per_axis: bool = True, symmetric: bool = True, narrow_range: bool = True,
                 depthwise: bool = False) -> None:
        super().__init__(num_bits, per_axis=True, symmetric=True, narrow_range=True)
        self.depthwise = bool(depthwise)

    def _channels(self, shape: Any) -> int:
        return int(shape[-2]) * int(shape[-1]) if self.depthwise else int(shape[-1])

    def build(self, tensor_shape, name, layer):  # noqa: D102 - tfmot API
        channels = self._channels(tensor_shape)
        return {f"{k}_var": layer.add_weight(f"{name}_{k}", shape=(channels,), trainable=False,
                                             initializer=tf.keras.initializers.Constant(v))
                for k, v in (("min", -6.0), ("max", 6.0))}

    def __call__(self, inputs, training, weights, **kwargs):  # noqa: D102 - tfmot API
        flat = tf.reshape(inputs, [-1, self._channels(inputs.shape)])
        if training:  # last value: the range of the current weights
            m = tf.reduce_max(tf.abs(flat), axis=0)
            weights["min_var"].assign(-m)
            weights["max_var"].assign(m)
        q = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            flat, weights["min_var"], weights["max_var"], num_bits=self.num_bits, narrow_range=True)
        return tf.reshape(q, tf.shape(inputs))

    def get_config(self) -> dict:  # noqa: D102 - tfmot API
        return {**super().get_config(), "depthwise": self.depthwise}


class NBitQuantizeConfig(_qk.QuantizeConfig):
    """A tfmot ``QuantizeConfig`` at ``num_bits``: the weights named in ``weight_attrs`` with a last-value
    quantizer (symmetric, narrow range, one range per output channel: :class:`PerChannelLastValueQuantizer`;
    tfmot's ``LastValueQuantizer`` per tensor with ``per_axis=False``), the layer's ``activation``
    (``activation_attrs``: after a ReLU/linear, before a softmax, as tfmot does) and/or its output
    (``quantize_output``) with ``MovingAverageQuantizer`` (asymmetric, an exponential moving average of
    the batch min/max). Used by :func:`qat` (notebook 06)."""

    def __init__(self, num_bits: int = 8, weight_attrs: Sequence[str] = (), activation_attrs: Sequence[str] = (),
                 quantize_output: bool = False, per_axis: bool = True) -> None:
        self.num_bits = _check_bits(num_bits)
        self.weight_attrs = list(weight_attrs)
        self.activation_attrs = list(activation_attrs)
        self.quantize_output = bool(quantize_output)
        self.per_axis = bool(per_axis)

    def _weight_quantizer(self, attr: str) -> Any:
        if self.per_axis:
            return PerChannelLastValueQuantizer(self.num_bits, depthwise=attr == "depthwise_kernel")
        return _qk.quantizers.LastValueQuantizer(self.num_bits, per_axis=False, symmetric=True, narrow_range=True)

    def _activation_quantizer(self) -> Any:
        return _qk.quantizers.MovingAverageQuantizer(self.num_bits, per_axis=False, symmetric=False,
                                                     narrow_range=False)

    def get_weights_and_quantizers(self, layer):  # noqa: D102 - tfmot API
        return [(getattr(layer, a), self._weight_quantizer(a)) for a in self.weight_attrs]

    def get_activations_and_quantizers(self, layer):  # noqa: D102 - tfmot API
        return [(getattr(layer, a), self._activation_quantizer()) for a in self.activation_attrs]

    def set_quantize_weights(self, layer, quantize_weights):  # noqa: D102 - tfmot API
        for attr, w in zip(self.weight_attrs, quantize_weights):
            setattr(layer, attr, w)

    def set_quantize_activations(self, layer, quantize_activations):  # noqa: D102 - tfmot API
        for attr, a in zip(self.activation_attrs, quantize_activations):
            setattr(layer, attr, a)

    def get_output_quantizers(self, layer):  # noqa: D102 - tfmot API
        return [self._activation_quantizer()] if self.quantize_output else []

    def get_config(self) -> dict:  # noqa: D102 - tfmot API
        return {"num_bits": self.num_bits, "weight_attrs": self.weight_attrs,
                "activation_attrs": self.activation_attrs, "quantize_output": self.quantize_output,
                "per_axis": self.per_axis}


def qat_scope() -> Any:
    """``tfmot.quantization.keras.quantize_scope`` that knows labkit's custom configs and layers: wrap
    ``tf.keras.models.load_model`` of a saved QAT model in it. Used by :func:`qat` (notebook 06)."""
    from . import models

    return _qk.quantize_scope({"NBitQuantizeConfig": NBitQuantizeConfig,
                               "PerChannelLastValueQuantizer": PerChannelLastValueQuantizer,
                               "LastObserved": models.LastObserved, "FakeQuant": FakeQuant})


_NOOP_LAYERS = _EXACT_PASS_THROUGH + ("InputLayer",)


def _check_qat_layers(model: "tf.keras.Model") -> None:
    for layer in model.layers:
        if _cls(layer) in _RECURRENT_LAYERS or isinstance(layer, tf.keras.layers.RNN):
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({_cls(layer)}) cannot be trained quantization-aware: tfmot "
                f"{tfmot.__version__} has no QAT support for recurrent layers (its registry leaves LSTMCell/GRUCell "
                "out). Use post-training quantization instead (quantize.ptq, or labkit.convert.convert(model, "
                "'int8_wa', x)), or a forecaster without recurrence (fc_mlp, fc_cnn)")


def _fuse_relu(model: "tf.keras.Model") -> "tf.keras.Model":
    """Merge each plain ReLU layer into the Conv/Dense before it (``activation="relu"``), the graph TFLite
    runs; tfmot then quantizes after the ReLU and the weights keep their custom quantizers."""
    g = _graph(model)
    skip, configs = {}, {}
    for name in g.order:
        layer = g.layer(name)
        if not _is_plain_relu(layer) or len(g.inbound[name]) != 1:
            continue
        src = g.inbound[name][0][0]
        prod = g.layer(src)
        if (_cls(prod) in _KERNEL_LAYERS and _activation_name(prod) == "linear" and len(g.consumers[src]) == 1
                and not g.is_output(src) and src not in skip.values()):
            skip[name] = src
            configs[src] = {**configs.get(src, prod.get_config()), "activation": "relu"}
    return _rebuild(g, skip=skip, configs=configs, name=model.name) if skip else model


def _nbit_config(layer: Any, num_bits: int, per_axis: bool) -> Any:
    cls = _cls(layer)
    if cls in ("Conv1D", "Conv2D", "Dense"):
        return NBitQuantizeConfig(num_bits, ["kernel"], ["activation"], per_axis=per_axis)
    if cls == "DepthwiseConv2D":
        return NBitQuantizeConfig(num_bits, ["depthwise_kernel"], ["activation"], per_axis=per_axis)
    if cls in _NOOP_LAYERS or (cls == "Activation" and _activation_name(layer) in _SPLIT_ACTIVATIONS):
        return NBitQuantizeConfig(num_bits)  # values pass through (softmax: its logits are quantized)
    if layer.weights and cls not in ("BatchNormalization",):
        raise UnsupportedLayerError(f"layer {layer.name!r} ({cls}) has weights but no {num_bits}-bit QAT rule in "
                                    "labkit.quantize; use Conv/DepthwiseConv/Dense layers or quantize.ptq")
    return NBitQuantizeConfig(num_bits, quantize_output=True)  # ReLU, Add, pooling, custom layers ...


def _annotate_default_8bit(model: "tf.keras.Model") -> "tf.keras.Model":
    registry = _qk.default_8bit.Default8BitQuantizeRegistry()

    def annotate(layer: Any) -> Any:
        builtin = type(layer).__module__.startswith(("tf_keras.", "keras."))
        if registry.supports(layer):
            return _qk.quantize_annotate_layer(layer)
        if _cls(layer) == "Conv1D":  # not in tfmot's registry; TFLite runs it as a Conv2D (expand_dims), and
            # its converter cannot carry a per-channel fake-quant through that reshape: one range per tensor
            return _qk.quantize_annotate_layer(layer, NBitQuantizeConfig(8, ["kernel"], ["activation"],
                                                                         per_axis=False))
        if builtin:  # e.g. BatchNormalization: handled by tfmot's transforms (or rejected with its message)
            return _qk.quantize_annotate_layer(layer)
        if not layer.weights:  # a weight-free custom layer (e.g. labkit.models.LastObserved): quantize its output
            return _qk.quantize_annotate_layer(layer, NBitQuantizeConfig(8, quantize_output=True))
        raise UnsupportedLayerError(f"custom layer {layer.name!r} ({_cls(layer)}) has weights and no tfmot 8-bit "
                                    "rule; annotate it with a QuantizeConfig or use quantize.ptq")

    return tf.keras.models.clone_model(model, clone_function=annotate)


def _annotate_nbit(model: "tf.keras.Model", num_bits: int, per_axis: bool) -> "tf.keras.Model":
    return tf.keras.models.clone_model(
        model, clone_function=lambda layer: _qk.quantize_annotate_layer(layer, _nbit_config(layer, num_bits,
                                                                                            per_axis)))


_RANGE_VARS = ("output", "post_activation", "pre_activation")


def init_activation_ranges(qat_model: "tf.keras.Model", reference: "tf.keras.Model", representative: Any,
                           *, batch_size: int = 256) -> int:
    """Set the activation ranges (``*_min``/``*_max`` of tfmot's activation and input quantizers) of a
    freshly quantize-applied model to the min/max that ``reference`` (its float, BN-folded twin with the
    same layer names) reaches on ``representative`` inputs. tfmot starts them at [-6, 6] and moves them
    by an exponential average (decay 0.999): after a short fine-tune they would still be far too wide, so
    QAT would look worse than PTQ. Returns how many ranges were set. Used by :func:`qat` (notebook 06)."""
    targets: dict[str, list[tuple[Any, str]]] = {}
    for layer in qat_model.layers:
        src = "__input__" if _cls(layer) == "QuantizeLayer" else getattr(getattr(layer, "layer", None), "name", None)
        if src is None:
            continue
        for v in layer.non_trainable_weights:
            base = v.name.split("/")[-1].split(":")[0]
            # QuantizeLayer variables carry the layer's (uniquified) name: quantize_layer_3_min ...
            kinds = (layer.name,) if src == "__input__" else _RANGE_VARS
            for end in ("min", "max"):
                if any(base == f"{kind}_{end}" for kind in kinds):
                    targets.setdefault(src, []).append((v, end))
    names = [n for n in targets if n != "__input__" and n in {lay.name for lay in reference.layers}]
    probe = tf.keras.Model(reference.inputs, [reference.get_layer(n).output for n in names] or reference.outputs)
    lo = {n: np.inf for n in names + ["__input__"]}
    hi = {n: -np.inf for n in names + ["__input__"]}
    for xb in _batches(representative, batch_size):
        lo["__input__"], hi["__input__"] = min(lo["__input__"], float(xb.min())), max(hi["__input__"], float(xb.max()))
        outs = probe(xb, training=False) if names else []
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs):
            o = o.numpy()
            lo[n], hi[n] = min(lo[n], float(o.min())), max(hi[n], float(o.max()))
    count = 0
    for n in names + ["__input__"]:
        if n not in targets or not np.isfinite(lo[n]):
            continue
        for var, end in targets[n]:
            var.assign(min(lo[n], 0.0) if end == "min" else max(hi[n], 0.0))
            count += 1
    return count


@dataclasses.dataclass
class QATResult:
    """A quantization-aware fine-tuned model. ``model`` is a tfmot model (fake quantization in the
    graph): evaluate it like any Keras model; ``convertible`` says whether
    ``labkit.convert.convert(model, "int8_wa", x)`` gives a real int8 .tflite (8-bit tfmot scheme only).
    Used by notebook 06."""

    model: "tf.keras.Model"
    num_bits: int
    scheme: str
    history: dict[str, list[float]]
    train_time_s: float
    ranges_initialised: int

    @property
    def convertible(self) -> bool:
        """True for the 8-bit tfmot default scheme (TFLite has int8 kernels only)."""
        return self.scheme == "tfmot_8bit"


def _default_metrics(loss: Any) -> list[str]:
    name = loss if isinstance(loss, str) else type(loss).__name__
    return ["accuracy"] if "categorical" in str(name).lower() else []


def qat(
    model: "tf.keras.Model",
    num_bits: int = 8,
    *,
    x_train: np.ndarray,
    y_train: np.ndarray,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 3,
    batch_size: int = 64,
    learning_rate: float = 5e-4,
    loss: Any = None,
    metrics: Sequence[Any] | None = None,
    scheme: str = "auto",
    weights: str = "per_channel",
    representative: Any = None,
    seed: int = 0,
    verbose: int = 0,
) -> QATResult:
    """Quantization-aware training: fine-tune a trained float ``model`` for ``epochs`` with fake
    quantization of weights and activations at ``num_bits`` in the forward pass (straight-through
    gradients), starting from its weights. ``model`` is left unchanged.

    ``scheme="auto"`` picks ``"tfmot_8bit"`` at 8 bits (``tfmot.quantization.keras.quantize_model``'s
    scheme; a custom output config for weight-free custom layers such as ``LastObserved``; convertible to
    a real int8 .tflite) and ``"custom"`` otherwise: BatchNorm folded and ReLU fused first (BN statistics
    are frozen, as recommended for fine-tuning), every layer annotated with an :class:`NBitQuantizeConfig`
    (``weights="per_channel"`` or ``"per_tensor"``) and applied with ``quantize_apply`` inside
    ``quantize_scope`` with tfmot's n-bit scheme (n-bit input quantizer). TFLite has no kernels below 8
    bits, so those models are evaluated in simulation only. Activation ranges start at the calibrated
    min/max on ``representative`` inputs (default: up to 500 training inputs), see
    :func:`init_activation_ranges`. ``loss`` defaults to the model's compiled loss.
    Raises :class:`UnsupportedLayerError` for LSTM/GRU (no tfmot QAT support). Used by notebook 06.
    """
    from tqdm.auto import tqdm

    from . import config

    num_bits = _check_bits(num_bits)
    if num_bits > 8:
        raise ValueError(f"QAT supports 2..8 bits (tfmot's fake-quant ops), got {num_bits}")
    if scheme == "auto":
        scheme = "tfmot_8bit" if num_bits == 8 else "custom"
    if scheme not in ("tfmot_8bit", "custom"):
        raise ValueError(f"scheme must be 'auto', 'tfmot_8bit' or 'custom', got {scheme!r}")
    if scheme == "tfmot_8bit" and num_bits != 8:
        raise ValueError("scheme 'tfmot_8bit' is 8-bit only; use scheme='custom' for other widths")
    if weights not in ("per_channel", "per_tensor"):
        raise ValueError(f"weights must be 'per_channel' or 'per_tensor', got {weights!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1 (the weight ranges are set by training steps), got {epochs}")
    loss = loss if loss is not None else getattr(model, "loss", None)
    if loss is None:
        raise ValueError("the model is not compiled, so its loss is unknown: pass loss= (e.g. "
                         "'sparse_categorical_crossentropy' for KWS, 'mae' for forecasting)")
    metrics = list(metrics) if metrics is not None else _default_metrics(loss)
    _check_qat_layers(model)
    config.seed_everything(seed)

    folded = fold_batchnorm(model)
    with qat_scope():
        if scheme == "tfmot_8bit":
            reference = folded
            try:
                qmodel = _qk.quantize_apply(_annotate_default_8bit(model))
            except RuntimeError as exc:  # tfmot: "Layer x:<class> is not supported. You can quantize ..."
                if "not supported" not in str(exc):
                    raise
                raise UnsupportedLayerError(f"tfmot's 8-bit QAT scheme rejects {model.name!r}: {exc}") from exc
        else:
            reference = _fuse_relu(folded)
            n_bit = _qk.experimental.default_n_bit.DefaultNBitQuantizeScheme(
                num_bits_weight=num_bits, num_bits_activation=num_bits)
            qmodel = _qk.quantize_apply(_annotate_nbit(reference, num_bits, weights == "per_channel"), scheme=n_bit)
    rep = representative if representative is not None else np.asarray(x_train)[:500]
    n_ranges = init_activation_ranges(qmodel, reference, rep)

    qmodel.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    x_train = np.asarray(x_train, np.float32)
    y_train = np.asarray(y_train)
    opts = tf.data.Options()
    opts.deterministic = True
    # full batches only (reshuffled each epoch, so no sample is left out for good): a last, smaller batch
    # would make Keras trace the (large) fake-quant training graph a second time
    train_ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
                .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
                .batch(batch_size, drop_remainder=len(x_train) >= batch_size)
                .prefetch(tf.data.AUTOTUNE).with_options(opts))
    val_ds = None
    if validation_data is not None:
        val_ds = tf.data.Dataset.from_tensor_slices(
            (np.asarray(validation_data[0], np.float32), np.asarray(validation_data[1]))).batch(512)
    history: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for epoch in tqdm(range(epochs), desc=f"QAT {num_bits}-bit", leave=False, disable=verbose > 0):
        h = qmodel.fit(train_ds, validation_data=val_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=verbose)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(x) for x in v)
    return QATResult(model=qmodel, num_bits=num_bits, scheme=scheme, history=history,
                     train_time_s=time.perf_counter() - t0, ranges_initialised=n_ranges)


# ----------------------------------------------------------------------------- evaluation and sweeps
def predict(model: Any, x: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Outputs of a Keras model (direct batched calls, inference mode: no per-model retracing or data
    pipeline, which matters when a sweep builds dozens of models) or of a converted .tflite
    (``labkit.convert.Converted`` / bytes, run with LiteRT). Used by notebook 06."""
    from . import convert

    x = np.asarray(x, np.float32)
    if isinstance(model, (convert.Converted, bytes, bytearray)):
        return convert.predict_tflite(model, x, batch_size=batch_size)
    outs = [np.asarray(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


Evaluator = Callable[[Any], dict[str, float]]


def calibration_set(x: np.ndarray, samples: int = 200) -> np.ndarray:
    """Up to ``samples`` inputs evenly spaced over ``x`` (training inputs): the representative set for
    activation ranges, the same selection ``labkit.convert.convert`` makes, so the simulation and the
    converter calibrate on identical data. Used by notebook 06."""
    x = np.asarray(x, np.float32)
    if len(x) == 0:
        raise ValueError("no inputs to calibrate on: pass training inputs, e.g. features of data.x_train")
    idx = np.unique(np.linspace(0, len(x) - 1, min(int(samples), len(x))).round().astype(int))
    return x[idx]


def kws_evaluator(x: np.ndarray, y: np.ndarray, *, limit: int | None = None) -> Evaluator:
    """A function ``model -> {"top1": accuracy}`` on features ``x`` and labels ``y`` (first ``limit``);
    the model is a Keras model (float, PTQ or QAT) or a converted .tflite. Used by notebook 06."""
    n = len(x) if limit is None else min(len(x), int(limit))
    xs, ys = np.asarray(x, np.float32)[:n], np.asarray(y).astype(np.int64).ravel()[:n]

    def evaluate(model: Any) -> dict[str, float]:
        return {"top1": float((predict(model, xs).argmax(axis=-1) == ys).mean())}

    return evaluate


def forecast_evaluator(windows: Any, split: str = "test", *, limit: int | None = None) -> Evaluator:
    """A function ``model -> {"T_mae": ..., "RH_mae": ...}`` (real units, averaged over the output steps)
    on the first ``limit`` windows of ``split``; Keras model or converted .tflite. Used by notebook 06."""
    from . import train

    x = np.asarray(getattr(windows, f"x_{split}"), np.float32)
    y = np.asarray(getattr(windows, f"y_{split}"))
    n = len(x) if limit is None else min(len(x), int(limit))
    x, y = x[:n], y[:n]
    names = list(windows.target_names)
    true = np.asarray(windows.denormalize_targets(y), np.float64)

    def evaluate(model: Any) -> dict[str, float]:
        pred = np.asarray(windows.denormalize_targets(predict(model, x).reshape(y.shape)), np.float64)
        out = train.forecast_mae(true, pred, names)
        return {k: float(v) for k, v in out.items() if not k.endswith("_steps")}

    return evaluate


PTQ_METHODS: dict[str, dict[str, Any]] = {
    "PTQ W": {"weights": "per_channel", "activations": False},
    "PTQ W (per-tensor)": {"weights": "per_tensor", "activations": False},
    "PTQ W+A": {"weights": "per_channel", "activations": True},
}
"""The PTQ variants of :func:`ptq_sweep`, by label."""


def ptq_sweep(model: "tf.keras.Model", evaluate: Evaluator, *, bits: Sequence[int] = range(2, 9),
              representative: Any = None, methods: Sequence[str] = ("PTQ W", "PTQ W+A"),
              name: str | None = None, progress: bool = True) -> "pd.DataFrame":
    """Accuracy (or MAE) of :func:`ptq` at every bit width in ``bits`` for each of ``methods`` (keys of
    :data:`PTQ_METHODS`), plus the float model (``method="FP32"``, ``bits=32``). Activation ranges are
    calibrated once on ``representative``. One row per (method, bits). Used by notebook 06."""
    import pandas as pd
    from tqdm.auto import tqdm

    unknown = [m for m in methods if m not in PTQ_METHODS]
    if unknown:
        raise ValueError(f"unknown PTQ method(s) {unknown}; choose from {list(PTQ_METHODS)}")
    name = name or model.name
    g = _graph(fold_batchnorm(model))
    calibration = None
    if any(PTQ_METHODS[m]["activations"] for m in methods):
        if representative is None:
            raise ValueError("PTQ W+A needs representative inputs: pass representative=x_train[:500]")
        calibration = calibrate(model, representative, folded=g.model)
    rows = [{"model": name, "method": "FP32", "bits": 32, **evaluate(model)}]
    jobs = [(m, b) for m in methods for b in bits]
    for method, b in tqdm(jobs, desc=f"PTQ sweep {name}", leave=False, disable=not progress):
        spec = PTQ_METHODS[method]
        q = _ptq_folded(g, model.name, _check_bits(b), spec["weights"], calibration if spec["activations"] else None)
        rows.append({"model": name, "method": method, "bits": int(b), **evaluate(q)})
    return pd.DataFrame(rows)


def qat_sweep(model: "tf.keras.Model", evaluate: Evaluator, *, bits: Sequence[int] = (2, 4, 6, 8),
              x_train: np.ndarray, y_train: np.ndarray, name: str | None = None, progress: bool = True,
              **qat_kwargs: Any) -> tuple["pd.DataFrame", dict[int, QATResult]]:
    """:func:`qat` at each width in ``bits`` (same fine-tuning budget each, ``qat_kwargs`` passed on),
    each evaluated in simulation: a table with one row per width (``method="QAT W+A"``, ``scheme``,
    ``train_time_s``) and the results by width (the 8-bit one converts to a real int8 .tflite).
    Used by notebook 06."""
    import pandas as pd
    from tqdm.auto import tqdm

    name = name or model.name
    rows, results = [], {}
    for b in tqdm(list(bits), desc=f"QAT sweep {name}", leave=False, disable=not progress):
        res = qat(model, int(b), x_train=x_train, y_train=y_train, **qat_kwargs)
        results[int(b)] = res
        rows.append({"model": name, "method": "QAT W+A", "bits": int(b), **evaluate(res.model),
                     "scheme": res.scheme, "train_time_s": round(res.train_time_s, 1)})
    return pd.DataFrame(rows), results


_METRIC_LABELS = {"top1": "test top-1 accuracy", "T_mae": "T MAE (degC)", "RH_mae": "RH MAE (%RH)"}


def plot_bit_sweep(frames: "pd.DataFrame | Mapping[str, pd.DataFrame]", metrics: str | Sequence[str] = "top1",
                   *, title: str = "") -> "matplotlib.figure.Figure":
    """The course's figure: ``metric`` against bit width (2..8), one line per method (PTQ W, PTQ W+A,
    QAT W+A ...), the float model as a dashed line; one panel per model (``frames`` maps a model name to
    its rows from :func:`ptq_sweep` + :func:`qat_sweep`) and per metric. Used by notebook 06."""
    import matplotlib.pyplot as plt
    import pandas as pd

    if isinstance(frames, pd.DataFrame):
        frames = {str(frames["model"].iloc[0]) if "model" in frames else "": frames}
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    panels = [(n, f, m) for n, f in frames.items() for m in metrics]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    styles = {"PTQ W": ("tab:blue", "o"), "PTQ W (per-tensor)": ("tab:cyan", "v"), "PTQ W+A": ("tab:orange", "s"),
              "QAT W+A": ("tab:green", "^")}
    for ax, (name, frame, metric) in zip(axes[0], panels):
        if metric not in frame:
            raise ValueError(f"no column {metric!r} in the sweep of {name!r}; columns: {list(frame.columns)}")
        fp = frame[frame["method"] == "FP32"]
        bit_rows = frame[frame["method"] != "FP32"]
        for method, rows in bit_rows.groupby("method", sort=False):
            rows = rows.sort_values("bits")
            color, marker = styles.get(method, (None, "o"))
            ax.plot(rows["bits"], rows[metric], marker=marker, color=color, lw=1.5, label=method)
        if len(fp):
            ax.axhline(float(fp[metric].iloc[0]), color="black", ls="--", lw=1, label="FP32")
        ax.set_xticks(sorted(bit_rows["bits"].unique()))
        ax.set(xlabel="bit width (W: weights; W+A: weights and activations)", ylabel=_METRIC_LABELS.get(metric, metric),
               title=f"{name}: {_METRIC_LABELS.get(metric, metric).split(' (')[0]}")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def summary_table(model: "tf.keras.Model", evaluate: Evaluator, *, representative: np.ndarray,
                  qat_model: "QATResult | tf.keras.Model | None" = None, converted: Mapping[str, Any] | None = None,
                  name: str | None = None, runs: int = 200, warmup: int = 20) -> "pd.DataFrame":
    """The course's summary: FP32, INT8 W, INT8 W+A (post-training) and QAT INT8 (``qat_model``, from
    :func:`qat` at 8 bits) as real .tflite files (``labkit.convert``): metric measured on the file, the
    same metric simulated in Keras (float model, 8-bit :func:`ptq`, QAT model), file and zlib size (kB)
    and LiteRT batch-1 latency (median ms, one thread). ``converted`` reuses files already converted
    from ``model`` (``{"int8_wa": Converted, ...}``). Used by notebook 06."""
    import pandas as pd

    from . import bench, convert

    name = name or model.name
    if isinstance(qat_model, QATResult):
        if not qat_model.convertible:
            raise ValueError(f"the {qat_model.num_bits}-bit QAT model has no TFLite kernels; pass the 8-bit one")
        qat_model = qat_model.model
    x1 = np.asarray(representative, np.float32)[:1]
    entries = [("FP32", model, "fp32", model), ("INT8 W", model, "int8_w", ptq(model, 8)),
               ("INT8 W+A", model, "int8_wa", ptq(model, 8, activations=True, representative=representative))]
    if qat_model is not None:
        entries.append(("QAT INT8", qat_model, "int8_wa", qat_model))
    rows = []
    for label, source, mode, simulated in entries:
        conv = (converted or {}).get(mode) if source is model else None
        if conv is None:
            conv = convert.convert(source, mode, representative if mode == "int8_wa" else None, name=name)
        measured = evaluate(conv)
        sim = evaluate(simulated)
        lat = bench.latency_tflite(conv.data, x1, runs=runs, warmup=warmup)
        rows.append({"model": name, "variant": label, **measured, **{f"simulated_{k}": v for k, v in sim.items()},
                     "tflite_kb": round(conv.size_kb, 2), "zlib_kb": round(conv.zlib_kb, 2),
                     "latency_ms": round(lat["median_ms"], 4)})
    return pd.DataFrame(rows)
