"""The .tflite file itself: what a converted model is (:class:`Converted`), checking a file before any
interpreter touches it, looking inside the flatbuffer, and exporting it as a C array.

* :func:`check_tflite` - a truncated, random or non-TFLite file raises :class:`InvalidTFLiteError`
  naming what is wrong, instead of a crash deep in C++;
* :func:`op_names`, :func:`storage_table` (constant bytes per tensor type) and :func:`breakdown`
  (tensor data, quantization parameters, names, metadata, structure);
* :func:`to_c_array` / :func:`write_c_array` - the file like ``xxd -i`` for a firmware build.

Used by notebooks 02 and 05 (through ``labkit.tflite``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence


from ..io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "MODES", "LOW_BIT_MODES", "MODE_LABELS", "MODE_DESCRIPTIONS", "TFLITE_IDENTIFIER", "InvalidTFLiteError", "TFLMError",
    "QuantParams", "Converted", "zlib_size", "tflite_bytes", "check_tflite", "captured_stderr", "tail", "schema",
    "op_names",
    "has_variables", "storage_table", "breakdown", "to_c_array", "write_c_array",
]

MODES: tuple[str, ...] = ("fp32", "fp16", "int8_w", "int8_wa")
"""Conversion modes, in the order the course compares them."""

LOW_BIT_MODES: tuple[str, ...] = ("w4a8",)
"""Modes below 8 bits that the converter and both runtimes handle: ``w4a8``, int4 weights (packed two per
byte, ``kTfLiteInt4``) with int8 activations, from a model trained with ``quantize.qat(model, 4,
activation_bits=8)``. Not part of :data:`MODES` (a float model cannot be converted to it)."""

MODE_LABELS: dict[str, str] = {"fp32": "FP32", "fp16": "FP16", "int8_w": "INT8 W", "int8_wa": "INT8 W+A",
                               "w4a8": "INT4 W + INT8 A"}
"""The course's names for the modes (table and plot labels)."""

MODE_DESCRIPTIONS: dict[str, str] = {
    "fp32": "float32 weights, float32 arithmetic",
    "fp16": "float16 weights (expanded to float32 when loaded), float32 arithmetic",
    "int8_w": "int8 weights, activations quantized on the fly; float32 between layers (hybrid kernels)",
    "int8_wa": "int8 weights and activations (calibrated scales), int32 biases, int8 input/output",
    "w4a8": "int4 weights (two per byte, trained scales), int8 activations, int32 biases, int8 input/output",
}
"""One line per mode: what the file stores and what the interpreter computes."""

TFLITE_IDENTIFIER = b"TFL3"
"""The flatbuffer file identifier every .tflite file carries at bytes 4..8."""

class InvalidTFLiteError(ValueError):
    """A byte string is not a usable .tflite model (too short, wrong identifier, truncated, corrupted)."""


class TFLMError(RuntimeError):
    """TFLite Micro refused a model (unsupported operator, hybrid/fp16 kernels, arena too small)."""


# ------------------------------------------------------------------------------------------ stderr
@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
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


def tail(text: str, lines: int = 6, width: int = 400) -> str:
    """The last ``lines`` non-empty lines of a native log, each cut at ``width`` characters."""
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
            raise FileNotFoundError(f"no .tflite file at {path}; convert a model first (labkit.tflite.convert)")
        return path.read_bytes(), f"the file {path}"
    raise TypeError(f"expected a Converted, bytes or a .tflite path, got {type(model).__name__}; "
                    "for a Keras model call labkit.tflite.convert(model, mode) first")


def check_tflite(model: "Converted | bytes | str | os.PathLike") -> bytes:
    """Check that ``model`` is a complete, well-formed .tflite flatbuffer and return its bytes.

    Raises :class:`InvalidTFLiteError` naming the problem: too short, wrong file identifier (not
    ``TFL3``), a root offset past the end (truncated), or a failed flatbuffer verification (truncated
    or corrupted). Called before every interpreter is built. Used by notebook 05.
    """
    data, where = tflite_bytes(model)
    hint = "re-export it with labkit.tflite.convert(...).save(path), or copy the file again"
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

    with captured_stderr():
        try:
            Interpreter(model_content=data, num_threads=1)
        except ValueError as exc:
            raise InvalidTFLiteError(
                f"{where} ({len(data)} bytes, identifier {ident!r}) fails flatbuffer verification: the file "
                f"is truncated or corrupted ({exc}); {hint}") from None
    return data


def schema() -> Any:
    """The TFLite flatbuffer schema (the generated Python classes that ship with tflite-micro)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    return schema_fb


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_names(model: "Converted | bytes | str | os.PathLike") -> list[str]:
    """The builtin operators of a .tflite in execution order (``["CONV_2D", "DEPTHWISE_CONV_2D", ...]``).

    Used by notebook 05.
    """
    data = check_tflite(model)
    s = schema()
    m = s.Model.GetRootAsModel(data, 0)
    names = _enum_names(s.BuiltinOperator)
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    sg = m.Subgraphs(0)
    return [names.get(codes[sg.Operators(i).OpcodeIndex()], "CUSTOM") for i in range(sg.OperatorsLength())]


def has_variables(data: bytes) -> bool:
    """Whether the model keeps variable tensors between invocations (the fused LSTM's state)."""
    s = schema()
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
    shapes, names, quantization parameters, alignment; :func:`breakdown` splits that part further). Used by notebook 05.
    """
    import pandas as pd

    items = list(models.items()) if isinstance(models, Mapping) else [(m.label, m) for m in models]
    s = schema()
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


def breakdown(model: "Converted | bytes | str | os.PathLike") -> dict[str, int]:
    """Where the bytes of a ``.tflite`` file go: ``file`` (its size), ``tensor_data`` (constant tensors:
    weights, biases, shape constants; each distinct buffer once), ``quant_params`` (per-tensor /
    per-channel scales as float32 and zero points as int64), ``names`` (tensor names), ``metadata``
    (runtime version, conversion info) and ``structure`` (the rest: flatbuffer tables, shapes, operator
    lists, alignment padding). Used by notebook 02."""
    tflite_bytes = check_tflite(model)
    fb = schema()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(bytearray(tflite_bytes), 0))

    def buf_len(i: int) -> int:
        data = m.buffers[i].data
        return 0 if data is None else len(data)

    tensor_bufs, quant, names = set(), 0, 0
    for sg in m.subgraphs or []:
        for t in sg.tensors or []:
            tensor_bufs.add(t.buffer)
            names += len(t.name or b"")
            q = t.quantization
            if q is not None:
                quant += 4 * len(q.scale if q.scale is not None else [])
                quant += 8 * len(q.zeroPoint if q.zeroPoint is not None else [])
                quant += 4 * len(q.min if q.min is not None else []) + 4 * len(q.max if q.max is not None else [])
    meta_bufs = {md.buffer for md in (m.metadata or [])}
    tensor_data = sum(buf_len(i) for i in tensor_bufs)
    metadata = sum(buf_len(i) for i in meta_bufs - tensor_bufs)
    total = len(tflite_bytes)
    return {"file": total, "tensor_data": tensor_data, "quant_params": quant, "names": names,
            "metadata": metadata, "structure": total - tensor_data - quant - names - metadata}


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
        f"/* {name}: a {len(data):,}-byte TensorFlow Lite model, generated by labkit.tflite.to_c_array. */\n"
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
        f"/* {name}: a {len(data):,}-byte TensorFlow Lite model, generated by labkit.tflite.to_c_array. */\n"
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
