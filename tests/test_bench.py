"""Tests of labkit.bench: the timing statistics, device reporting and Keras / LiteRT latency."""
from __future__ import annotations

import time

import labkit  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from labkit import bench, estimate, models


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


def test_quantize_input():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = bench.quantize_input(np.array([0.0, 1.0, -1.26, 1000.0, -1000.0]), detail)
    np.testing.assert_array_equal(q, np.array([-3, -1, -6, 127, -128], np.int8))
    assert bench.quantize_input(np.array([1.5]), {"dtype": np.float32, "quantization": (0.0, 0)}).dtype == np.float32


def test_latency_tflite_float_and_int8():
    model = estimate.fill_random_weights(models.build("fc_mlp", (6, 3), (6, 2)))
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)  # one example
    for mode in ("fp32", "int8"):
        t = bench.latency_tflite(estimate._convert_minimal(model, mode), x, runs=5, warmup=1)
        assert t["median_ms"] > 0 and t["runs"] == 5 and t["threads"] == 1 and t["runtime"] == "litert"
