"""Running a .tflite with the LiteRT interpreter (``ai_edge_litert``): float in, float out.

:class:`LiteRTRunner` quantizes float inputs with the input tensor's scale and zero point
(:func:`quantize_input`), dequantizes integer outputs (:func:`dequantize`), batches when the model has
a dynamic batch axis and resets an LSTM's state between samples; :func:`predict` runs a whole array,
:func:`latency` times one inference (median over runs, batch 1, one thread by default).
Used by notebooks 02, 05, 06, 07 and 08 (through ``labkit.tflite``).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import numpy as np

from ..bench import median_time, one_example
from .files import Converted, QuantParams, captured_stderr, check_tflite, has_variables, tflite_bytes

__all__ = ["quantize_input", "dequantize", "LiteRTRunner", "io_details", "predict", "invoker", "latency"]


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """``x`` in the dtype a (Lite)RT input tensor wants, quantized with its scale and zero point when it
    is int8/uint8/int16. Used by :class:`LiteRTRunner` and notebook 05."""
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        if not scale:
            raise ValueError("integer input tensor without a quantization scale: cannot quantize the input")
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return np.asarray(x, dtype=dtype)



def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    """Integer -> float: ``scale * (q - zero_point)``. Used by notebook 05."""
    return (np.asarray(q, np.float32) - np.float32(params.zero_point)) * np.float32(params.scale)



def _detail_quant(detail: Mapping[str, Any]) -> QuantParams | None:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if dtype.kind not in "iu" or not scale:
        return None
    return QuantParams(float(scale), int(zero_point), dtype.name)



class LiteRTRunner:
    """A LiteRT interpreter over one .tflite with float-in / float-out helpers.

    It quantizes float inputs with the input tensor's scale and zero point, dequantizes integer
    outputs, batches with ``resize_tensor_input`` when the model has a dynamic batch axis (otherwise
    loops at batch 1), and resets variable tensors (an LSTM's state) after every call so samples stay
    independent. ``xnnpack=False`` runs LiteRT's builtin kernels only (without the default XNNPACK
    delegate, whose int8 kernels round differently). Used by :func:`predict`, :func:`latency`,
    ``labkit.tasks`` and notebook 05.
    """

    def __init__(self, model: "Converted | bytes | str | os.PathLike", *, num_threads: int = 1,
                 xnnpack: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.data = check_tflite(model)
        self.source = tflite_bytes(model)[1]
        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        with captured_stderr():
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
        self.stateful = has_variables(self.data)
        self.sample_shape = tuple(int(v) for v in self.input["shape"][1:])
        self._batch = int(self.input["shape"][0])

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Float inputs -> the input tensor's dtype (quantized if the model has integer input)."""
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


def predict(model: "Converted | bytes | str | os.PathLike", x: np.ndarray, *, batch_size: int = 256,
            progress: bool = False) -> np.ndarray:
    """Run a .tflite on float inputs ``x`` (``(N, *input_shape)``) with LiteRT; float outputs ``(N, ...)``.

    Integer models get their inputs quantized and outputs dequantized with the tensors' own
    scale/zero point. Used by ``labkit.tasks`` (notebooks 05-08).
    """
    return LiteRTRunner(model).predict(x, batch_size=batch_size, progress=progress)



def invoker(model: "Converted | bytes | str | os.PathLike", x: Any, *, num_threads: int = 1) -> Callable[[], None]:
    """One batch-1 inference of ``model`` on ``x`` (one example, or the first of a batch; quantized once
    for an int8 input) as a callable to time: only ``set_tensor`` + ``invoke``. Used by :func:`latency`
    and notebook 07's interleaved timing."""
    runner = LiteRTRunner(model, num_threads=num_threads)
    runner.resize(1)
    interp, index = runner.interpreter, runner.input["index"]
    data = runner.prepare(one_example(x, (1, *runner.sample_shape)))

    def run() -> None:
        interp.set_tensor(index, data)
        interp.invoke()

    return run


def latency(model: "Converted | bytes | str | os.PathLike", x: Any, runs: int = 100, warmup: int = 10, *,
            num_threads: int = 1) -> dict[str, Any]:
    """Batch-1 latency of a ``.tflite`` model with the LiteRT interpreter
    (``ai_edge_litert.interpreter.Interpreter``) on the CPU, one thread by default (the closest to a
    single-core MCU and steadier on shared cores): ``bench.median_time`` of :func:`invoker`. ``x`` is
    float; an int8 input is quantized with the model's own scale and zero point.
    Used by notebooks 02, 05, 06 and 07."""
    result = median_time(invoker(model, x, num_threads=num_threads), runs, warmup)
    return {**result, "runtime": "litert", "device": "CPU", "threads": num_threads}
