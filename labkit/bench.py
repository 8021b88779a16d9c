"""Latency on this machine: Keras models (CPU, and GPU when there is one) and .tflite files (LiteRT).

Host latencies rank models and show what conversion and quantization change; they are *not*
microcontroller latencies (a Cortex-M4 at 64 MHz has no vector units and a far lower clock). For an
MCU, MACs (``labkit.estimate``) are the better first guess.

Every timing is a median over ``runs`` calls after ``warmup`` calls, batch 1, one inference per call,
with the 10th/90th percentiles to show the spread (other processes share these 2 cores).
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["median_time", "device_info", "latency_keras", "latency_tflite", "latency_rows", "quantize_input"]


def median_time(fn: Callable[[], Any], runs: int = 100, warmup: int = 10) -> dict[str, float]:
    """Wall time of ``fn()`` in ms: ``median_ms``, ``p10_ms``, ``p90_ms``, ``min_ms`` over ``runs`` calls
    after ``warmup`` untimed calls, and ``runs``. Used by notebooks 01, 02, 05 and 06."""
    if runs < 1:
        raise ValueError(f"runs={runs} must be >= 1")
    for _ in range(max(0, int(warmup))):
        fn()
    times = np.empty(int(runs))
    for i in range(int(runs)):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    times *= 1000.0
    return {"median_ms": float(np.median(times)), "p10_ms": float(np.percentile(times, 10)),
            "p90_ms": float(np.percentile(times, 90)), "min_ms": float(times.min()), "runs": int(runs)}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict[str, Any]:
    """What the timings run on: ``cpu`` name, ``cpu_count``, ``gpus`` (TensorFlow's GPU names, maybe empty),
    ``devices`` to time Keras on (``["CPU"]`` plus ``"GPU"`` when one is visible) and a plain ``note``.
    Used by notebooks 02 and 06."""
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    note = (f"GPU found ({', '.join(gpus)}): Keras latency is measured on CPU and GPU."
            if gpus else "No GPU visible to TensorFlow: every latency here is CPU only.")
    return {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "gpus": gpus,
            "devices": ["CPU"] + (["GPU"] if gpus else []), "note": note}


def _batch1(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.shape == tuple(shape[1:]):
        x = x[None]
    if x.shape[0] != 1:
        x = x[:1]
    if x.shape[1:] != tuple(shape[1:]):
        raise ValueError(f"input of shape {x.shape} does not fit the model input {tuple(shape)}; "
                         "pass one example (or a batch whose first example is used)")
    return x


def latency_keras(model, x: Any, runs: int = 100, warmup: int = 10, *, device: str = "CPU") -> dict[str, Any]:
    """Batch-1 latency of a Keras model on ``device`` ("CPU" or "GPU"), through a compiled
    ``tf.function`` (eager calls would time Python overhead). ``x``: one example or a batch (its first
    example is used). Used by notebooks 02 and 06."""
    import tensorflow as tf

    device = device.upper()
    if device == "GPU" and not tf.config.list_physical_devices("GPU"):
        raise RuntimeError("no GPU is visible to TensorFlow on this machine; time on device='CPU' "
                           "(bench.device_info() says which devices exist)")
    shape = tuple(d or 1 for d in model.input_shape)
    with tf.device(f"/{device}:0"):
        inp = tf.constant(_batch1(x, shape))
        fn = tf.function(lambda t: model(t, training=False))
        fn(inp)  # trace once, outside the timing
        result = median_time(lambda: fn(inp).numpy(), runs, warmup)
    return {**result, "runtime": "keras", "device": device}


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """``x`` in the dtype a (Lite)RT input tensor wants, quantized with its scale and zero point when it
    is int8/uint8/int16. Used by :func:`latency_tflite` and labkit.convert."""
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        if not scale:
            raise ValueError("integer input tensor without a quantization scale: cannot quantize the input")
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return np.asarray(x, dtype=dtype)


def latency_tflite(tflite_bytes: bytes, x: Any, runs: int = 100, warmup: int = 10, *,
                   num_threads: int = 1) -> dict[str, Any]:
    """Batch-1 latency of a ``.tflite`` model with the LiteRT interpreter
    (``ai_edge_litert.interpreter.Interpreter``) on the CPU, one thread by default (the closest to a
    single-core MCU and steadier on shared cores). ``x`` is float; an int8 input is quantized with the
    model's own scale and zero point. Used by notebooks 02, 05 and 06."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(tflite_bytes), num_threads=num_threads)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    data = quantize_input(_batch1(x, tuple(detail["shape"])), detail)
    index = detail["index"]

    def run() -> None:
        interp.set_tensor(index, data)
        interp.invoke()

    result = median_time(run, runs, warmup)
    return {**result, "runtime": "litert", "device": "CPU", "threads": num_threads}


# ------------------------------------------------------------------------------------------------
# Latency breakdown per clip / window (added by the conversion work, notebook 05):
# preprocessing -> inference (LiteRT) -> post-processing, each a median over `runs` calls.
# ------------------------------------------------------------------------------------------------
BREAKDOWN_STAGES: tuple[str, ...] = ("preprocessing", "inference", "postprocessing")
"""Pipeline stages of :func:`latency_breakdown`, in order (``"total"`` is measured end to end)."""
__all__ += ["BREAKDOWN_STAGES", "latency_breakdown"]


def latency_breakdown(tflite: Any, *, clip: Any = None, features: Any = None, window: Any = None,
                      windows: Any = None, runs: int = 100, warmup: int = 10, name: str = "",
                      num_threads: int = 1) -> "Any":
    """Median latency in ms of each stage of one prediction with a ``.tflite`` (bytes, path or
    ``convert.Converted``), batch 1, on this CPU.

    KWS: ``clip`` (one ``(16000,)`` waveform) and ``features`` (preset name or FeatureConfig):
    preprocessing = ``features.tf_fn`` on the clip, inference = quantize + LiteRT invoke + dequantize,
    postprocessing = argmax. Forecasting: ``window`` (one raw ``(steps, features)`` window in real
    units) and ``windows`` (its normalisation): preprocessing = normalise, postprocessing =
    de-normalise the targets. ``total`` is the whole pipeline timed end to end (not the sum of the
    medians). Returns a DataFrame with rows (model, mode, stage, ms, p10_ms, p90_ms).
    Used by notebook 05.
    """
    import pandas as pd

    from . import convert

    runner = convert.LiteRTRunner(tflite, num_threads=num_threads)
    mode = tflite.label if isinstance(tflite, convert.Converted) else ""
    name = name or (tflite.name if isinstance(tflite, convert.Converted) else "")
    if clip is not None:
        if features is None:
            raise ValueError("a KWS breakdown needs features= (the preset or FeatureConfig the model was trained on)")
        from . import features as feats

        fn = feats.tf_fn(features)
        clip_t = np.asarray(clip, np.float32)

        def pre() -> np.ndarray:
            return fn(clip_t).numpy()[None]

        def post(y: np.ndarray) -> Any:
            return int(np.argmax(y[0]))
    elif window is not None:
        if windows is None:
            raise ValueError("a forecasting breakdown needs windows= (for the normalisation mean/std)")
        mean, std = np.asarray(windows.feature_mean, np.float32), np.asarray(windows.feature_std, np.float32)
        raw = np.asarray(window, np.float32)

        def pre() -> np.ndarray:
            return ((raw - mean) / std)[None]

        def post(y: np.ndarray) -> Any:
            return windows.denormalize_targets(y)
    else:
        raise ValueError("pass clip= and features= (KWS) or window= and windows= (forecasting)")

    x = pre()
    if x.shape[1:] != runner.sample_shape:
        raise ValueError(f"preprocessing gives {x.shape[1:]}, the model expects {runner.sample_shape}: "
                         "pass the features / windows the model was trained on")
    runner.resize(1)
    y = runner(x)
    timings = {
        "preprocessing": median_time(pre, runs, warmup),
        "inference": median_time(lambda: runner(x), runs, warmup),
        "postprocessing": median_time(lambda: post(y), runs, warmup),
        "total": median_time(lambda: post(runner(pre())), runs, warmup),
    }
    return pd.DataFrame([{"model": name, "mode": mode, "stage": stage, "ms": t["median_ms"],
                          "p10_ms": t["p10_ms"], "p90_ms": t["p90_ms"], "runs": t["runs"]}
                         for stage, t in timings.items()])


def latency_rows(model, tflite: Mapping[str, bytes] | None = None, *, runs: int = 100, warmup: int = 10,
                 seed: int = 0, devices: Sequence[str] | None = None) -> "pd.DataFrame":
    """Batch-1 latency of one model on every runtime at hand: Keras on each device of
    :func:`device_info` (or ``devices``) and LiteRT for each ``.tflite`` in ``tflite`` (``{"fp32": bytes,
    "int8": bytes}``), on one random-normal input. Used by notebooks 02 and 06."""
    import pandas as pd

    shape = tuple(d or 1 for d in model.input_shape[1:])
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    rows = []
    for device in devices or device_info()["devices"]:
        rows.append({**latency_keras(model, x, runs, warmup, device=device), "model": model.name,
                     "runtime": f"keras ({device})"})
    for mode, data in (tflite or {}).items():
        rows.append({**latency_tflite(data, x, runs, warmup), "model": model.name, "runtime": f"litert {mode}"})
    cols = ["model", "runtime", "device", "median_ms", "p10_ms", "p90_ms", "runs"]
    return pd.DataFrame(rows)[cols]
