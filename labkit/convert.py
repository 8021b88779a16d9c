"""Keras -> TFLite conversion, running .tflite files (LiteRT and TFLite Micro), and C-array export.

The four modes the course compares (:data:`MODES`):

==========  ============  ===========================================================================
mode        label         what the file stores / what the interpreter computes
==========  ============  ===========================================================================
``fp32``    FP32          float32 weights, float32 arithmetic (the Keras model, re-serialised)
``fp16``    FP16          float16 weights, expanded to float32 at load time; float32 arithmetic
``int8_w``  INT8 W        int8 weights (dynamic range): activations are quantized on the fly per
                          inference, int8 x int8 matmuls, float32 between layers ("hybrid" kernels)
``int8_wa`` INT8 W+A      full integer: int8 weights *and* activations with scales calibrated on a
                          representative dataset, int32 biases, int8 input/output tensors
==========  ============  ===========================================================================

Main entry points (all used by notebook 05):

* :func:`convert` -> :class:`Converted` (bytes, mode, size, zlib size, I/O quantization), and
  :func:`storage_table` / :func:`op_names` to look inside the file;
* :func:`predict_tflite`, :func:`evaluate_tflite_kws`, :func:`evaluate_tflite_forecast` run a file with
  the LiteRT interpreter, quantizing float inputs and dequantizing outputs;
* :func:`run_tflm`, :func:`tflm_arena`, :func:`tflm_min_arena`, :func:`compare_tflm_litert` run it in
  the real TFLite Micro runtime (reference kernels, the code a microcontroller runs);
* :func:`to_c_array` / :func:`write_c_array` export it like ``xxd -i`` for a firmware build;
* :func:`compare_modes_kws` / :func:`compare_modes_forecast` build the notebook's per-model table.

Every file handed to an interpreter is checked first (:func:`check_tflite`): a truncated, random or
non-TFLite file raises :class:`InvalidTFLiteError` naming what is wrong, instead of a crash deep in C++.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import struct
import sys
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .results import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import tensorflow as tf

__all__ = [
    "MODES", "MODE_LABELS", "MODE_DESCRIPTIONS", "ROUTES", "InvalidTFLiteError", "TFLMError", "QuantParams",
    "Converted", "convert", "convert_all", "zlib_size", "check_tflite", "tflite_bytes", "io_details",
    "storage_table", "op_names", "dequantize", "LiteRTRunner", "predict_tflite", "evaluate_tflite_kws",
    "evaluate_tflite_forecast", "tflm_arena", "tflm_arena_bytes", "tflm_min_arena", "run_tflm",
    "compare_tflm_litert", "to_c_array", "write_c_array", "ModeComparison", "compare_modes_kws",
    "compare_modes_forecast",
]

MODES: tuple[str, ...] = ("fp32", "fp16", "int8_w", "int8_wa")
"""Conversion modes, in the order the course compares them."""

MODE_LABELS: dict[str, str] = {"fp32": "FP32", "fp16": "FP16", "int8_w": "INT8 W", "int8_wa": "INT8 W+A"}
"""The course's names for the modes (table and plot labels)."""

MODE_DESCRIPTIONS: dict[str, str] = {
    "fp32": "float32 weights, float32 arithmetic",
    "fp16": "float16 weights (expanded to float32 when loaded), float32 arithmetic",
    "int8_w": "int8 weights, activations quantized on the fly; float32 between layers (hybrid kernels)",
    "int8_wa": "int8 weights and activations (calibrated scales), int32 biases, int8 input/output",
}
"""One line per mode: what the file stores and what the interpreter computes."""

TFLITE_IDENTIFIER = b"TFL3"
"""The flatbuffer file identifier every .tflite file carries at bytes 4..8."""

DEFAULT_CALIBRATION_SAMPLES = 200
"""Representative samples used to calibrate ``int8_wa`` (evenly spaced over what is passed)."""


class InvalidTFLiteError(ValueError):
    """A byte string is not a usable .tflite model (too short, wrong identifier, truncated, corrupted)."""


class TFLMError(RuntimeError):
    """TFLite Micro refused a model (unsupported operator, hybrid/fp16 kernels, arena too small)."""


# ------------------------------------------------------------------------------------------ stderr
@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture what C/C++ code writes to file descriptor 2 (converter and TFLM messages).

    Yields a list that holds the captured text once the block exits. Python's ``sys.stderr`` is
    flushed first, so nothing written before the block is lost.
    """
    out: list[str] = []
    try:
        sys.stderr.flush()
    except Exception:  # pragma: no cover
        pass
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no fd 2 (exotic embedding): capture nothing
        yield out
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            try:
                sys.stderr.flush()
            except Exception:  # pragma: no cover
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", errors="replace"))


def _tail(text: str, lines: int = 6, width: int = 400) -> str:
    keep = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return "\n".join(ln if len(ln) <= width else ln[:width] + " ..." for ln in keep)


# --------------------------------------------------------------------------------- the converted file
@dataclasses.dataclass(frozen=True)
class QuantParams:
    """Affine quantization of one tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int
    dtype: str


@dataclasses.dataclass(frozen=True)
class Converted:
    """A converted model: the .tflite bytes and what the course reports about them.

    ``size`` is the file size in bytes, ``zlib_size`` its zlib-compressed size (level 9): a rough
    "how much information is in there" that shows how much of a file is padding and metadata.
    ``input_quant`` / ``output_quant`` are set for integer input/output tensors (``int8_wa``).
    ``method`` is the conversion route (:data:`ROUTES`): ``"concrete"``/``"keras"`` (dynamic batch) or
    ``"concrete_batch1"`` (a fixed batch-1 concrete function, the fallback the LSTM needs).
    Used by notebook 05.
    """

    data: bytes = dataclasses.field(repr=False)
    mode: str
    size: int
    zlib_size: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_dtype: str
    output_dtype: str
    input_quant: QuantParams | None = None
    output_quant: QuantParams | None = None
    method: str = "concrete"
    name: str = ""

    @property
    def label(self) -> str:
        """The course's name of the mode ("INT8 W+A" ...)."""
        return MODE_LABELS.get(self.mode, self.mode)

    @property
    def size_kb(self) -> float:
        """File size in kB (1 kB = 1,024 B)."""
        return self.size / 1024

    @property
    def zlib_kb(self) -> float:
        """zlib-compressed size in kB (1 kB = 1,024 B)."""
        return self.zlib_size / 1024

    def save(self, path: str | os.PathLike) -> Path:
        """Write the .tflite file atomically; returns its path."""
        return atomic_write_bytes(path, self.data)

    def row(self) -> dict[str, Any]:
        """A flat summary row (name, mode, sizes, I/O types, method)."""
        return {"model": self.name, "mode": self.label, "tflite_bytes": self.size, "zlib_bytes": self.zlib_size,
                "tflite_kb": round(self.size_kb, 2), "zlib_kb": round(self.zlib_kb, 2),
                "input": f"{self.input_dtype}{list(self.input_shape)}",
                "output": f"{self.output_dtype}{list(self.output_shape)}", "method": self.method}


def zlib_size(data: bytes, level: int = 9) -> int:
    """Size in bytes of ``data`` compressed with zlib at ``level`` (9 = best). Used by notebook 05."""
    return len(zlib.compress(bytes(data), level))


# ---------------------------------------------------------------------------------------- validation
def tflite_bytes(model: "Converted | bytes | bytearray | memoryview | str | os.PathLike") -> tuple[bytes, str]:
    """The bytes of a .tflite given as :class:`Converted`, bytes or a file path, and a short description of
    where they came from (for error messages). Used across this module."""
    if isinstance(model, Converted):
        return model.data, f"the {model.label} model {model.name!r}".replace(" ''", "")
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "the .tflite bytes"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"no .tflite file at {path}; convert a model first (labkit.convert.convert)")
        return path.read_bytes(), f"the file {path}"
    raise TypeError(f"expected a Converted, bytes or a .tflite path, got {type(model).__name__}; "
                    "for a Keras model call labkit.convert.convert(model, mode) first")


def check_tflite(model: "Converted | bytes | str | os.PathLike") -> bytes:
    """Check that ``model`` is a complete, well-formed .tflite flatbuffer and return its bytes.

    Raises :class:`InvalidTFLiteError` naming the problem: too short, wrong file identifier (not
    ``TFL3``), a root offset past the end (truncated), or a failed flatbuffer verification (truncated
    or corrupted). Called before every interpreter is built. Used by notebook 05.
    """
    data, where = tflite_bytes(model)
    hint = "re-export it with labkit.convert.convert(...).save(path), or copy the file again"
    if len(data) < 8:
        raise InvalidTFLiteError(f"{where} is not a .tflite model: only {len(data)} bytes (a flatbuffer "
                                 f"header alone is 8); {hint}")
    ident = data[4:8]
    if ident != TFLITE_IDENTIFIER:
        raise InvalidTFLiteError(f"{where} is not a .tflite model: file identifier {ident!r} at bytes 4..8, "
                                 f"expected {TFLITE_IDENTIFIER!r}; {hint}")
    (root,) = struct.unpack_from("<I", data, 0)
    if root + 4 > len(data):
        raise InvalidTFLiteError(f"{where} is truncated or corrupted: its root table offset {root} lies past "
                                 f"the end of its {len(data)} bytes; {hint}")
    from ai_edge_litert.interpreter import Interpreter

    with _captured_stderr():
        try:
            Interpreter(model_content=data, num_threads=1)
        except ValueError as exc:
            raise InvalidTFLiteError(
                f"{where} ({len(data)} bytes, identifier {ident!r}) fails flatbuffer verification: the file "
                f"is truncated or corrupted ({exc}); {hint}") from None
    return data


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    return schema_fb


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_names(model: "Converted | bytes | str | os.PathLike") -> list[str]:
    """The builtin operators of a .tflite in execution order (``["CONV_2D", "DEPTHWISE_CONV_2D", ...]``).

    Used by notebook 05.
    """
    data = check_tflite(model)
    s = _schema()
    m = s.Model.GetRootAsModel(data, 0)
    names = _enum_names(s.BuiltinOperator)
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    sg = m.Subgraphs(0)
    return [names.get(codes[sg.Operators(i).OpcodeIndex()], "CUSTOM") for i in range(sg.OperatorsLength())]


def _has_variables(data: bytes) -> bool:
    """Whether the model keeps variable tensors between invocations (the fused LSTM's state)."""
    s = _schema()
    m = s.Model.GetRootAsModel(data, 0)
    for g in range(m.SubgraphsLength()):
        sg = m.Subgraphs(g)
        if any(sg.Tensors(i).IsVariable() for i in range(sg.TensorsLength())):
            return True
    return False


def storage_table(models: Mapping[str, "Converted | bytes"] | Sequence["Converted"]) -> "pd.DataFrame":
    """Bytes of constant data (weights, biases, quantization tables ...) per tensor type, per model.

    Rows are models (e.g. modes), columns ``float32``, ``float16``, ``int8``, ``int32`` ...,
    plus ``constants`` (their sum), ``file`` (file size) and ``overhead`` (file - constants: graph,
    shapes, names, quantization parameters, alignment; ``labkit.estimate.tflite_breakdown`` splits
    that part further). Used by notebook 05.
    """
    import pandas as pd

    items = list(models.items()) if isinstance(models, Mapping) else [(m.label, m) for m in models]
    s = _schema()
    type_names = {k: v.lower() for k, v in _enum_names(s.TensorType).items()}
    rows = []
    for label, model in items:
        data = check_tflite(model)
        m = s.Model.GetRootAsModel(data, 0)
        per_type: dict[str, int] = {}
        seen: set[int] = set()
        for g in range(m.SubgraphsLength()):
            sg = m.Subgraphs(g)
            for i in range(sg.TensorsLength()):
                t = sg.Tensors(i)
                b = t.Buffer()
                if b <= 0 or b in seen:
                    continue
                seen.add(b)
                buf = m.Buffers(b)
                n = buf.DataLength() or (buf.Size() if buf.Offset() > 1 else 0)
                if n:
                    name = type_names.get(t.Type(), str(t.Type()))
                    per_type[name] = per_type.get(name, 0) + int(n)
        row: dict[str, Any] = {"model": label, **per_type}
        row["constants"] = sum(per_type.values())
        row["file"] = len(data)
        row["overhead"] = len(data) - row["constants"]
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("model").fillna(0).astype(int)
    first = [c for c in ("float32", "float16", "int8", "int32") if c in frame.columns]
    rest = [c for c in frame.columns if c not in first and c not in ("constants", "file", "overhead")]
    return frame[first + rest + ["constants", "file", "overhead"]]


def _detail_quant(detail: Mapping[str, Any]) -> QuantParams | None:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if dtype.kind not in "iu" or not scale:
        return None
    return QuantParams(float(scale), int(zero_point), dtype.name)


def io_details(model: "Converted | bytes | str | os.PathLike") -> dict[str, Any]:
    """Input/output shapes, dtypes and quantization of a .tflite (one input, one output).

    Keys: ``input_shape``, ``output_shape`` (with the batch axis), ``input_dtype``, ``output_dtype``,
    ``input_quant``, ``output_quant`` (:class:`QuantParams` or ``None``), ``dynamic_batch``,
    ``stateful`` (variable tensors kept between calls). Used by notebook 05.
    """
    runner = LiteRTRunner(model)
    return {"input_shape": tuple(int(v) for v in runner.input["shape"]),
            "output_shape": tuple(int(v) for v in runner.output["shape"]),
            "input_dtype": np.dtype(runner.input["dtype"]).name,
            "output_dtype": np.dtype(runner.output["dtype"]).name,
            "input_quant": runner.input_quant, "output_quant": runner.output_quant,
            "dynamic_batch": runner.dynamic_batch, "stateful": runner.stateful}


# ---------------------------------------------------------------------------------------- conversion
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
    idx = np.unique(np.linspace(0, len(x) - 1, min(samples, len(x))).round().astype(int))

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
    elif mode == "int8_wa":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    # int8_w: Optimize.DEFAULT without representative data = dynamic-range quantization


def _run_converter(converter: Any) -> bytes:
    """``converter.convert()`` with its C++ log captured and TensorFlow's Python INFO lines ("Assets
    written to ...") silenced; on failure the log's tail joins the error."""
    import logging

    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _captured_stderr() as log:
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            try:
                return bytes(converter.convert())
            except Exception as exc:
                error = exc
    finally:
        tf_logger.setLevel(level)
    raise _ConversionFailed(error, _tail(log[0] if log else ""))


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
    """Convert a Keras model to TFLite in ``mode`` (``"fp32"``, ``"fp16"``, ``"int8_w"``, ``"int8_wa"``).

    ``int8_wa`` (full integer, int8 input/output) needs ``representative``: an array of float training
    inputs (up to ``calibration_samples`` evenly spaced ones are used) or a ready
    ``representative_dataset`` callable.

    ``route`` is how the model reaches the converter (:data:`ROUTES`):

    * ``"concrete"``: the model's inference function with a dynamic batch axis, lowered through a
      SavedModel like ``from_keras_model`` does, but saving only the variables (not the Keras object
      graph, whose serialization takes ~95 % of ``from_keras_model``'s time): the same model (measured:
      identical outputs on the DS-CNN) in about a second instead of ~10 s;
    * ``"concrete_batch1"``: the same with a fixed batch of 1, the fallback the LSTM forecaster needs:
      with a dynamic batch the converter cannot lower its TensorList ops (see PITFALLS.md);
    * ``"keras"``: the standard ``TFLiteConverter.from_keras_model``.

    ``None`` (default) tries ``"concrete"`` and falls back to ``"concrete_batch1"`` if it fails;
    ``Converted.method`` says which route succeeded. Used by notebook 05.
    """
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if route is not None and route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; choose one of {ROUTES} (or None to pick automatically)")
    input_shape = tuple(int(v) for v in model.input_shape[1:])
    rep = None
    if mode == "int8_wa":
        if representative is None:
            raise ValueError("mode 'int8_wa' (INT8 W+A) calibrates activation ranges on representative data: "
                             "pass representative=<~100-500 training inputs>, e.g. features of data.x_train")
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


# ------------------------------------------------------------------------------------- LiteRT running
def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    """Integer -> float: ``scale * (q - zero_point)``. Used by notebook 05."""
    return (np.asarray(q, np.float32) - np.float32(params.zero_point)) * np.float32(params.scale)


class LiteRTRunner:
    """A LiteRT interpreter over one .tflite with float-in / float-out helpers.

    It quantizes float inputs with the input tensor's scale and zero point, dequantizes integer
    outputs, batches with ``resize_tensor_input`` when the model has a dynamic batch axis (otherwise
    loops at batch 1), and resets variable tensors (an LSTM's state) after every call so samples stay
    independent. ``xnnpack=False`` runs LiteRT's builtin kernels only (without the default XNNPACK
    delegate, whose int8 kernels round differently). Used by :func:`predict_tflite`, ``labkit.bench``
    and notebook 05.
    """

    def __init__(self, model: "Converted | bytes | str | os.PathLike", *, num_threads: int = 1,
                 xnnpack: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.data = check_tflite(model)
        self.source = tflite_bytes(model)[1]
        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        with _captured_stderr():
            self.interpreter = Interpreter(model_content=self.data, num_threads=num_threads,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ValueError(f"{self.source} has {len(ins)} inputs and {len(outs)} outputs; labkit runs "
                             "single-input, single-output models")
        self.input, self.output = ins[0], outs[0]
        self.input_quant, self.output_quant = _detail_quant(self.input), _detail_quant(self.output)
        sig = self.input.get("shape_signature", self.input["shape"])
        self.dynamic_batch = len(sig) > 0 and int(sig[0]) == -1
        self.stateful = _has_variables(self.data)
        self.sample_shape = tuple(int(v) for v in self.input["shape"][1:])
        self._batch = int(self.input["shape"][0])

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Float inputs -> the input tensor's dtype (quantized if the model has integer input)."""
        from .bench import quantize_input

        return quantize_input(np.asarray(x, np.float32), self.input)

    def finish(self, y: np.ndarray) -> np.ndarray:
        """Output tensor -> float (dequantized if the model has integer output)."""
        return dequantize(y, self.output_quant) if self.output_quant is not None else np.asarray(y, np.float32)

    def resize(self, batch: int) -> None:
        """Set the batch size of a dynamic-batch model (no-op for fixed batch-1 models)."""
        if self.dynamic_batch and batch != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.sample_shape])
            self.interpreter.allocate_tensors()
            self._batch = batch

    def invoke_prepared(self, xq: np.ndarray) -> np.ndarray:
        """Run one already-prepared batch (``xq`` in the input dtype); returns the raw output tensor."""
        self.interpreter.set_tensor(self.input["index"], xq)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        if self.stateful:
            self.interpreter.reset_all_variables()
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """One float batch of the interpreter's current batch size (1 unless resized) -> float outputs."""
        return self.finish(self.invoke_prepared(self.prepare(x)))

    def predict_raw(self, x: np.ndarray, *, batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Raw output tensors (integers for ``int8_wa``) for float inputs ``x`` of shape ``(N, *input)``."""
        from tqdm.auto import tqdm

        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.sample_shape:
            raise ValueError(f"inputs have sample shape {x.shape[1:]}, {self.source} expects {self.sample_shape}")
        step = max(1, int(batch_size)) if self.dynamic_batch else 1
        outs = []
        for start in tqdm(range(0, len(x), step), desc="LiteRT", leave=False, disable=not progress):
            chunk = x[start:start + step]
            self.resize(len(chunk))
            outs.append(np.array(self.invoke_prepared(self.prepare(chunk))))
        if not outs:
            return np.zeros((0, *self.output["shape"][1:]), self.output["dtype"])
        return np.concatenate(outs)

    def predict(self, x: np.ndarray, *, batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Float outputs (dequantized) for float inputs ``x`` of shape ``(N, *input)``."""
        return self.finish(self.predict_raw(x, batch_size=batch_size, progress=progress))


def predict_tflite(model: "Converted | bytes | str | os.PathLike", x: np.ndarray, *, batch_size: int = 256,
                   progress: bool = False) -> np.ndarray:
    """Run a .tflite on float inputs ``x`` (``(N, *input_shape)``) with LiteRT; float outputs ``(N, ...)``.

    Integer models get their inputs quantized and outputs dequantized with the tensors' own
    scale/zero point. Used by notebook 05.
    """
    return LiteRTRunner(model).predict(x, batch_size=batch_size, progress=progress)


def _limit(n: int, limit: int | None) -> int:
    return n if limit is None else max(0, min(n, int(limit)))


def evaluate_tflite_kws(model: "Converted | bytes | str | os.PathLike", x: np.ndarray, y: np.ndarray,
                        labels: Sequence[str] | None = None, *, limit: int | None = None) -> dict[str, Any]:
    """Top-1 accuracy of a KWS .tflite on features ``x`` and labels ``y`` (the first ``limit`` samples).

    Returns ``labkit.train.kws_metrics``: ``top1``, ``per_class_accuracy``, ``confusion_matrix``, ``n``.
    Used by notebook 05.
    """
    from . import train

    n = _limit(len(x), limit)
    probs = predict_tflite(model, np.asarray(x)[:n])
    labels = list(labels) if labels is not None else [str(i) for i in range(probs.shape[-1])]
    return train.kws_metrics(np.asarray(y)[:n], probs, labels)


def _forecast_metrics(windows: Any, pred_normalised: np.ndarray, split: str, n: int) -> dict[str, Any]:
    """MAE in real units of normalised predictions on the first ``n`` windows of ``split``, with persistence."""
    from . import train

    names = list(windows.target_names)
    y = np.asarray(getattr(windows, f"y_{split}"))[:n]
    true = np.asarray(windows.denormalize_targets(y), np.float64)
    pred = np.asarray(windows.denormalize_targets(np.asarray(pred_normalised).reshape(y.shape)), np.float64)
    out = train.forecast_mae(true, pred, names)
    base = train.forecast_mae(true, train.persistence(windows, split)[:n], names)
    out.update({f"persist_{k}": v for k, v in base.items()})
    out["n"] = int(n)
    return out


def evaluate_tflite_forecast(model: "Converted | bytes | str | os.PathLike", windows: Any, split: str = "test",
                             *, limit: int | None = None) -> dict[str, Any]:
    """MAE in real units (``T_mae``, ``RH_mae`` + per step, and persistence's) of a forecasting .tflite
    on the first ``limit`` windows of ``split``, with ``labkit.train.forecast_mae``. Used by notebook 05."""
    x = np.asarray(getattr(windows, f"x_{split}"))
    n = _limit(len(x), limit)
    return _forecast_metrics(windows, predict_tflite(model, x[:n]), split, n)


# -------------------------------------------------------------------------------------- TFLite Micro
_TFLM_HINT = ("TFLite Micro runs fp32 and full-integer (int8_wa) models; fp16 and int8_w (dynamic range, "
              "'hybrid') models need the full LiteRT runtime")


def _tflm_error(where: str, log: str, exc: Exception) -> TFLMError:
    hint = _TFLM_HINT
    if "Failed to allocate" in log and "failed to prepare" not in log:
        hint = "the tensor arena is too small: pass a larger arena_size (tflm_arena(model) says what it needs)"
    return TFLMError(f"TFLite Micro could not run {where}: {exc}\nTFLM log:\n{_tail(log)}\n({hint})")


def _tflm_interpreter(data: bytes, where: str, arena_size: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    with _captured_stderr() as log:
        try:
            return runtime.Interpreter.from_bytes(data, arena_size=int(arena_size))
        except Exception as exc:
            error = exc
    raise _tflm_error(where, log[0] if log else "", error)


def _tflm_preflight(data: bytes, where: str) -> Any:
    """A TFLM interpreter with a generous arena, built once to fail fast (with the runtime's own message)
    on operators TFLM lacks, before any arena measurement."""
    return _tflm_interpreter(data, where, max(4 << 20, 16 * len(data)))


def tflm_arena(model: "Converted | bytes | str | os.PathLike") -> dict[str, int]:
    """Tensor arena TFLite Micro allocates for a model, as its recording allocator reports it after one
    inference: ``total``, ``head`` (activations, planned) and ``tail`` (tensor/node structs, op data),
    in bytes, via ``labkit.estimate.tflm_arena``. Raises :class:`TFLMError` for models TFLM cannot run
    (fp16, int8_w). Used by notebook 05."""
    from . import estimate

    data = check_tflite(model)
    where = tflite_bytes(model)[1]
    _tflm_preflight(data, where)
    try:
        report = estimate.tflm_arena(data)
    except RuntimeError as exc:
        raise TFLMError(f"TFLite Micro could not run {where}: {exc} ({_TFLM_HINT})") from exc
    return {k: int(v) for k, v in report.items() if k in ("total", "head", "tail")}


def tflm_arena_bytes(model: "Converted | bytes | str | os.PathLike") -> int:
    """Total tensor-arena bytes TFLite Micro allocates for a model, as the runtime reports them
    (:func:`tflm_arena`). Kernels that take temporary memory while preparing (the LSTM) need more:
    see :func:`tflm_min_arena`. Used by notebook 05."""
    return tflm_arena(model)["total"]


# Runs in a helper process that imports only NumPy and the TFLM runtime (no TensorFlow, so forking is
# safe); each probe forks a child, because TFLM *crashes* (segfault in the LSTM kernel) rather than
# failing cleanly when a temporary allocation does not fit.
_MIN_ARENA_SCRIPT = r"""
import os, sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime

data = sys.stdin.buffer.read()
start, step, cap = (int(v) for v in sys.argv[1:4])

def runs(size):
    pid = os.fork()
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            interp = runtime.Interpreter.from_bytes(data, arena_size=size)
            d = interp.get_input_details(0)
            interp.set_input(np.zeros(d["shape"], d["dtype"]), 0)
            interp.invoke()
            interp.invoke()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

lo, hi = 0, max(step, start)
while not runs(hi):
    lo, hi = hi, 2 * hi
    if hi > cap:
        print(-1)
        sys.exit(0)
while hi - lo > step:
    mid = (lo + hi) // 2
    if runs(mid):
        hi = mid
    else:
        lo = mid
print(hi)
"""


def tflm_min_arena(model: "Converted | bytes | str | os.PathLike", *, resolution: int = 16,
                   start: int | None = None) -> int:
    """The smallest tensor arena (within ``resolution`` bytes) in which TFLite Micro prepares the model and
    runs two inferences, found by bisection in an isolated helper process.

    For most models this equals the runtime's report (:func:`tflm_arena_bytes`); kernels that allocate
    temporary memory during Prepare need more (measured here: an int8 LSTM reported 3,680 B, needed
    5,117 B, and *crashed* the process with less). Use this number for the firmware's arena.
    Needs ``os.fork`` (Linux, macOS, Colab). Used by notebook 05.
    """
    import subprocess

    data = check_tflite(model)
    where = tflite_bytes(model)[1]
    if not hasattr(os, "fork"):
        raise NotImplementedError("tflm_min_arena needs os.fork (Linux/macOS/Colab); use tflm_arena_bytes "
                                  "plus a margin on this platform")
    _tflm_preflight(data, where)  # unsupported operators fail here, with TFLM's message
    first = int(start) if start else tflm_arena_bytes(data)
    cap = max(1 << 26, 64 * len(data))
    proc = subprocess.run([sys.executable, "-c", _MIN_ARENA_SCRIPT, str(first), str(int(resolution)), str(cap)],
                          input=data, capture_output=True, timeout=600)
    text = proc.stdout.decode().strip()
    if proc.returncode != 0 or not text.lstrip("-").isdigit():
        raise TFLMError(f"the arena search for {where} failed (exit {proc.returncode}): "
                        f"{_tail(proc.stderr.decode(errors='replace'))}")
    size = int(text)
    if size < 0:
        raise TFLMError(f"TFLite Micro did not run {where} even with a {cap:,}-byte arena")
    return size


def run_tflm(model: "Converted | bytes | str | os.PathLike", x: np.ndarray, *, raw: bool = False,
             arena_size: int | None = None, progress: bool = False) -> np.ndarray:
    """Run a .tflite sample by sample in the TFLite Micro runtime (reference kernels, what a
    microcontroller executes) on float inputs ``x`` (``(N, *input_shape)``).

    Inputs are quantized like in LiteRT; ``raw=True`` returns the integer output tensors, otherwise
    dequantized floats. The arena is generous (4 MiB or more) unless ``arena_size`` is given; see
    :func:`tflm_arena` for what the model really needs. Used by notebook 05.
    """
    from tqdm.auto import tqdm

    data = check_tflite(model)
    where = tflite_bytes(model)[1]
    runner = LiteRTRunner(data)  # the same quantization parameters and sample shape as LiteRT
    x = np.asarray(x, np.float32)
    if x.shape[1:] != runner.sample_shape:
        raise ValueError(f"inputs have sample shape {x.shape[1:]}, {where} expects {runner.sample_shape}")
    interp = _tflm_interpreter(data, where, arena_size) if arena_size else _tflm_preflight(data, where)
    xq = runner.prepare(x)
    outs = []
    with _captured_stderr() as log:
        try:
            for i in tqdm(range(len(xq)), desc="TFLM", leave=False, disable=not progress):
                interp.set_input(xq[i:i + 1], 0)
                interp.invoke()
                outs.append(np.array(interp.get_output(0)))
                if runner.stateful:
                    interp.reset()
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
    if error is not None:
        raise _tflm_error(where, log[0] if log else "", error)
    out = np.concatenate(outs) if outs else np.zeros((0, *runner.output["shape"][1:]), runner.output["dtype"])
    return out if raw else runner.finish(out)


def compare_tflm_litert(model: "Converted | bytes | str | os.PathLike", x: np.ndarray, *,
                        limit: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Run the same inputs through TFLite Micro and LiteRT and compare their raw outputs. TFLM runs in
    the smallest arena it fits in (:func:`tflm_min_arena`), which shows that arena suffices.

    LiteRT runs twice: with its builtin kernels (the reference TFLM follows; keys without suffix) and
    with its default XNNPACK delegate (keys ending in ``_xnnpack``), whose int8 kernels requantize
    differently. Returns ``n``; ``arena_bytes`` (the runtime's report, with ``arena_head_bytes`` and
    ``arena_tail_bytes``) and ``min_arena_bytes``; for integer outputs ``max_diff_lsb``,
    ``mean_diff_lsb`` and ``exact`` (fraction of outputs identical), for float outputs
    ``max_abs_diff``; and ``agreement``, the fraction of samples whose argmax (predicted class)
    matches, for classifier outputs ``(N, classes)`` (else ``None``). Used by notebook 05.
    """
    data = check_tflite(model)
    x = np.asarray(x, np.float32)[:_limit(len(x), limit)]
    arena = tflm_arena(data)
    min_arena = tflm_min_arena(data, start=arena["total"])
    micro = run_tflm(data, x, raw=True, arena_size=min_arena, progress=progress)
    out: dict[str, Any] = {"n": int(len(x)), "arena_bytes": arena["total"], "arena_head_bytes": arena["head"],
                           "arena_tail_bytes": arena["tail"], "min_arena_bytes": min_arena}
    for suffix, xnnpack in (("", False), ("_xnnpack", True)):
        lite = LiteRTRunner(data, xnnpack=xnnpack).predict_raw(x, batch_size=1)
        if np.issubdtype(micro.dtype, np.integer):
            diff = np.abs(micro.astype(np.int64) - lite.astype(np.int64))
            out[f"max_diff_lsb{suffix}"] = int(diff.max()) if diff.size else 0
            out[f"mean_diff_lsb{suffix}"] = float(diff.mean()) if diff.size else 0.0
            out[f"exact{suffix}"] = float((diff == 0).mean()) if diff.size else 1.0
        else:
            diff = np.abs(micro.astype(np.float64) - lite.astype(np.float64))
            out[f"max_abs_diff{suffix}"] = float(diff.max()) if diff.size else 0.0
        out[f"agreement{suffix}"] = (float((micro.argmax(-1) == lite.argmax(-1)).mean())
                                     if micro.ndim == 2 and len(x) else None)
    return out


# ------------------------------------------------------------------------------------------ C export
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def to_c_array(model: "Converted | bytes | str | os.PathLike", name: str = "model", *,
               arena_bytes: int | None = None) -> tuple[str, str]:
    """The model as C source like ``xxd -i``: ``(source, header)``.

    The header declares ``extern const unsigned char <name>[]`` and ``extern const unsigned int
    <name>_len``, and (if given) ``#define <NAME>_ARENA_BYTES`` with the measured TFLM arena size; the
    source defines the array 16-byte aligned (``alignas(16)``, as TFLM requires for the flatbuffer)
    and compiles as C11 or C++11. Used by notebook 05.
    """
    data = check_tflite(model)
    if not _C_IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a C identifier: use letters, digits and '_' (e.g. 'ds_cnn_int8')")
    upper = name.upper()
    guard = f"LABKIT_{upper}_H_"
    arena_line = ""
    if arena_bytes is not None:
        arena_line = (f"/* Tensor arena TFLite Micro needs for this model (measured by labkit), in bytes. */\n"
                      f"#define {upper}_ARENA_BYTES {int(arena_bytes)}\n\n")
    header = (
        f"/* {name}: a {len(data):,}-byte TensorFlow Lite model, generated by labkit.convert.to_c_array. */\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"{arena_line}"
        f"#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n"
        f"extern const unsigned char {name}[];\n"
        f"extern const unsigned int {name}_len;\n\n"
        f"#ifdef __cplusplus\n}}  /* extern \"C\" */\n#endif\n\n"
        f"#endif  /* {guard} */\n"
    )
    lines = []
    for start in range(0, len(data), 12):
        lines.append("  " + ", ".join(f"0x{b:02x}" for b in data[start:start + 12]))
    body = ",\n".join(lines)
    source = (
        f"/* {name}: a {len(data):,}-byte TensorFlow Lite model, generated by labkit.convert.to_c_array. */\n"
        f"#include \"{name}.h\"\n\n"
        f"#ifndef __cplusplus\n#include <stdalign.h>  /* alignas in C11 */\n#endif\n\n"
        f"alignas(16) const unsigned char {name}[] = {{\n{body}\n}};\n"
        f"const unsigned int {name}_len = {len(data)};\n"
    )
    return source, header


def write_c_array(model: "Converted | bytes | str | os.PathLike", out_dir: str | os.PathLike, name: str = "model",
                  arena_bytes: int | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.c`` and ``<name>.h`` from :func:`to_c_array` atomically; returns both paths.

    Used by notebook 05.
    """
    source, header = to_c_array(model, name, arena_bytes=arena_bytes)
    out = Path(out_dir)
    h = atomic_write_text(out / f"{name}.h", header)
    c = atomic_write_text(out / f"{name}.c", source)
    return c, h


# ------------------------------------------------------------------------- per-model mode comparison
def _keras_predict(model: "tf.keras.Model", x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Keras outputs by direct calls in inference mode (``model.predict`` builds a tf.data pipeline and
    retraces per model, which floods notebook outputs with TensorFlow log lines)."""
    import tensorflow as tf

    outs = [model(tf.constant(x[i:i + batch_size]), training=False).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, *model.output_shape[1:]), np.float32)


@dataclasses.dataclass
class ModeComparison:
    """Everything notebook 05 shows for one trained model: the converted files, the course table
    (one row per mode), the latency breakdown (one row per mode and stage) and the TFLM check of the
    full-integer model. Used by notebook 05."""

    name: str
    converted: dict[str, Converted]
    table: "pd.DataFrame"
    breakdown: "pd.DataFrame"
    tflm: dict[str, Any] | None

    def tflm_row(self) -> dict[str, Any]:
        """The TFLM check of the INT8 W+A file as one row (model, arena bytes reported / minimal,
        LSB differences, class agreement, samples)."""
        t = self.tflm or {}
        keys = ("arena_bytes", "min_arena_bytes", "max_diff_lsb", "exact", "agreement", "max_diff_lsb_xnnpack",
                "exact_xnnpack", "agreement_xnnpack", "n")
        return {"model": self.name, **{k: t.get(k) for k in keys}}


def _tflm_columns(tflm: Mapping[str, Any] | None) -> dict[str, Any]:
    if not tflm:
        return {}
    return {"tflm_arena_kb": round(tflm["arena_bytes"] / 1024, 2),
            "tflm_min_arena_kb": round(tflm["min_arena_bytes"] / 1024, 2),
            "tflm_max_diff_lsb": tflm.get("max_diff_lsb"), "tflm_agreement": tflm.get("agreement")}


def _clipped(q: np.ndarray, params: QuantParams | None) -> float | None:
    """Fraction of integer values at the limits of their type (saturated by the calibrated range)."""
    if params is None or q.size == 0:
        return None
    info = np.iinfo(np.dtype(params.dtype))
    return float(np.isin(q, (info.min, info.max)).mean())


def _compare(name: str, converted: dict[str, Converted], x: np.ndarray, *,
             metrics: Callable[[np.ndarray], dict[str, float]], keras_metrics: dict[str, float],
             breakdown: Callable[[Converted], "pd.DataFrame"], tflm: bool) -> ModeComparison:
    """Evaluate, time and (for int8_wa) run in TFLM every converted file on the float inputs ``x``."""
    import pandas as pd

    rows, parts = [], []
    tflm_result = compare_tflm_litert(converted["int8_wa"], x) if tflm and "int8_wa" in converted else None
    for mode, conv in converted.items():
        runner = LiteRTRunner(conv)
        raw = runner.predict_raw(x)
        m = metrics(runner.finish(raw))
        bd = breakdown(conv)
        parts.append(bd)
        stage = bd.set_index("stage")["ms"]
        row: dict[str, Any] = {"model": name, "mode": conv.label}
        for key, value in m.items():
            row[key] = value
            row[f"keras_{key}"] = keras_metrics[key]
            row[f"diff_{key}"] = value - keras_metrics[key]
        row.update({"tflite_kb": round(conv.size_kb, 2), "zlib_kb": round(conv.zlib_kb, 2),
                    "inference_ms": float(stage["inference"]), "total_ms": float(stage["total"]),
                    "method": conv.method})
        if conv.input_quant is not None:  # int8 I/O: how much of the test data falls outside the calibrated range
            row["input_clipped"] = _clipped(runner.prepare(x), conv.input_quant)
            row["output_clipped"] = _clipped(raw, conv.output_quant)
        if mode == "int8_wa":
            row.update(_tflm_columns(tflm_result))
        rows.append(row)
    return ModeComparison(name=name, converted=converted, table=pd.DataFrame(rows),
                          breakdown=pd.concat(parts, ignore_index=True), tflm=tflm_result)


def compare_modes_kws(
    name: str,
    model: "tf.keras.Model",
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    labels: Sequence[str],
    representative: np.ndarray,
    clip: np.ndarray,
    features: Any,
    modes: Sequence[str] = MODES,
    limit: int | None = None,
    runs: int = 200,
    warmup: int = 20,
    tflm: bool = True,
) -> ModeComparison:
    """Convert a trained KWS model in every mode and measure each file: test top-1 next to the Keras
    model's on the same samples (first ``limit``), file and zlib size, LiteRT latency per stage on one
    ``clip`` (features -> inference -> argmax, medians over ``runs``), and TFLM vs LiteRT on the
    int8 model. ``x_test`` are features, ``features`` the FeatureConfig/preset that made them.
    For files with int8 input/output, ``input_clipped`` / ``output_clipped`` are the fractions of the
    quantized test inputs / outputs stuck at the int8 limits: data outside the range calibrated on
    ``representative``. Used by notebook 05.
    """
    from . import bench, train

    n = _limit(len(x_test), limit)
    x, y = np.asarray(x_test, np.float32)[:n], np.asarray(y_test)[:n]
    keras_probs = _keras_predict(model, x)
    keras_top1 = float(train.kws_metrics(y, keras_probs, list(labels))["top1"])
    converted = convert_all(model, representative, modes=modes, name=name)
    return _compare(
        name, converted, x,
        metrics=lambda probs: {"top1": float(train.kws_metrics(y, probs, list(labels))["top1"])},
        keras_metrics={"top1": keras_top1},
        breakdown=lambda c: bench.latency_breakdown(c, clip=clip, features=features, runs=runs, warmup=warmup,
                                                    name=name),
        tflm=tflm)


def compare_modes_forecast(
    name: str,
    model: "tf.keras.Model",
    windows: Any,
    *,
    modes: Sequence[str] = MODES,
    limit: int | None = None,
    runs: int = 200,
    warmup: int = 20,
    tflm: bool = True,
) -> ModeComparison:
    """Like :func:`compare_modes_kws` for a forecaster on ``windows``: test T and RH MAE (real units)
    next to Keras', sizes, latency per stage (normalise -> inference -> de-normalise) and TFLM vs
    LiteRT on the int8 model. Calibration uses the train + validation windows
    (``windows.calibration_inputs()``). Used by notebook 05.
    """
    from . import bench

    x_test = np.asarray(windows.x_test, np.float32)
    n = _limit(len(x_test), limit)
    x = x_test[:n]
    keras_pred = _keras_predict(model, x, batch_size=1024)
    keras = {k: v for k, v in _forecast_metrics(windows, keras_pred, "test", n).items()
             if k in ("T_mae", "RH_mae")}
    converted = convert_all(model, windows.calibration_inputs(), modes=modes, name=name)

    def metrics(pred: np.ndarray) -> dict[str, float]:
        m = _forecast_metrics(windows, pred, "test", n)
        return {k: float(m[k]) for k in keras}

    raw_window = np.asarray(x[0]) * np.asarray(windows.feature_std) + np.asarray(windows.feature_mean)
    return _compare(
        name, converted, x, metrics=metrics, keras_metrics=keras,
        breakdown=lambda c: bench.latency_breakdown(c, window=raw_window, windows=windows, runs=runs,
                                                    warmup=warmup, name=name),
        tflm=tflm)
