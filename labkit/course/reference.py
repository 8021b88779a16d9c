"""The hidden tests of the course's exercises: random inputs, labkit's reference implementation, and the
labkit functions an answer must not call.

A hidden test in a notebook is one line, e.g. ``_ref.check("fake_quant_tensor", fake_quant_tensor,
seed=8128)``: it draws cases from a generator seeded by the hidden test (students see the generator,
not the seed), computes the expected results with the technique-level labkit function, then runs the
answer with those functions forbidden (:func:`labkit.course.selfcheck.forbid`) and compares. Every
reference to labkit lives in this module, so a moved function is fixed here once.
Used by the hidden tests of notebooks 01-08 (``labkit assign`` keeps them in ``dist/autograder``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .. import data, estimate, features, metrics, prune, quantize, search
from .selfcheck import forbid

__all__ = ["EXERCISES", "Exercise", "check"]


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One auto-graded exercise: its reference, a case generator and the calls it forbids."""

    reference: Callable[..., Any]
    cases: Callable[[np.random.Generator], list[tuple]]
    forbidden: tuple[str, ...]
    compare: Callable[[Any, Any], bool] = lambda got, want: _equal(got, want)
    convert: Callable[[Any, tuple], Any] = lambda got, args: got


def _equal(got: Any, want: Any) -> bool:
    if isinstance(want, tuple):
        return isinstance(got, (tuple, list)) and len(got) == len(want) and all(
            _equal(g, w) for g, w in zip(got, want))
    if isinstance(want, np.ndarray):
        got = np.asarray(got)
        return got.shape == want.shape and bool(np.array_equal(got, want))
    if isinstance(want, float):
        return isinstance(got, (int, float, np.number)) and math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-12)
    return bool(got == want)


def _close(rtol: float, atol: float) -> Callable[[Any, Any], bool]:
    def compare(got: Any, want: Any) -> bool:
        got = np.asarray(got, dtype=np.float64)
        return got.shape == np.shape(want) and bool(np.allclose(got, want, rtol=rtol, atol=atol))
    return compare


def _model(layers: Sequence[Any], input_shape: Sequence[int]) -> Any:
    import tensorflow as tf

    return tf.keras.Sequential([tf.keras.Input(tuple(input_shape)), *layers])


# ------------------------------------------------------------------------------------------ 01 features
def _stft_shape(num_samples: int, frame_length: int, frame_step: int, fft_length: int) -> tuple[int, int]:
    cfg = features.FeatureConfig("stft", frame_length, frame_step, fft_length, num_samples=num_samples)
    return cfg.num_frames, cfg.num_spectrogram_bins


def _stft_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for _ in range(12):
        n = int(rng.choice([8000, 16000, 22050]))
        length = int(rng.integers(64, 2049))
        step = int(rng.integers(16, length + 1))
        fft = 1 << (length - 1).bit_length()
        cases.append((n, length, step, int(fft * rng.choice([1, 2]))))
    return cases


def _mfcc(log_mel: np.ndarray, num_coefficients: int) -> np.ndarray:
    import tensorflow as tf

    # the last step of labkit.features' pipeline (features._extract)
    return tf.signal.mfccs_from_log_mel_spectrograms(tf.constant(log_mel, tf.float32))[..., :num_coefficients].numpy()


def _mfcc_cases(rng: np.random.Generator) -> list[tuple]:
    return [(rng.normal(0, 3, (int(rng.integers(1, 6)), int(m))).astype(np.float32), int(k))
            for m, k in [(40, 10), (16, 10), (32, 13), (40, 40), (8, 3)]]


# ---------------------------------------------------------------------------------------- 02 estimation
def _conv2d_flops(input_shape: tuple[int, int, int, int], out_channels: int, kernel_size: int, padding: int = 0,
                  stride: int = 1) -> int:
    import tensorflow as tf

    batch, c_in, h, w = input_shape
    if padding not in (0, (kernel_size - 1) // 2):
        raise ValueError("the reference covers padding 0 ('valid') and (k-1)/2 ('same')")
    mode = "valid" if padding == 0 else "same"
    model = _model([tf.keras.layers.Conv2D(out_channels, kernel_size, strides=stride, padding=mode)], (h, w, c_in))
    return 2 * batch * int(estimate.profile(model, totals_row=False)["macs"].sum())


def _conv_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for _ in range(6):
        k = int(rng.choice([1, 3, 5]))
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 9)), int(rng.integers(k, 17)), int(rng.integers(k, 17)))
        cases.append((shape, int(rng.integers(1, 17)), k, int(rng.choice([0, (k - 1) // 2])), int(rng.choice([1, 2]))))
    return cases


def _separable_macs(height: int, width: int, channels_in: int, channels_out: int, kernel_size: int,
                    stride: int = 1) -> tuple[int, int]:
    import tensorflow as tf

    model = _model([tf.keras.layers.DepthwiseConv2D(kernel_size, strides=stride, padding="same"),
                    tf.keras.layers.Conv2D(channels_out, 1)], (height, width, channels_in))
    table = estimate.profile(model, totals_row=False).set_index("type")["macs"]
    return int(table["DepthwiseConv2D"]), int(table["Conv2D"])


def _separable_cases(rng: np.random.Generator) -> list[tuple]:
    return [(int(rng.integers(3, 30)), int(rng.integers(3, 12)), int(rng.integers(1, 65)), int(rng.integers(1, 65)),
             int(rng.choice([3, 5])), int(rng.choice([1, 2]))) for _ in range(5)]


def _chain_peak_ram(tensor_bytes: Sequence[int]) -> int:
    import tensorflow as tf

    model = _model([tf.keras.layers.Dense(int(n), activation="relu") for n in tensor_bytes[1:]], (int(tensor_bytes[0]),))
    return estimate.peak_ram(model, "int8", align=1)


def _chain_cases(rng: np.random.Generator) -> list[tuple]:
    return [([int(v) for v in rng.integers(1, 400, int(rng.integers(2, 7)))],) for _ in range(6)]


# -------------------------------------------------------------------------------------- 03 training KWS
PARAM_BUDGET = 10_000
"""Exercise 3.1: the most parameters the small keyword spotter may have (about 10 kB as int8)."""


def _budget_report(model: Any, num_classes: int) -> tuple:
    """What exercise 3.1 grades, as a tuple that must equal (True, True, True, True)."""
    import tensorflow as tf

    params = estimate.totals(model)["params"]
    kinds = {type(layer).__name__ for layer in model.layers}
    x = np.random.default_rng(0).normal(size=(2, *model.input_shape[1:])).astype(np.float32)
    y = np.asarray(model(x, training=False))
    return (params <= PARAM_BUDGET, bool(kinds & {"Conv2D", "DepthwiseConv2D", "SeparableConv2D"}),
            y.shape == (2, num_classes), bool(np.allclose(y.sum(axis=1), 1.0, atol=1e-4)) and isinstance(
                model, tf.keras.Model))


def _budget_reference(input_shape: tuple, num_classes: int) -> tuple:
    return (True, True, True, True)


def _budget_cases(rng: np.random.Generator) -> list[tuple]:
    shapes = [((49, 10, 1), 12), ((32, 32, 1), 10), ((38, 10, 1), 8), ((49, 40, 1), 12)]
    return [shapes[i] for i in rng.permutation(len(shapes))]


def _kws_metrics(y_true: np.ndarray, probs: np.ndarray) -> tuple[float, np.ndarray]:
    m = metrics.kws_metrics(y_true, probs, [str(i) for i in range(probs.shape[1])])
    return m["top1"], np.asarray(m["confusion_matrix"])


def _metrics_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for _ in range(5):
        k, n = int(rng.integers(2, 13)), int(rng.integers(5, 200))
        cases.append((rng.integers(0, k, n), rng.dirichlet(np.ones(k), n)))
    return cases


def _compare_metrics(got: Any, want: tuple) -> bool:
    return (isinstance(got, (tuple, list)) and len(got) == 2 and math.isclose(float(got[0]), want[0], abs_tol=1e-12)
            and np.array_equal(np.asarray(got[1]), want[1]))


# ------------------------------------------------------------------------------------ 04 forecasting
def _mae(y_true: np.ndarray, y_pred: np.ndarray, target_names: Sequence[str]) -> np.ndarray:
    m = metrics.forecast_mae(y_true, y_pred, target_names)
    return np.array([m[f"{metrics.short_target_name(n)}_mae"] for n in target_names])


def _mae_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for _ in range(5):
        shape = (int(rng.integers(1, 50)), int(rng.integers(1, 8)), 2)
        cases.append((rng.normal(15, 5, shape), rng.normal(15, 5, shape), ["T (degC)", "rh (%)"]))
    return cases


def _persistence(windows: Any, split: str) -> np.ndarray:
    return metrics.persistence(windows, split)


def _persistence_cases(rng: np.random.Generator) -> list[tuple]:
    df = data.load_weather("payerne")
    cases = []
    for _ in range(2):
        w = data.make_windows(df, input_steps=int(rng.integers(2, 9)), output_steps=int(rng.integers(1, 8)))
        cases.append((w, str(rng.choice(["train", "val", "test"]))))
    return cases


# ------------------------------------------------------------------------------------- 05 conversion
def _int8_params(rmin: float, rmax: float) -> tuple[float, int]:
    return quantize.asymmetric_params(rmin, rmax, 8)


def _int8_params_cases(rng: np.random.Generator) -> list[tuple]:
    cases = [(-1.5, 6.0), (0.5, 3.0), (-4.0, -0.25)]
    for _ in range(6):
        a, b = sorted(rng.normal(0, 5, 2))
        cases.append((float(a), float(b)))
    return cases


def _compare_params(got: Any, want: tuple[float, int]) -> bool:
    return (isinstance(got, (tuple, list)) and len(got) == 2 and math.isclose(float(got[0]), want[0], rel_tol=1e-6)
            and float(got[1]) == want[1])


def _quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return quantize.quantize_int(x, 8, scale, zero_point).astype(np.int8)


def _ties(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Values that sit exactly half-way between two codes (round half away from zero vs to even)."""
    return (rng.integers(-200, 200, n) + 0.5) * scale


def _quantize_input_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for _ in range(4):
        scale = float(2.0 ** -int(rng.integers(2, 7)))
        x = np.concatenate([rng.normal(0, 40 * scale, 30), _ties(rng, 10, scale)])
        cases.append((x, scale, int(rng.integers(-128, 128))))
    return cases


def _compare_int8(got: Any, want: np.ndarray) -> bool:
    got = np.asarray(got)
    return got.shape == want.shape and got.dtype == np.int8 and bool(np.array_equal(got, want))


def _dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    # what a code stands for is a fixed point of labkit's fake_quant (dequantize(quantize(x)))
    return quantize.fake_quant((np.asarray(q, np.float64) - zero_point) * scale, 8, scale, zero_point)


def _dequantize_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for _ in range(4):
        scale, zp = float(rng.uniform(0.001, 0.5)), int(rng.integers(-128, 128))
        x = rng.normal(0, 60 * scale, 40)
        cases.append((quantize.quantize_int(x, 8, scale, zp).astype(np.int8), scale, zp))
    return cases


# ----------------------------------------------------------------------------------- 06 quantization
def _fake_quant_tensor(w: np.ndarray, bits: int) -> np.ndarray:
    return quantize.quantize_weights(w, bits, per_channel=False)


def _fake_quant_channel(w: np.ndarray, bits: int) -> np.ndarray:
    return quantize.quantize_weights(w, bits, per_channel=True, axis=-1)


def _weight_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for bits in (8, 4, 3, 2):
        shape = [(3, 3, 4, 6), (20, 8), (5, 1, 16)][int(rng.integers(0, 3))]
        w = rng.normal(0, 0.2, shape) * rng.uniform(0.05, 2.0, shape[-1])  # unequal channels
        qmax = 2 ** (bits - 1) - 1
        scale = 0.25
        flat = w.reshape(-1)
        flat[:3] = [qmax * scale, -1.5 * scale, 0.5 * scale]  # ties (x.5 codes) under a per-tensor scale of 0.25
        w[..., 0] = 0.0 if bits == 2 else w[..., 0]  # an all-zero channel
        cases.append((w, bits))
    return cases


# ------------------------------------------------------------------------------------------ 07 pruning
def _magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    import tensorflow as tf

    model = _model([tf.keras.layers.Dense(w.shape[1], use_bias=False)], (w.shape[0],))
    model.layers[0].set_weights([w.astype(np.float32)])
    pruned = prune.prune_oneshot(model, sparsity, scope="per_layer")
    return pruned.layers[0].get_weights()[0] != 0


def _mask_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for _ in range(4):
        w = rng.normal(0, 1, (int(rng.integers(2, 30)), int(rng.integers(2, 30)))).astype(np.float32)
        w[w == 0] = 1e-3
        w.reshape(-1)[:4] = [0.5, -0.5, 0.5, -0.5]  # ties: the earlier position goes first
        cases.append((w, float(rng.choice([0.1, 0.25, 0.5, 0.8, 0.9]))))
    return cases


def _l1_channels(kernel: np.ndarray, keep: float) -> np.ndarray:
    import tensorflow as tf

    model = _model([tf.keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], use_bias=False, name="conv"),
                    tf.keras.layers.Flatten(), tf.keras.layers.Dense(2)], (kernel.shape[0] + 2, kernel.shape[1] + 2,
                                                                          kernel.shape[2]))
    model.get_layer("conv").set_weights([kernel.astype(np.float32)])
    scores = prune.channel_scores(model, "l1", fold_bn=False)
    return np.asarray(prune.channels_to_keep(scores, 1.0 - keep)["conv"])


def _l1_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for keep in (0.25, 0.5, 0.75):
        n = int(4 * rng.integers(1, 9))
        kernel = rng.normal(0, 1, (3, 3, int(rng.integers(1, 5)), n)) * rng.uniform(0.1, 2, n)
        cases.append((kernel.astype(np.float32), keep))
    return cases


def _end_step(total_steps: int, frequency: int, end_fraction: float = 0.7) -> int:
    return prune.pruning_schedule(0.8, total_steps, frequency=frequency, end_fraction=end_fraction)[1]["end_step"]


def _end_step_cases(rng: np.random.Generator) -> list[tuple]:
    cases = [(1000, 100, 0.7), (743, 100, 0.7), (50, 7, 0.5)]
    for _ in range(6):
        total = int(rng.integers(5, 3000))
        cases.append((total, int(rng.integers(1, total + 1)), float(rng.choice([0.5, 0.7, 0.9, 1.0]))))
    return cases


def _compare_end_step(got: Any, want: int) -> bool:
    return isinstance(got, (int, np.integer)) and int(got) == want


# --------------------------------------------------------------------------------------- 08 trade-offs
def _pareto(frame: pd.DataFrame, objectives: dict[str, str]) -> np.ndarray:
    return search.pareto_mask(frame, objectives)


def _pareto_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for _ in range(4):
        n = int(rng.integers(3, 40))
        frame = pd.DataFrame({"top1": rng.choice(np.linspace(0.5, 1, 11), n), "size_kb": rng.choice(np.arange(5, 60), n),
                              "inference_ms": rng.uniform(0.1, 3, n)})
        frame.loc[frame.index[0], "top1"] = np.nan
        frame = pd.concat([frame, frame.iloc[[1]]], ignore_index=True)  # an exact duplicate
        objectives = {"top1": "max", "size_kb": "min"}
        if rng.random() < 0.5:
            objectives["inference_ms"] = "min"
        cases.append((frame, objectives))
    return cases


def _compare_mask(got: Any, want: np.ndarray) -> bool:
    got = np.asarray(got)
    return got.shape == want.shape and got.dtype == bool and bool(np.array_equal(got, want))


def _measured(rng: np.random.Generator, preset: search.ConstraintPreset) -> dict[str, Any]:
    m: dict[str, Any] = {}
    for c in preset.constraints:
        r = rng.random()
        if r < 0.1:
            continue  # missing measurement
        if r < 0.2:
            m[c.metric] = float("nan")
        elif r < 0.35:
            m[c.metric] = c.limit  # exactly on the bound: strict constraints fail
        else:
            m[c.metric] = float(c.limit * rng.uniform(0.7, 1.3))
    m["model"] = "ds_cnn"
    return m


def _meets(measured: dict[str, Any], preset_name: str) -> bool:
    return search.meets(measured, preset_name)


def _meets_cases(rng: np.random.Generator) -> list[tuple]:
    names = sorted(search.PRESETS)
    return [(_measured(rng, search.PRESETS[str(name)]), str(name)) for name in rng.choice(names, 25)]


def _best_config(trials: pd.DataFrame, preset_name: str) -> Any:
    preset = search.PRESETS[preset_name]
    metric, sense = search.PRIMARY[preset.task]
    row = search.best_per_preset(trials, [preset], primary=metric, sense=sense).iloc[0]
    return int(row["trial"]) if row["status"] == "met" else None


def _best_cases(rng: np.random.Generator) -> list[tuple]:
    cases = []
    for name in ("kws_b", "kws_a", "forecast_a", "kws_c"):
        preset = search.PRESETS[name]
        rows = [dict(_measured(rng, preset), trial=int(t)) for t in rng.permutation(60)[:int(rng.integers(3, 25))]]
        frame = pd.DataFrame(rows)
        for c in preset.constraints:  # distinct headline metrics: no ties for the best
            if c.metric not in frame:
                frame[c.metric] = np.nan
        metric = search.PRIMARY[preset.task][0]
        frame[metric] = frame[metric] + rng.uniform(0, 1e-6, len(frame))
        cases.append((frame, name))
    return cases


def _compare_best(got: Any, want: Any) -> bool:
    if want is None:
        return got is None
    return isinstance(got, (int, np.integer)) and int(got) == want


# ------------------------------------------------------------------------------------------- registry
_Q = "labkit.quantize."
EXERCISES: dict[str, Exercise] = {
    "stft_shape": Exercise(_stft_shape, _stft_cases, ("labkit.features.FeatureConfig.num_frames",
                                                      "labkit.features.FeatureConfig.num_spectrogram_bins",
                                                      "labkit.features.output_shape"),
                           convert=lambda got, args: tuple(int(v) for v in got)),
    "mfcc_from_log_mel": Exercise(_mfcc, _mfcc_cases, ("tensorflow.signal.mfccs_from_log_mel_spectrograms",
                                                       "tensorflow.signal.dct", "labkit.features.compute"),
                                  compare=_close(1e-4, 2e-3)),
    "conv2d_flops": Exercise(_conv2d_flops, _conv_cases, ("labkit.estimate.profile", "labkit.estimate.totals")),
    "separable_macs": Exercise(_separable_macs, _separable_cases, ("labkit.estimate.profile", "labkit.estimate.totals")),
    "chain_peak_ram": Exercise(_chain_peak_ram, _chain_cases, ("labkit.estimate.peak_ram", "labkit.estimate.memory_timeline",
                                                               "labkit.estimate.profile", "labkit.estimate.totals")),
    "build_small_kws": Exercise(_budget_reference, _budget_cases, ("labkit.models.build",),
                                convert=lambda got, args: _budget_report(got, args[1])),
    "top1_and_confusion": Exercise(_kws_metrics, _metrics_cases, ("labkit.metrics.kws_metrics",), compare=_compare_metrics),
    "mae_per_target": Exercise(_mae, _mae_cases, ("labkit.metrics.forecast_mae", "labkit.metrics.forecast_metrics"),
                               compare=_close(1e-9, 1e-9)),
    "persistence_forecast": Exercise(_persistence, _persistence_cases, (
        "labkit.metrics.persistence", "labkit.data.windows.Windows.persistence", "labkit.data.windows.Windows.last_observed",
        "labkit.data.windows.Windows.y_true"), compare=_close(1e-6, 1e-4)),
    "int8_params": Exercise(_int8_params, _int8_params_cases, (_Q + "asymmetric_params",), compare=_compare_params),
    "quantize_input": Exercise(_quantize_input, _quantize_input_cases, (
        _Q + "quantize_int", _Q + "fake_quant", _Q + "round_half_away", "labkit.tflite.quantize_input"),
        compare=_compare_int8),
    "dequantize": Exercise(_dequantize, _dequantize_cases, (_Q + "fake_quant", "labkit.tflite.dequantize"),
                           compare=_close(0, 1e-12)),
    "fake_quant_tensor": Exercise(_fake_quant_tensor, _weight_cases, (
        _Q + "quantize_weights", _Q + "fake_quant", _Q + "quantize_int", _Q + "symmetric_params", _Q + "round_half_away"),
        compare=_close(0, 1e-9)),
    "fake_quant_channel": Exercise(_fake_quant_channel, _weight_cases, (
        _Q + "quantize_weights", _Q + "fake_quant", _Q + "quantize_int", _Q + "symmetric_params", _Q + "round_half_away"),
        compare=_close(0, 1e-9)),
    "magnitude_mask": Exercise(_magnitude_mask, _mask_cases, ("labkit.prune.prune_oneshot", "labkit.prune.prune_finetune"),
                               compare=_compare_mask),
    "channels_to_keep_l1": Exercise(_l1_channels, _l1_cases, (
        "labkit.prune.channel_scores", "labkit.prune.channels_to_keep", "labkit.prune.prune_channels"),
        convert=lambda got, args: np.asarray(got, dtype=np.int64)),
    "aligned_end_step": Exercise(_end_step, _end_step_cases, ("labkit.prune.pruning_schedule", "labkit.experiments.pruning.schedule_table"),
                                 compare=_compare_end_step),
    "pareto_front": Exercise(_pareto, _pareto_cases, ("labkit.search.pareto_mask",), compare=_compare_mask),
    "meets_preset": Exercise(_meets, _meets_cases, ("labkit.search.meets", "labkit.search.check",
                                                    "labkit.search.Constraint.passed", "labkit.search.Constraint.margin")),
    "best_config": Exercise(_best_config, _best_cases, ("labkit.search.best_per_preset", "labkit.search.best_configs",
                                                        "labkit.search.meets", "labkit.search.check",
                                                        "labkit.search.Constraint.passed"), compare=_compare_best),
}
"""Exercise (answer function name) -> its hidden test. The notebooks' questions map onto these names."""


def _describe(args: tuple) -> str:
    parts = []
    for a in args:
        if isinstance(a, np.ndarray):
            parts.append(f"array{a.shape}" if a.size > 6 else np.array2string(a, separator=", "))
        elif isinstance(a, pd.DataFrame):
            parts.append(f"DataFrame({len(a)} rows)")
        elif isinstance(a, data.Windows):
            parts.append(f"Windows(input_steps={a.input_steps}, output_steps={a.output_steps})")
        else:
            parts.append(repr(a))
    return ", ".join(parts)


def check(name: str, answer: Callable[..., Any], *, seed: int) -> None:
    """The hidden test of exercise ``name``: random cases (seeded by the hidden test) through labkit's
    reference and through ``answer`` with the reference's labkit functions forbidden; raises an
    AssertionError naming the first case that differs. Used by the hidden tests of notebooks 01-08."""
    ex = EXERCISES[name]
    assert callable(answer), f"{name} must be a function"
    cases = ex.cases(np.random.default_rng(seed))
    wanted = [ex.reference(*args) for args in cases]
    with forbid(answer, *ex.forbidden):
        for args, want in zip(cases, wanted):
            got = answer(*args)
            try:
                got = ex.convert(got, args)
            except (TypeError, ValueError, AttributeError) as exc:
                raise AssertionError(f"{name}({_describe(args)}) returned {_short(got)}: {exc}") from None
            if not ex.compare(got, want):
                raise AssertionError(f"{name}({_describe(args)}) returned {_short(got)}, expected {_short(want)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + " ..."
