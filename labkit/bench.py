"""Timing on this machine: medians of callables, and Keras models on the CPU (and GPU when there is one).

Host latencies rank models and show what conversion and quantization change; they are *not*
microcontroller latencies (a Cortex-M4 at 64 MHz has no vector units and a far lower clock). For an
MCU, MACs (``labkit.estimate``) are the better first guess.

Every timing is a median over ``runs`` calls after ``warmup`` calls, with the 10th/90th percentiles to
show the spread (other processes share these 2 cores). This module only times what it is given:
``labkit.tflite.latency`` times a .tflite with it, ``labkit.tasks`` a whole prediction pipeline
(:func:`stage_latency`). No labkit imports.
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["median_time", "device_info", "one_example", "latency_keras", "BREAKDOWN_STAGES", "stage_latency",
           "interleaved"]


def _times_ms(fn: Callable[[], Any], runs: int, warmup: int) -> np.ndarray:
    """Wall times of ``runs`` calls of ``fn()`` in ms, after ``warmup`` untimed calls."""
    if runs < 1:
        raise ValueError(f"runs={runs} must be >= 1")
    for _ in range(max(0, int(warmup))):
        fn()
    times = np.empty(int(runs))
    for i in range(int(runs)):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return times * 1000.0


def _summary(times: np.ndarray) -> dict[str, float]:
    return {"median_ms": float(np.median(times)), "p10_ms": float(np.percentile(times, 10)),
            "p90_ms": float(np.percentile(times, 90)), "min_ms": float(times.min()), "runs": int(len(times))}


def median_time(fn: Callable[[], Any], runs: int = 100, warmup: int = 10) -> dict[str, float]:
    """Wall time of ``fn()`` in ms: ``median_ms``, ``p10_ms``, ``p90_ms``, ``min_ms`` over ``runs`` calls
    after ``warmup`` untimed calls, and ``runs``. The 10th-90th percentile range is the kit's spread of a
    timing: compare two medians only where their ranges do not overlap. Used across labkit (notebooks 01,
    02 and 05-08)."""
    return _summary(_times_ms(fn, runs, warmup))


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
    jobs = int(os.environ.get("LABKIT_REPORT_JOBS", "1") or 1)
    if jobs > 1:
        note += (f" `labkit report` ran this notebook beside {jobs - 1} other{'s' if jobs > 2 else ''} (--jobs {jobs}), "
                 "TensorFlow on one thread each: these timings shared the machine; --jobs 1 times on a quiet one.")
    return {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "gpus": gpus,
            "devices": ["CPU"] + (["GPU"] if gpus else []), "note": note}


def one_example(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a batch of one example for a model input of ``shape`` (batch axis first): one example,
    or the first example of a batch. Used by :func:`latency_keras` and ``labkit.tflite.latency``."""
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
        inp = tf.constant(one_example(x, shape))
        fn = tf.function(lambda t: model(t, training=False))
        fn(inp)  # trace once, outside the timing
        result = median_time(lambda: fn(inp).numpy(), runs, warmup)
    return {**result, "runtime": "keras", "device": device}


BREAKDOWN_STAGES: tuple[str, ...] = ("preprocessing", "inference", "postprocessing")
"""Pipeline stages of a latency breakdown, in order (``"total"`` is measured end to end)."""


def stage_latency(stages: Mapping[str, Callable[[], Any]], total: Callable[[], Any], runs: int = 100,
                  warmup: int = 10, rounds: int = 4) -> dict[str, dict[str, float]]:
    """:func:`median_time` statistics of each stage of a pipeline (``{"preprocessing": fn, ...}``) and of the
    whole pipeline run end to end (``total``: not the sum of the medians), in that order. The ``runs`` of each
    are spread over ``rounds`` interleaved rounds (stage 1, stage 2, ..., total, then again), so a burst of
    load from other processes hits every stage alike instead of the one being timed; the statistics pool
    every round. Used by ``labkit.tasks.Task.latency_breakdown`` (notebooks 05 and 08)."""
    fns = {**stages, "total": total}
    rounds = max(1, min(int(rounds), int(runs)))
    per_round = [int(runs) // rounds + (1 if r < int(runs) % rounds else 0) for r in range(rounds)]
    times: dict[str, list[np.ndarray]] = {name: [] for name in fns}
    for r, n in enumerate(per_round):
        for name, fn in fns.items():
            times[name].append(_times_ms(fn, n, warmup if r == 0 else 0))  # warm-up once, in the first round
    return {name: _summary(np.concatenate(parts)) for name, parts in times.items()}


def interleaved(fns: Mapping[str, Callable[[], Any]], runs: int = 100, warmup: int = 10,
                rounds: int | None = None) -> dict[str, float]:
    """Median ms of several callables measured in ``rounds`` interleaved rounds of ``runs / rounds``
    timed calls each (after ``warmup`` calls per round), keeping each one's lowest round median: a burst
    of load from other processes then hits every callable alike instead of the one being timed. The
    default, rounds of about 10 calls (``max(3, runs // 10)``), matters beside a busy process: four copies
    of one DS-CNN .tflite (0.05 ms a call, 200 runs) came out up to 23 % apart in 3 rounds and within 2.1 %
    in 20 (8 trials each, a pip install running on the other core). Used by ``labkit.experiments.pruning``
    (notebook 07)."""
    rounds = max(3, int(runs) // 10) if rounds is None else max(1, int(rounds))
    per_round = max(1, int(runs) // rounds)
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], float(median_time(fn, per_round, warmup)["median_ms"]))
    return best
