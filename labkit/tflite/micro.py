"""Running a .tflite in TensorFlow Lite Micro, the runtime a microcontroller runs (reference kernels).

* :func:`tflm_arena` - the tensor arena the runtime allocates (its recording allocator's report after
  one inference): ``total``, ``head`` (activations, planned) and ``tail`` (tensor/node structs, op data);
* :func:`tflm_min_arena` - the smallest arena it really runs in, by bisection in a helper process
  (``python -m labkit.tflm_probe``): kernels that take temporary memory while preparing need more than
  the report (the LSTM) and crash the process, rather than failing, when it does not fit;
* :func:`run_tflm` - outputs sample by sample, :func:`compare_tflm_litert` - the same inputs through
  TFLite Micro and LiteRT, compared LSB by LSB.

These figures come from the host (x86-64) build: on a 32-bit MCU pointers are half as large (smaller
tail) and optimised kernels (CMSIS-NN) may ask for extra scratch (larger head).
Used by notebooks 02 and 05 (through ``labkit.tflite``).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import numpy as np

from .files import Converted, TFLMError, schema, captured_stderr, check_tflite, tail, tflite_bytes
from .litert import LiteRTRunner

__all__ = ["tflm_arena", "tflm_arena_bytes", "tflm_min_arena", "run_tflm", "compare_tflm_litert"]

_TFLM_HINT = ("TFLite Micro runs fp32 and full-integer (int8_wa) models; fp16 and int8_w (dynamic range, "
              "'hybrid') models need the full LiteRT runtime")


def _tflm_error(where: str, log: str, exc: Exception) -> TFLMError:
    hint = _TFLM_HINT
    if "Failed to allocate" in log and "failed to prepare" not in log:
        hint = "the tensor arena is too small: pass a larger arena_size (tflm_arena(model) says what it needs)"
    return TFLMError(f"TFLite Micro could not run {where}: {exc}\nTFLM log:\n{tail(log)}\n({hint})")


def _tflm_interpreter(data: bytes, where: str, arena_size: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    with captured_stderr() as log:
        try:
            return runtime.Interpreter.from_bytes(data, arena_size=int(arena_size))
        except Exception as exc:
            error = exc
    raise _tflm_error(where, log[0] if log else "", error)


def _tflm_preflight(data: bytes, where: str) -> Any:
    """A TFLM interpreter with a generous arena, built once to fail fast (with the runtime's own message)
    on operators TFLM lacks, before any arena measurement."""
    return _tflm_interpreter(data, where, max(4 << 20, 16 * len(data)))


_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 12: 8, 15: 4, 16: 2, 17: 1}
"""Bytes per element of TFLite's TensorType codes (FLOAT32=0, FLOAT16=1, INT32=2, UINT8=3, INT64=4,
BOOL=6, INT16=7, COMPLEX64=8, INT8=9, FLOAT64=10, ...); unknown types count 8."""


def _variable_tensor_bytes(m) -> int:
    """Sum of the sizes of all tensors without constant data, over every subgraph (an upper bound of
    what the memory planner lays out)."""
    total = 0
    for g in range(m.SubgraphsLength()):
        sg = m.Subgraphs(g)
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            buf = m.Buffers(t.Buffer()) if t.Buffer() < m.BuffersLength() else None
            if buf is not None and buf.DataLength() > 0:
                continue
            shape = [max(1, int(d)) for d in t.ShapeAsNumpy()] if t.ShapeLength() else [1]
            total += int(np.prod(shape, dtype=np.int64)) * _TYPE_BYTES.get(t.Type(), 8)
    return total


_ARENA_RE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def tflm_arena(model: "Converted | bytes | str | os.PathLike", *, arena_size: int | None = None) -> dict[str, int]:
    """Tensor arena TFLite Micro allocates for a model, as its recording allocator reports it after one
    inference on zeros: ``total``, ``head`` (non-persistent: activation tensors and kernel scratch
    buffers, laid out by the memory planner) and ``tail`` (persistent: tensor and node structs,
    quantization data, kernel state), in bytes.

    The arena is generous unless ``arena_size`` is given (TFLM can crash, not fail cleanly, when a
    kernel's temporary allocation does not fit): twice every non-constant tensor plus a margin, grown if
    the runtime still refuses. Raises :class:`TFLMError` for models TFLM cannot run (fp16, int8_w).
    Used by notebooks 02 and 05."""
    from tflite_micro.python.tflite_micro import runtime

    data = check_tflite(model)
    where = tflite_bytes(model)[1]
    _tflm_preflight(data, where)  # unsupported operators fail here, with TFLM's own message
    m = schema().Model.GetRootAsModel(bytearray(data), 0)
    n_inputs = m.Subgraphs(0).InputsLength()
    size = arena_size or (2 * _variable_tensor_bytes(m) + 4 * len(data) + (1 << 20))
    error: Exception | None = None
    for _ in range(6):
        with captured_stderr() as log:
            try:
                interp = runtime.Interpreter.from_bytes(data, arena_size=size)
                for i in range(n_inputs):
                    d = interp.get_input_details(i)
                    interp.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
                interp.invoke()
                interp.print_allocations()
                error = None
            except RuntimeError as exc:  # arena too small (or an op TFLM lacks): try a larger arena
                error = exc
        text = log[0] if log else ""
        if error is None:
            found = {k: int(v) for k, v in _ARENA_RE.findall(text)}
            if "total" not in found:
                raise TFLMError(f"TFLite Micro printed no RecordingMicroAllocator report for {where}:\n{tail(text)}")
            return {k: found[k] for k in ("total", "head", "tail")}
        if arena_size is not None:
            break
        size *= 4
    raise TFLMError(f"TFLite Micro could not run {where} (last arena size tried: {size:,} bytes): {error}\n"
                    f"TFLM log:\n{tail(text)}\n({_TFLM_HINT}; pass arena_size= to try a specific size)") from error


def tflm_arena_bytes(model: "Converted | bytes | str | os.PathLike") -> int:
    """Total tensor-arena bytes TFLite Micro allocates for a model, as the runtime reports them
    (:func:`tflm_arena`). Kernels that take temporary memory while preparing (the LSTM) need more:
    see :func:`tflm_min_arena`. Used by notebooks 02 and 05."""
    return tflm_arena(model)["total"]


def tflm_min_arena(model: "Converted | bytes | str | os.PathLike", *, resolution: int = 16,
                   start: int | None = None) -> int:
    """The smallest tensor arena (within ``resolution`` bytes) in which TFLite Micro prepares the model and
    runs two inferences, found by bisection in an isolated helper process (``python -m labkit.tflm_probe``).

    For most models this equals the runtime's report (:func:`tflm_arena_bytes`); kernels that allocate
    temporary memory during Prepare need more (measured here: an int8 LSTM reported 3,680 B, needed
    5,117 B, and *crashed* the process with less). Use this number for the firmware's arena.
    Needs ``os.fork`` (Linux, macOS, Colab). Used by notebook 05.
    """
    data = check_tflite(model)
    where = tflite_bytes(model)[1]
    if not hasattr(os, "fork"):
        raise NotImplementedError("tflm_min_arena needs os.fork (Linux/macOS/Colab); use tflm_arena_bytes "
                                  "plus a margin on this platform")
    _tflm_preflight(data, where)  # unsupported operators fail here, with TFLM's message
    first = int(start) if start else tflm_arena_bytes(data)
    cap = max(1 << 26, 64 * len(data))
    proc = subprocess.run([sys.executable, "-m", "labkit.tflm_probe", str(first), str(int(resolution)), str(cap)],
                          input=data, capture_output=True, timeout=600)
    text = proc.stdout.decode().strip()
    if proc.returncode != 0 or not text.lstrip("-").isdigit():
        raise TFLMError(f"the arena search for {where} failed (exit {proc.returncode}): "
                        f"{tail(proc.stderr.decode(errors='replace'))}")
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
    with captured_stderr() as log:
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
    x = np.asarray(x, np.float32)
    x = x[:len(x) if limit is None else max(0, min(len(x), int(limit)))]
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
