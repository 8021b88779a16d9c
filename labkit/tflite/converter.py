"""Keras -> TFLite: the kit's one converter, in the four modes the course compares.

==========  ============  ===========================================================================
mode        label         what the file stores / what the interpreter computes
==========  ============  ===========================================================================
``fp32``    FP32          float32 weights, float32 arithmetic (the Keras model, re-serialised)
``fp16``    FP16          float16 weights, expanded to float32 at load time; float32 arithmetic
``int8_w``  INT8 W        int8 weights (dynamic range): activations are quantized on the fly per
                          inference, int8 x int8 matmuls, float32 between layers ("hybrid" kernels)
``int8_wa`` INT8 W+A      full integer: int8 weights *and* activations with scales calibrated on a
                          representative dataset, int32 biases, int8 input/output tensors
``w4a8``    INT4 W +      like ``int8_wa``, but the weights of a model trained with 4-bit weights and
            INT8 A        8-bit activations (``quantize.qat(model, 4, activation_bits=8)``) keep their
                          trained scales and are stored as int4, two per byte (the converter's
                          experimental ``_experimental_low_bit_qat`` + ``_experimental_reduce_type_precision``)
==========  ============  ===========================================================================

Used by notebooks 02 and 05-08 (through ``labkit.tflite``).
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..data.splits import evenly_spaced
from .files import LOW_BIT_MODES, MODE_LABELS, MODES, Converted, captured_stderr, schema, tail, zlib_size
from .litert import io_details

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["ROUTES", "DEFAULT_CALIBRATION_SAMPLES", "convert", "convert_all", "int4_tensors"]

DEFAULT_CALIBRATION_SAMPLES = 200
"""Representative samples used to calibrate ``int8_wa`` (evenly spaced over what is passed)."""

def _representative_fn(representative: Any, input_shape: Sequence[int], samples: int) -> Callable[[], Iterable]:
    """A ``representative_dataset`` callable from an array of float inputs (or a ready callable)."""
    if callable(representative):
        return representative
    x = np.asarray(representative, dtype=np.float32)
    if x.shape[1:] != tuple(input_shape):
        raise ValueError(f"representative data has sample shape {x.shape[1:]}, the model expects "
                         f"{tuple(input_shape)}; pass training inputs (e.g. features of data.x_train)")
    if len(x) == 0:
        raise ValueError("representative data is empty; pass ~100-500 training inputs")
    idx = evenly_spaced(len(x), samples)

    def gen() -> Iterator[list[np.ndarray]]:
        for i in idx:
            yield [x[i:i + 1]]

    return gen


def _configure(converter: Any, mode: str, representative: Callable | None) -> None:
    import tensorflow as tf

    if mode == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode in ("int8_wa", "w4a8"):
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        if mode == "w4a8":  # keep the trained 4-bit weight scales, then store weights that fit in 4 bits as int4
            converter._experimental_low_bit_qat = True
            converter._experimental_reduce_type_precision = True
    # int8_w: Optimize.DEFAULT without representative data = dynamic-range quantization


_INT4 = 17
"""TFLite's TensorType code of INT4 (``kTfLiteInt4``)."""


def int4_tensors(data: bytes) -> int:
    """How many constant tensors of a .tflite are stored as int4 (packed two values per byte)."""
    m = schema().Model.GetRootAsModel(bytearray(data), 0)
    return sum(1 for g in range(m.SubgraphsLength()) for i in range(m.Subgraphs(g).TensorsLength())
               if m.Subgraphs(g).Tensors(i).Type() == _INT4)


def _run_converter(converter: Any) -> bytes:
    """``converter.convert()`` with its C++ log captured and TensorFlow's Python INFO lines ("Assets
    written to ...") silenced; on failure the log's tail joins the error."""
    import logging

    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), captured_stderr() as log:
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            try:
                return bytes(converter.convert())
            except Exception as exc:
                error = exc
    finally:
        tf_logger.setLevel(level)
    raise _ConversionFailed(error, tail(log[0] if log else ""))


class _ConversionFailed(Exception):
    def __init__(self, error: Exception, log: str) -> None:
        super().__init__(f"{type(error).__name__}: {str(error)[-600:]}")
        self.error, self.log = error, log


ROUTES: tuple[str, ...] = ("concrete", "concrete_batch1", "keras")
"""How :func:`convert` can hand a Keras model to the TFLite converter (see its docstring)."""


def convert(
    model: "tf.keras.Model",
    mode: str = "fp32",
    representative: Any = None,
    *,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    route: str | None = None,
    name: str | None = None,
) -> Converted:
    """Convert a Keras model to TFLite in ``mode`` (``"fp32"``, ``"fp16"``, ``"int8_w"``, ``"int8_wa"``, or
    ``"w4a8"`` for a model trained with ``quantize.qat(model, 4, activation_bits=8)``).

    ``int8_wa`` and ``w4a8`` (full integer, int8 input/output) need ``representative``: an array of float
    training inputs (up to ``calibration_samples`` evenly spaced ones are used) or a ready
    ``representative_dataset`` callable. ``w4a8`` raises ``ValueError`` when no weight tensor came out
    as int4 (a float or 8-bit model: its weights do not fit in 4 bits).

    ``route`` is how the model reaches the converter (:data:`ROUTES`):

    * ``"concrete"``: the model's inference function with a dynamic batch axis, lowered through a
      SavedModel like ``from_keras_model`` does, but saving only the variables (not the Keras object
      graph, whose serialization takes ~95 % of ``from_keras_model``'s time): the same model (measured:
      identical outputs on the DS-CNN) in about a second instead of ~10 s;
    * ``"concrete_batch1"``: the same with a fixed batch of 1, the fallback the LSTM forecaster needs:
      with a dynamic batch the converter cannot lower its TensorList ops (see PITFALLS.md);
    * ``"keras"``: the standard ``TFLiteConverter.from_keras_model``.

    ``None`` (default) tries ``"concrete"`` and falls back to ``"concrete_batch1"`` if it fails;
    ``Converted.method`` says which route succeeded. Used by notebooks 02 and 05-08.
    """
    import tensorflow as tf

    if mode not in MODES + LOW_BIT_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES + LOW_BIT_MODES}")
    if route is not None and route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; choose one of {ROUTES} (or None to pick automatically)")
    input_shape = tuple(int(v) for v in model.input_shape[1:])
    rep = None
    if mode in ("int8_wa", "w4a8"):
        if representative is None:
            raise ValueError(f"mode {mode!r} ({MODE_LABELS[mode]}) calibrates activation ranges on representative "
                             "data: pass representative=<~100-500 training inputs>, e.g. features of data.x_train")
        rep = _representative_fn(representative, input_shape, calibration_samples)
    name = name if name is not None else model.name

    def run(which: str) -> bytes:
        if which == "keras":
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
        else:
            fn = tf.function(lambda x: model(x, training=False), autograph=False)
            batch = None if which == "concrete" else 1
            concrete = fn.get_concrete_function(tf.TensorSpec([batch, *input_shape], tf.float32))
            holder = tf.Module()  # keeps the captured variables alive and saveable, nothing else
            holder.model_variables = list(model.variables)
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
        _configure(converter, mode, rep)
        return _run_converter(converter)

    chain = [route] if route is not None else ["concrete", "concrete_batch1"]
    failures = []
    for which in chain:
        try:
            data, method = run(which), which
            break
        except _ConversionFailed as failed:
            failures.append((which, failed))
    else:
        tried = ", ".join(w for w, _ in failures)
        failed = failures[-1][1]
        raise RuntimeError(f"converting {name!r} to {MODE_LABELS[mode]} failed (routes tried: {tried}): {failed}"
                           f"\nconverter log:\n{failed.log}") from failed.error
    if mode == "w4a8" and int4_tensors(data) == 0:
        raise ValueError(f"{name!r} converted with no int4 weight tensor: mode 'w4a8' stores the weights of a model "
                         "trained with 4-bit weights and 8-bit activations; train it with "
                         "quantize.qat(model, 4, activation_bits=8) and convert res.model")
    details = io_details(data)
    return Converted(data=data, mode=mode, size=len(data), zlib_size=zlib_size(data),
                     input_shape=details["input_shape"], output_shape=details["output_shape"],
                     input_dtype=details["input_dtype"], output_dtype=details["output_dtype"],
                     input_quant=details["input_quant"], output_quant=details["output_quant"],
                     method=method, name=name)


def convert_all(model: "tf.keras.Model", representative: Any = None, *, modes: Sequence[str] = MODES,
                name: str | None = None, progress: bool = True) -> dict[str, Converted]:
    """:func:`convert` in each of ``modes`` -> ``{mode: Converted}``. Used by notebook 05."""
    from tqdm.auto import tqdm

    out = {}
    for mode in tqdm(list(modes), desc=f"convert {name or model.name}", leave=False, disable=not progress):
        out[mode] = convert(model, mode, representative if mode == "int8_wa" else None, name=name)
    return out
