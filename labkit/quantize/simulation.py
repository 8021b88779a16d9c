"""Post-training quantization simulated in float: the graph TFLite quantizes (BatchNorm folded, softmax
split out), where it stores int8 tensors (quantization points), their calibrated ranges, and
:func:`ptq` - a plain ``tf.keras`` model with fake-quantized weights and, optionally, activations.

The graph comes from ``labkit.graph`` (the walker and folding rules the estimates use too).
Used by notebook 06 (through ``labkit.quantize``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

import numpy as np
import tensorflow as tf

from ..graph import Graph, activation_name, fold_plan
from .arithmetic import asymmetric_params, check_bits, qrange, quantize_weights

__all__ = ["SOFTMAX_SCALE", "UnsupportedLayerError", "FakeQuant", "KERNEL_LAYERS", "fold_batchnorm", "quant_points",
           "Calibration", "batches", "calibrate", "ptq"]

SOFTMAX_SCALE = 1.0 / 256.0
"""TFLite's fixed int8 encoding of softmax/sigmoid outputs (scale 1/256, zero point -128)."""


class UnsupportedLayerError(ValueError):
    """A layer that this quantization path cannot handle (e.g. LSTM in tfmot QAT); the message names
    the layer and what to do instead. Used by notebook 06."""


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
        self.num_bits = check_bits(num_bits)
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
KERNEL_LAYERS: tuple[str, ...] = ("Conv1D", "Conv2D", "DepthwiseConv2D", "Dense")
"""Layers whose kernels are quantized (per output channel by default), as TFLite does."""
_RECURRENT_LAYERS = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")
_EXACT_PASS_THROUGH = ("Reshape", "Flatten", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
                       "GaussianDropout", "GaussianNoise", "MaxPooling1D", "MaxPooling2D", "GlobalMaxPooling1D",
                       "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
                       "Permute", "ActivityRegularization")
_SAME_SCALE = ("AveragePooling1D", "AveragePooling2D")   # TFLite requantizes them with the input's scale
_SPLIT_ACTIVATIONS = ("softmax", "sigmoid", "tanh")


def _cls(layer: Any) -> str:
    return type(layer).__name__


def _graph(model: Any) -> Graph:
    """The model's graph (``labkit.graph``), refusing what the rewriter cannot rebuild: subclassed,
    nested, shared and multi-output layers."""
    if not isinstance(model, tf.keras.Model) or not getattr(model, "_is_graph_network", False):
        raise TypeError(f"expected a built functional or Sequential tf.keras model, got {type(model).__name__}; "
                        "subclassed models cannot be rewritten (build the model with labkit.models.build)")
    g = Graph(model)
    for node in g.nodes:
        if isinstance(node.layer, tf.keras.Model):
            raise UnsupportedLayerError(f"layer {node.name!r} is a nested model; rebuild it as one flat functional "
                                        "model before quantizing")
        if len(node.outputs) > 1:
            raise UnsupportedLayerError(f"layer {node.name!r} has several outputs; not supported by this rewriter")
    shared = g.shared_layers()
    if shared:
        raise UnsupportedLayerError(f"layer(s) {shared} are shared (called more than once); quantization gives "
                                    "each call its own ranges, so unshare them (one layer per call)")
    return g


def _rebuild(g: Graph, *, skip: Mapping[str, str] | None = None, configs: Mapping[str, dict] | None = None,
             weights: Mapping[str, list[np.ndarray]] | None = None,
             after: Mapping[str, list[Any]] | None = None, name: str | None = None) -> Any:
    """A new functional model from ``g``: layers in ``skip`` are replaced by their input (folded),
    ``configs`` overrides layer configs, ``weights`` sets new weights, ``after`` lists layers applied
    to a layer's output (e.g. a split activation, a FakeQuant). Layer names are kept."""
    skip, configs, weights, after = skip or {}, configs or {}, weights or {}, after or {}
    tensors: dict[str, Any] = {}
    for lname in g.order:
        node = g.node(lname)
        layer = node.layer
        if node.is_input:
            lc = layer.get_config()
            t = tf.keras.Input(batch_shape=lc["batch_input_shape"], dtype=lc.get("dtype"), name=lname)
            tensors[f"{lname}:input"] = t
        else:
            ins = [tensors[src] for src in g.inbound(lname)]
            x = ins[0] if len(ins) == 1 else ins
            if lname in skip:
                t = x
            else:
                cfg = dict(configs.get(lname, layer.get_config()))
                new = type(layer).from_config(cfg)
                t = new(x, **node.call_kwargs)
                w = weights.get(lname)
                new.set_weights(w if w is not None else layer.get_weights())
        for extra in after.get(lname, []):
            t = extra(t)
        tensors[lname] = t
    inputs = [tensors[f"{n}:input"] for n in g.inputs]
    outputs = [tensors[o] for o in g.outputs]
    return tf.keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                          name=name or g.model.name)


def _fold_one(layer: Any, bn: Any) -> list[np.ndarray] | None:
    """Kernel and bias of ``layer`` with BatchNorm ``bn`` folded in, or None if it cannot be folded."""
    if _cls(layer) not in KERNEL_LAYERS or activation_name(layer) != "linear":
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
    rounding; other layers and names are kept. Which BatchNorm folds is ``labkit.graph.fold_plan``'s
    decision. Used by :func:`ptq`, :func:`qat` (notebook 06)."""
    g = _graph(model)
    plan = fold_plan(g)
    skip: dict[str, str] = {}
    configs: dict[str, dict] = {}
    weights: dict[str, list[np.ndarray]] = {}
    after: dict[str, list[Any]] = {}
    for name in g.order:
        layer = g.layer(name)
        src = plan.bn_into.get(name)
        if src is not None and src not in weights:  # the converter folds this BN into src's kernel and bias
            folded = _fold_one(g.layer(src), layer)
            if folded is not None:
                skip[name] = src
                configs[src] = {**g.layer(src).get_config(), "use_bias": True}
                weights[src] = folded
        act = activation_name(layer)
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


def _plan(g: Graph) -> list[_Point]:
    """The quantization points of a folded graph (see :func:`quant_points`)."""
    points: list[_Point] = []
    governed: dict[str, str | None] = {}   # layer -> the point whose parameters its output carries
    relu_fused = fold_plan(g)  # a ReLU fused into a layer: TFLite quantizes after the ReLU, not between

    for name in g.order:
        layer, cls = g.layer(name), _cls(g.layer(name))
        src = g.inbound(name)[0] if g.inbound(name) else None
        if cls == "InputLayer":
            points.append(_Point(name, "calibrate"))
            governed[name] = name
        elif cls in _EXACT_PASS_THROUGH and governed.get(src):
            governed[name] = governed[src]
        elif cls in _SAME_SCALE and governed.get(src):
            points.append(_Point(name, "same", source=governed[src]))
            governed[name] = governed[src]
        elif cls == "Activation" and activation_name(layer) in _SPLIT_ACTIVATIONS:
            act = activation_name(layer)
            scale, zp = (2.0 / 256.0, 0) if act == "tanh" else (SOFTMAX_SCALE, -128)
            points.append(_Point(name, "fixed", scale=scale, zero_point=zp))
            governed[name] = name
        elif relu_fused.has_fused_relu(name):
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

    Independent of the bit width, so one calibration serves a whole sweep. ``percentile`` is None for the
    plain min/max ranges, else the percentile the ranges were clipped at (:func:`calibrate`). Used by notebook 06.
    """

    model_name: str
    ranges: dict[str, tuple[float, float]]
    n_samples: int
    percentile: float | None = None


def batches(representative: Any, batch_size: int = 256) -> Iterable[np.ndarray]:
    """Float32 batches of ``representative`` inputs: an array ``(N, ...)`` (cut in ``batch_size``), an
    iterable of batches or a ``tf.data.Dataset`` of ``x`` or ``(x, y)``. Used by :func:`calibrate`."""
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


_PERCENTILE_VALUES_PER_BATCH = 250_000  # values kept per point and batch for a percentile (evenly spaced)


def calibrate(model: "tf.keras.Model", representative: Any, *, folded: "tf.keras.Model | None" = None,
              batch_size: int = 256, percentile: float | None = None) -> Calibration:
    """Min/max of every activation quantization point over ``representative`` inputs (an array
    ``(N, ...)``, an iterable of batches or a ``tf.data.Dataset`` of ``x`` or ``(x, y)``), measured on the
    BN-folded float model like the TFLite calibrator (float ranges, not sequentially quantized). A few
    hundred samples from the training split are typical.

    ``percentile`` (e.g. 99.9) clips each range to the ``100 - percentile`` and ``percentile`` percentiles
    of the values instead (percentile calibration, as TensorRT offers): rare large values no longer stretch
    the range, so the other values get finer steps, and the outliers are clipped. TFLite's own calibrator
    uses min/max. Used by :func:`ptq` (notebook 06)."""
    if percentile is not None and not 50.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
    folded = folded if folded is not None else fold_batchnorm(model)
    g = _graph(folded)
    names = [p.layer for p in _plan(g) if p.kind == "calibrate"]
    probe = tf.keras.Model(folded.inputs, [g.layer(n).output for n in names])
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    kept: dict[str, list[np.ndarray]] = {n: [] for n in names}
    count = 0
    for xb in batches(representative, batch_size):
        outs = probe(xb, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs):
            o = o.numpy()
            lo[n] = min(lo[n], float(o.min()))
            hi[n] = max(hi[n], float(o.max()))
            if percentile is not None:
                flat = o.ravel()
                kept[n].append(flat[::max(1, -(-flat.size // _PERCENTILE_VALUES_PER_BATCH))])
        count += len(xb)
    if count == 0:
        raise ValueError("representative data is empty: pass a few hundred training inputs, e.g. x_train[:500]")
    if percentile is not None:
        for n in names:
            values = np.concatenate(kept[n])
            lo[n], hi[n] = (float(v) for v in np.percentile(values, [100.0 - float(percentile), float(percentile)]))
    return Calibration(model.name, {n: (lo[n], hi[n]) for n in names}, count,
                       None if percentile is None else float(percentile))


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
    folded: "tf.keras.Model | None" = None,
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
    LSTM/GRU internals (gates, state) stay float here. A sweep over bit widths passes the model folded
    once (``folded=fold_batchnorm(model)``) and calibrated once (``calibration=``). Used by notebook 06.
    """
    num_bits = check_bits(num_bits)
    if weights not in ("per_channel", "per_tensor"):
        raise ValueError(f"weights must be 'per_channel' or 'per_tensor', got {weights!r}")
    folded = folded if folded is not None else fold_batchnorm(model)
    if activations and calibration is None:
        if representative is None:
            raise ValueError("activation quantization needs calibration data: pass representative="
                             "x_train[:500] (or calibration=quantize.calibrate(model, x))")
        calibration = calibrate(model, representative, folded=folded)
    return _ptq_folded(_graph(folded), model.name, num_bits, weights, calibration if activations else None)


def _ptq_folded(g: Graph, model_name: str, num_bits: int, weights: str,
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
