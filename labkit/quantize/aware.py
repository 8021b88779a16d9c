"""Quantization-aware training (QAT) with tensorflow-model-optimization: fine-tuning with fake
quantization in the loop, at 8 bits through tfmot's own scheme (convertible to a real int8 .tflite)
and at other widths through custom ``QuantizeConfig`` s. Those run in simulation, except 4-bit weights
with 8-bit activations (``qat(model, 4, activation_bits=8)``): the converter packs them as int4
(``labkit.tflite.convert(..., "w4a8")``) and LiteRT and TFLite Micro run them.
Activation ranges start from calibration (:func:`init_activation_ranges`), not tfmot's [-6, 6].
Used by notebook 06 (through ``labkit.quantize``).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from .. import config, models, train
from ..graph import activation_name, fold_plan, fusable_relu
from .arithmetic import check_bits
from .simulation import (_EXACT_PASS_THROUGH, _RECURRENT_LAYERS, _SPLIT_ACTIVATIONS, KERNEL_LAYERS, FakeQuant,
                         UnsupportedLayerError, _cls, _graph, _rebuild, batches, fold_batchnorm)

__all__ = ["PerChannelLastValueQuantizer", "NBitQuantizeConfig", "qat_scope", "init_activation_ranges",
           "QATResult", "qat"]

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
        # Fake-quantize on the last axis. Conv2D / Dense kernels (rank 4 / 2) are used as they are: a
        # reshape around the op would hide the channel axis from the TFLite converter, which then cannot
        # keep per-channel scales on the int4 tensors of a "w4a8" file. A depthwise kernel
        # (kh, kw, in, mult) becomes (kh, kw, 1, in * mult), TFLite's own layout; other ranks are flattened.
        shape = inputs.shape
        channels = self._channels(shape)
        if self.depthwise:
            view = tf.reshape(inputs, [int(shape[0]), int(shape[1]), 1, channels])
        elif len(shape) in (2, 4):
            view = inputs
        else:
            view = tf.reshape(inputs, [-1, channels])
        if training:  # last value: the range of the current weights
            m = tf.reduce_max(tf.abs(tf.reshape(view, [-1, channels])), axis=0)
            weights["min_var"].assign(-m)
            weights["max_var"].assign(m)
        q = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            view, weights["min_var"], weights["max_var"], num_bits=self.num_bits, narrow_range=True)
        return q if view is inputs else tf.reshape(q, tf.shape(inputs))

    def get_config(self) -> dict:  # noqa: D102 - tfmot API
        return {**super().get_config(), "depthwise": self.depthwise}


class NBitQuantizeConfig(_qk.QuantizeConfig):
    """A tfmot ``QuantizeConfig`` at ``num_bits``: the weights named in ``weight_attrs`` with a last-value
    quantizer (symmetric, narrow range, one range per output channel: :class:`PerChannelLastValueQuantizer`;
    tfmot's ``LastValueQuantizer`` per tensor with ``per_axis=False``), the layer's ``activation``
    (``activation_attrs``: after a ReLU/linear, before a softmax, as tfmot does) and/or its output
    (``quantize_output``) with ``MovingAverageQuantizer`` (asymmetric, an exponential moving average of
    the batch min/max) at ``activation_bits`` (default: ``num_bits``). Used by :func:`qat` (notebook 06)."""

    def __init__(self, num_bits: int = 8, weight_attrs: Sequence[str] = (), activation_attrs: Sequence[str] = (),
                 quantize_output: bool = False, per_axis: bool = True, activation_bits: int | None = None) -> None:
        self.num_bits = check_bits(num_bits)
        self.activation_bits = check_bits(activation_bits if activation_bits is not None else num_bits)
        self.weight_attrs = list(weight_attrs)
        self.activation_attrs = list(activation_attrs)
        self.quantize_output = bool(quantize_output)
        self.per_axis = bool(per_axis)

    def _weight_quantizer(self, attr: str) -> Any:
        if self.per_axis:
            return PerChannelLastValueQuantizer(self.num_bits, depthwise=attr == "depthwise_kernel")
        return _qk.quantizers.LastValueQuantizer(self.num_bits, per_axis=False, symmetric=True, narrow_range=True)

    def _activation_quantizer(self) -> Any:
        return _qk.quantizers.MovingAverageQuantizer(self.activation_bits, per_axis=False, symmetric=False,
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
                "per_axis": self.per_axis, "activation_bits": self.activation_bits}


def qat_scope() -> Any:
    """``tfmot.quantization.keras.quantize_scope`` that knows labkit's custom configs and layers: wrap
    ``tf.keras.models.load_model`` of a saved QAT model in it. Used by :func:`qat` (notebook 06)."""
    return _qk.quantize_scope({"NBitQuantizeConfig": NBitQuantizeConfig,
                               "PerChannelLastValueQuantizer": PerChannelLastValueQuantizer,
                               **models.custom_objects(), "FakeQuant": FakeQuant})


_NOOP_LAYERS = _EXACT_PASS_THROUGH + ("InputLayer",)


def _check_qat_layers(model: "tf.keras.Model") -> None:
    for layer in model.layers:
        if _cls(layer) in _RECURRENT_LAYERS or isinstance(layer, tf.keras.layers.RNN):
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({_cls(layer)}) cannot be trained quantization-aware: tfmot "
                f"{tfmot.__version__} has no QAT support for recurrent layers (its registry leaves LSTMCell/GRUCell "
                "out). Use post-training quantization instead (quantize.ptq, or labkit.tflite.convert(model, "
                "'int8_wa', x)), or a forecaster without recurrence (fc_mlp, fc_cnn)")


def _fuse_relu(model: "tf.keras.Model") -> "tf.keras.Model":
    """Merge each plain ReLU layer into the Conv/Dense before it (``activation="relu"``), the graph TFLite
    runs; tfmot then quantizes after the ReLU and the weights keep their custom quantizers."""
    g = _graph(model)
    skip, configs = {}, {}
    for name, src in fold_plan(g).relu_into.items():  # Keras can express a fused plain ReLU only
        prod = g.layer(src)
        if fusable_relu(g.node(name).inner) == "relu" and _cls(prod) in KERNEL_LAYERS:
            skip[name] = src
            configs[src] = {**configs.get(src, prod.get_config()), "activation": "relu"}
    return _rebuild(g, skip=skip, configs=configs, name=model.name) if skip else model


def _nbit_config(layer: Any, num_bits: int, per_axis: bool, activation_bits: int | None = None) -> Any:
    cls = _cls(layer)
    a = activation_bits
    if cls in ("Conv1D", "Conv2D"):
        return NBitQuantizeConfig(num_bits, ["kernel"], ["activation"], per_axis=per_axis, activation_bits=a)
    if cls == "Dense":  # a file with 8-bit activations (w4a8) keeps one scale per Dense kernel: the converter
        # transposes the kernel and cannot move a per-channel axis of int4 data through that transpose
        return NBitQuantizeConfig(num_bits, ["kernel"], ["activation"], per_axis=per_axis and a in (None, num_bits),
                                  activation_bits=a)
    if cls == "DepthwiseConv2D":
        return NBitQuantizeConfig(num_bits, ["depthwise_kernel"], ["activation"], per_axis=per_axis, activation_bits=a)
    if cls in _NOOP_LAYERS or (cls == "Activation" and activation_name(layer) in _SPLIT_ACTIVATIONS):
        return NBitQuantizeConfig(num_bits, activation_bits=a)  # values pass through (softmax: its logits are quantized)
    if layer.weights and cls not in ("BatchNormalization",):
        raise UnsupportedLayerError(f"layer {layer.name!r} ({cls}) has weights but no {num_bits}-bit QAT rule in "
                                    "labkit.quantize; use Conv/DepthwiseConv/Dense layers or quantize.ptq")
    return NBitQuantizeConfig(num_bits, quantize_output=True, activation_bits=a)  # ReLU, Add, pooling, custom ...


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


def _annotate_nbit(model: "tf.keras.Model", num_bits: int, per_axis: bool, activation_bits: int | None = None
                   ) -> "tf.keras.Model":
    return tf.keras.models.clone_model(
        model, clone_function=lambda layer: _qk.quantize_annotate_layer(
            layer, _nbit_config(layer, num_bits, per_axis, activation_bits)))


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
    for xb in batches(representative, batch_size):
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
    ``labkit.tflite.convert(model, "int8_wa", x)`` gives a real int8 .tflite (8-bit tfmot scheme), and
    ``w4a8`` whether ``labkit.tflite.convert(model, "w4a8", x)`` gives a real file with int4 weights and
    int8 activations (4-bit weights, ``activation_bits=8``). Used by notebook 06."""

    model: "tf.keras.Model"
    num_bits: int
    scheme: str
    history: dict[str, list[float]]
    train_time_s: float
    ranges_initialised: int
    activation_bits: int | None = None

    @property
    def convertible(self) -> bool:
        """True for the 8-bit tfmot default scheme (a full int8 .tflite, mode ``int8_wa``)."""
        return self.scheme == "tfmot_8bit"

    @property
    def w4a8(self) -> bool:
        """True for 4-bit weights with 8-bit activations: convertible with mode ``"w4a8"`` (int4 weights
        packed two per byte, int8 activations), which LiteRT and TFLite Micro run."""
        return self.scheme == "custom" and self.num_bits == 4 and self.activation_bits == 8


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
    activation_bits: int | None = None,
) -> QATResult:
    """Quantization-aware training: fine-tune a trained float ``model`` for ``epochs`` with fake
    quantization of weights and activations at ``num_bits`` in the forward pass (straight-through
    gradients), starting from its weights. ``model`` is left unchanged.

    ``scheme="auto"`` picks ``"tfmot_8bit"`` at 8 bits (``tfmot.quantization.keras.quantize_model``'s
    scheme; a custom output config for weight-free custom layers such as ``LastObserved``; convertible to
    a real int8 .tflite) and ``"custom"`` otherwise: BatchNorm folded and ReLU fused first (BN statistics
    are frozen, as recommended for fine-tuning), every layer annotated with an :class:`NBitQuantizeConfig`
    (``weights="per_channel"`` or ``"per_tensor"``) and applied with ``quantize_apply`` inside
    ``quantize_scope`` with tfmot's n-bit scheme (n-bit input quantizer). ``activation_bits`` (default
    ``num_bits``) sets the activations' width apart from the weights': ``qat(model, 4, activation_bits=8)``
    is the one sub-8-bit model TFLite can store and run (int4 weights, int8 activations,
    ``QATResult.w4a8``; its Dense kernels keep one scale per tensor); the others are evaluated in
    simulation only. Activation ranges start at the calibrated
    min/max on ``representative`` inputs (default: up to 500 training inputs), see
    :func:`init_activation_ranges`. ``loss`` defaults to the model's compiled loss.
    Raises :class:`UnsupportedLayerError` for LSTM/GRU (no tfmot QAT support). Used by notebook 06.
    """
    from tqdm.auto import tqdm

    num_bits = check_bits(num_bits)
    if num_bits > 8 or (activation_bits is not None and not 2 <= int(activation_bits) <= 8):
        raise ValueError(f"QAT supports 2..8 bits (tfmot's fake-quant ops), got {num_bits} "
                         f"(activation_bits={activation_bits})")
    activation_bits = None if activation_bits is None or int(activation_bits) == num_bits else int(activation_bits)
    if scheme == "auto":
        scheme = "tfmot_8bit" if num_bits == 8 else "custom"
    if scheme not in ("tfmot_8bit", "custom"):
        raise ValueError(f"scheme must be 'auto', 'tfmot_8bit' or 'custom', got {scheme!r}")
    if scheme == "tfmot_8bit" and (num_bits != 8 or activation_bits is not None):
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
                num_bits_weight=num_bits, num_bits_activation=activation_bits or num_bits)
            qmodel = _qk.quantize_apply(_annotate_nbit(reference, num_bits, weights == "per_channel", activation_bits),
                                        scheme=n_bit)
    rep = representative if representative is not None else np.asarray(x_train)[:500]
    n_ranges = init_activation_ranges(qmodel, reference, rep)

    train.compile_model(qmodel, loss, learning_rate, metrics=metrics)
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
    desc = f"QAT {num_bits}-bit" + (f" W, {activation_bits}-bit A" if activation_bits else "")
    for epoch in tqdm(range(epochs), desc=desc, leave=False, disable=verbose > 0):
        h = qmodel.fit(train_ds, validation_data=val_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=verbose)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(x) for x in v)
    return QATResult(model=qmodel, num_bits=num_bits, scheme=scheme, history=history,
                     train_time_s=time.perf_counter() - t0, ranges_initialised=n_ranges,
                     activation_bits=activation_bits or num_bits)
