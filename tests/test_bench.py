"""Tests of labkit.bench: the timing statistics (medians, stages, interleaved rounds), device reporting and
Keras latency; and LiteRT latency (labkit.tflite.latency, built on bench.median_time)."""
from __future__ import annotations

import time

import labkit  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from labkit import bench, estimate, models, tflite


def test_median_time_counts_and_orders():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.002)

    t = bench.median_time(fn, runs=7, warmup=3)
    assert len(calls) == 10 and t["runs"] == 7
    assert t["min_ms"] <= t["p10_ms"] <= t["median_ms"] <= t["p90_ms"]
    assert t["median_ms"] >= 2.0  # the sleep is a lower bound
    with pytest.raises(ValueError, match="runs"):
        bench.median_time(fn, runs=0, warmup=0)


def test_device_info_is_plain_about_gpus():
    info = bench.device_info()
    assert info["devices"][0] == "CPU" and info["cpu_count"] >= 1
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert ("GPU" in info["devices"]) == has_gpu == bool(info["gpus"])
    assert ("No GPU" in info["note"]) != has_gpu


def test_latency_keras_and_gpu_message():
    model = models.build("fc_mlp", (6, 3), (6, 2))
    x = np.zeros((4, 6, 3), np.float32)  # a batch: its first example is timed
    t = bench.latency_keras(model, x, runs=5, warmup=1)
    assert t["median_ms"] > 0 and t["device"] == "CPU" and t["runtime"] == "keras"
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(RuntimeError, match="no GPU"):
            bench.latency_keras(model, x, runs=1, warmup=0, device="GPU")
    with pytest.raises(ValueError, match="does not fit"):
        bench.latency_keras(model, np.zeros((1, 5, 3)), runs=1, warmup=0)


def test_stage_latency_times_each_stage_and_the_whole():
    calls = {"a": 0, "b": 0, "total": 0}

    def stage(name, seconds):
        def fn():
            calls[name] += 1
            time.sleep(seconds)
        return fn

    t = bench.stage_latency({"a": stage("a", 0.001), "b": stage("b", 0.003)}, stage("total", 0.004), runs=4, warmup=1)
    assert list(t) == ["a", "b", "total"] and calls == {"a": 5, "b": 5, "total": 5}
    # the sleeps are lower bounds (a busy machine only makes the medians longer)
    assert t["a"]["median_ms"] >= 1.0 and t["b"]["median_ms"] >= 3.0 and t["total"]["median_ms"] >= 4.0
    assert bench.BREAKDOWN_STAGES == ("preprocessing", "inference", "postprocessing")


def test_stage_latency_interleaves_rounds_and_pools_them():
    order = []
    t = bench.stage_latency({"a": lambda: order.append("a")}, lambda: order.append("t"), runs=6, warmup=2, rounds=3)
    # warm-up (2 calls each) in the first round only, then 2 timed calls per stage per round, stage by stage
    assert order == ["a"] * 4 + ["t"] * 4 + ["a", "a", "t", "t"] * 2
    assert t["a"]["runs"] == t["total"]["runs"] == 6


def test_interleaved_keeps_the_best_round_of_each():
    calls = []
    best = bench.interleaved({"fast": lambda: calls.append("f"),
                              "slow": lambda: (calls.append("s"), time.sleep(0.002))}, runs=6, warmup=1, rounds=3)
    assert calls[:3] == ["f", "f", "f"] and calls.count("f") == calls.count("s") == 3 * (1 + 2)  # warm-up + 6/3 runs
    assert best["slow"] >= 2.0 and 0 <= best["fast"] < float("inf")  # the sleep is a lower bound
    calls.clear()
    bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, runs=40, warmup=1)
    assert calls == (["a"] * 11 + ["b"] * 11) * 4  # by default, rounds of about 10 timed calls (40 runs: 4)


def test_quantize_input():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = tflite.quantize_input(np.array([0.0, 1.0, -1.26, 1000.0, -1000.0]), detail)
    np.testing.assert_array_equal(q, np.array([-3, -1, -6, 127, -128], np.int8))
    assert tflite.quantize_input(np.array([1.5]), {"dtype": np.float32, "quantization": (0.0, 0)}).dtype == np.float32


def test_latency_tflite_float_and_int8():
    model = estimate.fill_random_weights(models.build("fc_mlp", (6, 3), (6, 2)))
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)  # one example
    rep = np.random.default_rng(1).standard_normal((8, 6, 3)).astype(np.float32)
    for mode in ("fp32", "int8_wa"):
        t = tflite.latency(tflite.convert(model, mode, rep if mode == "int8_wa" else None), x, runs=5, warmup=1)
        assert t["median_ms"] > 0 and t["runs"] == 5 and t["threads"] == 1 and t["runtime"] == "litert"
