"""Model builders for keyword spotting (KWS) and temperature/humidity forecasting.

One entry point, :func:`build`, returns a fresh ``tf.keras`` (legacy Keras 2) model:

KWS (``outputs`` = number of classes, softmax output; input ``(T, F, 1)`` from ``labkit.features``)
    ``"mlp"``       Flatten + 3 x Dense 256 + ReLU + Dense softmax ("DNN" baseline of Zhang et al.,
                    *Hello Edge*, 2017).
    ``"cnn"``       three Conv2D 3x3 (16, 32, 64 filters) + BN + ReLU, max-pooling after the first two,
                    global average pooling, dropout, Dense softmax (a small course CNN).
    ``"ds_cnn"``    the MLPerf Tiny keyword-spotting reference: Conv 10x4 stride 2 (64) + BN + ReLU,
                    4 depthwise-separable blocks of 64, average pooling, Dense softmax. On 49x10x1
                    MFCCs with 12 classes: 23,756 trainable parameters and 2,656,768 MACs.
    ``"tinyconv"``  the TensorFlow Lite Micro *micro_speech* ``tiny_conv``: Conv 8 filters 10x8
                    stride 2 (same) + ReLU, dropout, Dense softmax; made for 49x40x1 features.

Forecasting (``outputs`` = ``(6, 2)``: 6 future steps x 2 targets; input ``(6, F)``)
    ``"fc_mlp"``    Flatten + Dense 32 + Dense 16 + Dense 12 + Reshape.
    ``"fc_cnn"``    Conv1D 8 filters (kernel 3) + Flatten + Dense 12 + Reshape.
    ``"fc_lstm"``   LSTM 16 units + Dense 12 + Reshape.

Every builder takes a width multiplier ``alpha`` that scales the filters/units of every hidden layer
(``max(1, round(alpha * n))``; the output layer keeps its size) and a ``seed``: the same seed gives
bit-identical initial weights, without touching the global random state. Layers have stable,
readable names (``conv1``, ``dw1_bn``, ``pw1_relu`` ...) so per-layer tables and pruning masks can
refer to them.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

KWS_MODELS: tuple[str, ...] = ("mlp", "cnn", "ds_cnn", "tinyconv")
"""Keyword-spotting builders (``outputs`` = number of classes)."""

FORECAST_MODELS: tuple[str, ...] = ("fc_mlp", "fc_cnn", "fc_lstm")
"""Forecasting builders (``outputs`` = ``(steps, targets)``, e.g. ``(6, 2)``)."""

BN_MOMENTUM = 0.9
"""BatchNorm momentum for every model: Keras' default 0.99 collapsed inference outputs to one class
with ~27 steps per epoch (see PITFALLS.md)."""

__all__ = ["KWS_MODELS", "FORECAST_MODELS", "BN_MOMENTUM", "custom_objects", "build", "scaled"]


def _tf() -> Any:
    """TensorFlow, imported on first use: importing this module stays cheap (the CLI and the report
    import modules that import this one without ever building a model)."""
    import tensorflow as tf

    return tf


def scaled(n: int, alpha: float) -> int:
    """Width ``n`` scaled by the multiplier ``alpha``: ``max(1, round(alpha * n))``.

    Used by :func:`build` and notebook 08 (search).
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    return max(1, int(round(alpha * n)))


class _Seeds:
    """Hands out a fresh, deterministic seed per initializer / dropout layer."""

    def __init__(self, seed: int) -> None:
        self._base = int(seed) * 1000
        self._count = 0

    def __call__(self) -> int:
        self._count += 1
        return self._base + self._count

    def glorot(self) -> "tf.keras.initializers.Initializer":
        return _tf().keras.initializers.GlorotUniform(seed=self())

    def orthogonal(self) -> "tf.keras.initializers.Initializer":
        return _tf().keras.initializers.Orthogonal(seed=self())


@functools.lru_cache(maxsize=None)
def _last_observed_class() -> type:
    """The :class:`LastObserved` layer class, defined (and registered with Keras) on first use."""
    tf = _tf()

    @tf.keras.utils.register_keras_serializable(package="labkit")
    class LastObserved(tf.keras.layers.Layer):
        """Adds the last observed value of the target features to a predicted change.

        Inputs ``[x, delta]`` with ``x`` of shape ``(B, steps_in, F)`` and ``delta`` of shape
        ``(B, steps_out, len(indices))``; returns ``delta + x[:, -1:, indices]``. Used by the forecasting
        builders with ``residual=True`` (notebook 04).
        """

        def __init__(self, indices: Sequence[int], **kwargs) -> None:
            super().__init__(**kwargs)
            self.indices = [int(i) for i in indices]

        def call(self, inputs):  # noqa: D102 - Keras API
            x, delta = inputs
            last = x[:, -1:, :]
            idx = self.indices
            if idx == list(range(idx[0], idx[0] + len(idx))):  # contiguous: a plain slice
                last = last[:, :, idx[0]: idx[0] + len(idx)]
            else:
                last = tf.gather(last, idx, axis=-1)
            return delta + last

        def get_config(self) -> dict:  # noqa: D102 - Keras API
            return {**super().get_config(), "indices": self.indices}

    LastObserved.__module__ = __name__
    LastObserved.__qualname__ = "LastObserved"
    return LastObserved


def custom_objects() -> dict[str, type]:
    """The custom layers of these models, for ``custom_objects`` when loading a saved model
    (``tf.keras.models.load_model``). Used by the model cache (notebooks 03-08) and QAT."""
    return {"LastObserved": _last_observed_class()}


def __getattr__(name: str) -> Any:
    """``models.LastObserved``: the layer class, defined with TensorFlow on first access."""
    if name == "LastObserved":
        return _last_observed_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- small building blocks

def _conv_bn_relu(x, filters: int, kernel, seeds: _Seeds, name: str, *, strides=1, padding="same"):
    tf = _tf()
    x = tf.keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                               kernel_initializer=seeds.glorot(), name=name)(x)
    x = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return tf.keras.layers.ReLU(name=f"{name}_relu")(x)


def _dense(units: int, seeds: _Seeds, name: str, activation: str | None = None):
    tf = _tf()
    return tf.keras.layers.Dense(units, activation=activation, kernel_initializer=seeds.glorot(),
                                 name=name)


def _check_kws(name: str, input_shape: tuple[int, ...], outputs) -> int:
    if len(input_shape) != 3:
        raise ValueError(f"{name!r} expects a (time, features, 1) input such as features.output_shape(cfg); "
                         f"got {input_shape!r}")
    if not isinstance(outputs, int) or outputs < 2:
        raise ValueError(f"{name!r} is a classifier: outputs must be the number of classes (int >= 2), "
                         f"got {outputs!r}")
    return outputs


def _check_forecast(name: str, input_shape: tuple[int, ...], outputs) -> tuple[int, int]:
    if len(input_shape) != 2:
        raise ValueError(f"{name!r} expects a (steps, features) input such as Windows.x_train.shape[1:]; "
                         f"got {input_shape!r}")
    try:
        steps, targets = (int(v) for v in outputs)
    except (TypeError, ValueError):
        raise ValueError(f"{name!r} is a forecaster: outputs must be (steps, targets), e.g. (6, 2); "
                         f"got {outputs!r}") from None
    return steps, targets


# --------------------------------------------------------------------------- KWS models

def _mlp(inputs, classes: int, alpha: float, seeds: _Seeds):
    tf = _tf()
    x = tf.keras.layers.Flatten(name="flatten")(inputs)
    for i in range(1, 4):
        x = _dense(scaled(256, alpha), seeds, f"fc{i}", activation="relu")(x)
    return _dense(classes, seeds, "output", activation="softmax")(x)


def _cnn(inputs, classes: int, alpha: float, seeds: _Seeds):
    tf = _tf()
    x = inputs
    for i, filters in enumerate((16, 32, 64), start=1):
        x = _conv_bn_relu(x, scaled(filters, alpha), (3, 3), seeds, f"conv{i}")
        if i < 3:
            x = tf.keras.layers.MaxPooling2D((2, 2), padding="same", name=f"pool{i}")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = tf.keras.layers.Dropout(0.3, seed=seeds(), name="dropout")(x)
    return _dense(classes, seeds, "output", activation="softmax")(x)


def _ds_cnn(inputs, classes: int, alpha: float, seeds: _Seeds):
    tf = _tf()
    # MLPerf Tiny KWS reference (tiny/benchmark/training/keyword_spotting/keras_model.py), whose
    # convolutions keep their biases; BN momentum 0.9 instead of 0.99 (PITFALLS.md).
    filters = scaled(64, alpha)

    def bn_relu(x, name):
        x = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
        return tf.keras.layers.ReLU(name=f"{name}_relu")(x)

    x = tf.keras.layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same",
                               kernel_initializer=seeds.glorot(), name="conv1")(inputs)
    x = bn_relu(x, "conv1")
    x = tf.keras.layers.Dropout(0.2, seed=seeds(), name="dropout1")(x)
    for i in range(1, 5):
        x = tf.keras.layers.DepthwiseConv2D((3, 3), padding="same", depthwise_initializer=seeds.glorot(),
                                            name=f"dw{i}")(x)
        x = bn_relu(x, f"dw{i}")
        x = tf.keras.layers.Conv2D(filters, (1, 1), padding="same", kernel_initializer=seeds.glorot(),
                                   name=f"pw{i}")(x)
        x = bn_relu(x, f"pw{i}")
    x = tf.keras.layers.Dropout(0.4, seed=seeds(), name="dropout2")(x)
    # The reference pools over (T // 2, F // 2); pooling over the whole feature map (same 1x1 output,
    # every position counted) is what it means and what global average pooling computes.
    x = tf.keras.layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="avg_pool")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    return _dense(classes, seeds, "output", activation="softmax")(x)


def _tinyconv(inputs, classes: int, alpha: float, seeds: _Seeds):
    tf = _tf()
    # tensorflow/examples/speech_commands/models.py: create_tiny_conv_model (micro_speech).
    x = tf.keras.layers.Conv2D(scaled(8, alpha), (10, 8), strides=(2, 2), padding="same", activation="relu",
                               kernel_initializer=seeds.glorot(), name="conv1")(inputs)
    x = tf.keras.layers.Dropout(0.25, seed=seeds(), name="dropout")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    return _dense(classes, seeds, "output", activation="softmax")(x)


# --------------------------------------------------------------------------- forecasting models

def _fc_head(x, steps: int, targets: int, seeds: _Seeds):
    tf = _tf()
    x = _dense(steps * targets, seeds, "output")(x)
    return tf.keras.layers.Reshape((steps, targets), name="reshape")(x)


def _fc_mlp(inputs, steps: int, targets: int, alpha: float, seeds: _Seeds):
    tf = _tf()
    x = tf.keras.layers.Flatten(name="flatten")(inputs)
    x = _dense(scaled(32, alpha), seeds, "fc1", activation="relu")(x)
    x = _dense(scaled(16, alpha), seeds, "fc2", activation="relu")(x)
    return _fc_head(x, steps, targets, seeds)


def _fc_cnn(inputs, steps: int, targets: int, alpha: float, seeds: _Seeds):
    tf = _tf()
    kernel = min(3, int(inputs.shape[1]))
    x = tf.keras.layers.Conv1D(scaled(8, alpha), kernel, activation="relu", kernel_initializer=seeds.glorot(),
                               name="conv1")(inputs)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    return _fc_head(x, steps, targets, seeds)


def _fc_lstm(inputs, steps: int, targets: int, alpha: float, seeds: _Seeds):
    tf = _tf()
    # unroll=False keeps one fused LSTM op at conversion; the forecaster is converted at batch 1.
    x = tf.keras.layers.LSTM(scaled(16, alpha), kernel_initializer=seeds.glorot(),
                             recurrent_initializer=seeds.orthogonal(), name="lstm")(inputs)
    return _fc_head(x, steps, targets, seeds)


_KWS_BUILDERS: dict[str, Callable] = {"mlp": _mlp, "cnn": _cnn, "ds_cnn": _ds_cnn, "tinyconv": _tinyconv}
_FORECAST_BUILDERS: dict[str, Callable] = {"fc_mlp": _fc_mlp, "fc_cnn": _fc_cnn, "fc_lstm": _fc_lstm}


def build(
    name: str,
    input_shape: Sequence[int],
    outputs: int | Sequence[int],
    *,
    alpha: float = 1.0,
    seed: int = 0,
    residual: bool = False,
    target_indices: Sequence[int] | None = None,
) -> "tf.keras.Model":
    """Build model ``name`` (one of :data:`KWS_MODELS` or :data:`FORECAST_MODELS`), uncompiled.

    ``input_shape`` excludes the batch axis: ``(T, F, 1)`` for KWS (``features.output_shape(cfg)``),
    ``(steps, features)`` for forecasting. ``outputs`` is the number of classes (KWS) or
    ``(steps, targets)`` (forecasting). ``alpha`` scales every hidden layer's width; ``seed`` fixes
    the initial weights (same seed -> identical weights).

    Forecasters only: ``residual=True`` makes the network predict the *change* from the last observed
    value: a :class:`LastObserved` layer adds ``x[:, -1, target_indices]`` to every output step. This
    is only right when the targets are normalised with the same mean/std as those input features
    (true for ``data.make_windows``, whose target columns are also input features).
    ``target_indices`` defaults to the first ``targets`` input features.

    Used by notebooks 02-08.
    """
    tf = _tf()
    input_shape = tuple(int(v) for v in input_shape)
    if any(v < 1 for v in input_shape):
        raise ValueError(f"input_shape must be positive sizes without the batch axis, got {input_shape!r}")
    seeds = _Seeds(seed)
    inputs = tf.keras.Input(shape=input_shape, name="input")
    if name in _KWS_BUILDERS:
        if residual:
            raise ValueError("residual=True only applies to the forecasting models " + str(FORECAST_MODELS))
        classes = _check_kws(name, input_shape, outputs)
        out = _KWS_BUILDERS[name](inputs, classes, alpha, seeds)
    elif name in _FORECAST_BUILDERS:
        steps, targets = _check_forecast(name, input_shape, outputs)
        out = _FORECAST_BUILDERS[name](inputs, steps, targets, alpha, seeds)
        if residual:
            idx = list(range(targets)) if target_indices is None else [int(i) for i in target_indices]
            if len(idx) != targets or not all(0 <= i < input_shape[-1] for i in idx):
                raise ValueError(f"target_indices must be {targets} feature indices in [0, {input_shape[-1]}), "
                                 f"got {idx!r}")
            out = _last_observed_class()(idx, name="last_observed")([inputs, out])
    else:
        raise ValueError(f"unknown model {name!r}; choose one of {KWS_MODELS + FORECAST_MODELS}")
    scaled_name = name if alpha == 1.0 else f"{name}_a{alpha:g}".replace(".", "p")
    return tf.keras.Model(inputs, out, name=scaled_name)
