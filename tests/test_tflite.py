"""labkit.tflite (and notebook 05's comparison, labkit.experiments.conversion): every mode converts and
runs, INT8 W+A stays close to Keras on a trained tiny model, TFLite Micro matches LiteRT within 1 LSB,
the LSTM goes through the batch-1 route with independent samples, the C array compiles and holds the
file's bytes, corrupted files give clear errors, and a task times one prediction stage by stage.

Everything runs on tiny models trained for a few steps on hand-made data (about 30 s on 2 cores).
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from labkit import bench, config, features, metrics, models, tasks, tflite
from labkit.experiments import conversion

from fakes import sine_windows

KWS_FEATURES = "mfcc_a"
CLASSES = 4


# ------------------------------------------------------------------------------------ tiny fixtures
def _kws_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features-shaped inputs whose class sets the sign pattern of four frequency bands, plus noise."""
    rng = np.random.default_rng(seed)
    shape = features.output_shape(KWS_FEATURES)
    y = rng.integers(0, CLASSES, n)
    x = rng.normal(0.0, 1.0, (n, *shape)).astype(np.float32)
    for k in range(CLASSES):
        x[y == k, :, 2 * k:2 * k + 2, :] += 2.5
    return x, y


@pytest.fixture(scope="module")
def kws():
    """A trained tiny CNN (alpha 0.25) with its four conversions."""
    import tensorflow as tf

    x_train, y_train = _kws_data(512, seed=0)
    x_test, y_test = _kws_data(256, seed=1)
    model = models.build("cnn", x_train.shape[1:], CLASSES, alpha=0.25, seed=0)
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    config.seed_everything(0)  # fit's shuffling too: the same model whichever tests ran before
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    converted = {mode: tflite.convert(model, mode, x_train, calibration_samples=100, name="tiny_cnn")
                 for mode in tflite.MODES}
    return model, converted, (x_train, y_train, x_test, y_test)


@pytest.fixture(scope="module")
def lstm():
    """The LSTM forecaster (alpha 0.5, residual head) trained for a few steps on sine windows, converted
    to FP32 and INT8 W+A."""
    import tensorflow as tf

    w = sine_windows(400, split=(0.75, 0.75))
    model = models.build("fc_lstm", w.x_train.shape[1:], (6, 2), alpha=0.5, seed=0, residual=True)
    model.compile(tf.keras.optimizers.Adam(1e-2), "mae")
    config.seed_everything(0)
    model.fit(w.x_train, w.y_train, epochs=3, batch_size=32, verbose=0)
    converted = {"fp32": tflite.convert(model, "fp32", name="fc_lstm"),
                 "int8_wa": tflite.convert(model, "int8_wa", w.x_train, calibration_samples=100, name="fc_lstm")}
    return model, w, converted


# ------------------------------------------------------------------------------------------- modes
def test_each_mode_converts_and_runs_close_to_keras(kws):
    model, converted, (_, _, x_test, _) = kws
    assert list(converted) == list(tflite.MODES)
    ref = model.predict(x_test[:64], verbose=0)
    # how far each mode's probabilities may drift from Keras (measured: ~1e-7, 4e-4, 2e-2, 2e-2)
    tolerance = {"fp32": 1e-5, "fp16": 5e-3, "int8_w": 0.08, "int8_wa": 0.08}
    for mode, conv in converted.items():
        assert conv.mode == mode and conv.size == len(conv.data) and conv.method == "concrete"
        assert conv.zlib_size == len(zlib.compress(conv.data, 9)) < conv.size
        probs = tflite.predict(conv, x_test[:64], batch_size=16)
        assert probs.shape == ref.shape
        assert np.abs(probs - ref).max() < tolerance[mode], mode
    wa = converted["int8_wa"]
    assert (wa.input_dtype, wa.output_dtype) == ("int8", "int8")
    assert wa.output_quant.scale == pytest.approx(1 / 256) and wa.output_quant.zero_point == -128  # softmax
    assert converted["fp32"].input_quant is None and converted["fp32"].input_dtype == "float32"
    assert converted["fp16"].size < converted["fp32"].size


def test_storage_table_shows_what_each_mode_stores(kws):
    _, converted, _ = kws
    table = tflite.storage_table(converted)
    assert list(table.index) == list(tflite.MODES)
    assert table.loc["fp32", "float32"] > 0 and table.loc["fp32", "int8"] == 0
    assert table.loc["fp16", "float16"] > 0 and table.loc["fp16", "float32"] == 0
    assert table.loc["int8_w", "int8"] > 0  # int8 kernels, float biases
    assert table.loc["int8_wa", "float32"] == 0 and table.loc["int8_wa", "int32"] > 0  # int32 biases
    # float16 halves the float32 weights exactly
    assert table.loc["fp16", "float16"] == table.loc["fp32", "float32"] // 2
    assert (table["file"] == [c.size for c in converted.values()]).all()


def test_int8_wa_keeps_top1_within_two_points_of_keras(kws):
    model, converted, (_, _, x_test, y_test) = kws
    keras_top1 = float((model.predict(x_test, verbose=0).argmax(-1) == y_test).mean())
    task = tasks.Task("kws", x_test=x_test, y_test=y_test, labels=("a", "b", "c", "d"))
    result = task.evaluate(converted["int8_wa"])
    assert keras_top1 > 0.9  # the tiny model did learn
    assert task.n_eval() == len(y_test) and task.evaluate(model)["top1"] == pytest.approx(keras_top1, abs=1e-9)
    assert abs(result["top1"] - keras_top1) <= 0.02
    first10 = tasks.Task("kws", x_test=x_test, y_test=y_test, eval_limit=10)
    probs = tflite.predict(converted["int8_wa"], x_test[:10])
    assert first10.n_eval() == 10
    assert first10.evaluate(converted["int8_wa"])["top1"] == float((probs.argmax(-1) == y_test[:10]).mean())


def test_int8_wa_needs_representative_data(kws):
    model = kws[0]
    with pytest.raises(ValueError, match="representative"):
        tflite.convert(model, "int8_wa")
    with pytest.raises(ValueError, match="unknown mode"):
        tflite.convert(model, "int4")
    with pytest.raises(ValueError, match="unknown route"):
        tflite.convert(model, "fp32", route="tflite")


def test_concrete_route_gives_the_standard_converters_model(kws):
    """The fast default route converts the same graph as TFLiteConverter.from_keras_model."""
    model, converted, (_, _, x_test, _) = kws
    standard = tflite.convert(model, "int8_wa", kws[2][0], calibration_samples=100, route="keras")
    assert standard.method == "keras"
    assert abs(standard.size - converted["int8_wa"].size) < 512  # only names/signature metadata differ
    np.testing.assert_array_equal(tflite.LiteRTRunner(standard).predict_raw(x_test),
                                  tflite.LiteRTRunner(converted["int8_wa"]).predict_raw(x_test))


# -------------------------------------------------------------------------------------------- TFLM
def test_tflm_matches_litert_within_one_lsb(kws):
    _, converted, (_, _, x_test, _) = kws
    result = tflite.compare_tflm_litert(converted["int8_wa"], x_test, limit=64)
    assert result["n"] == 64
    assert result["max_diff_lsb"] <= 1            # measured here: 0 (bit-exact)
    assert result["agreement"] == 1.0
    assert result["arena_bytes"] == result["arena_head_bytes"] + result["arena_tail_bytes"] > 0
    # it ran in the smallest arena found, which for a CNN is the runtime's own report (to 16 B)
    assert abs(result["min_arena_bytes"] - result["arena_bytes"]) <= 16
    with pytest.raises(tflite.TFLMError, match="arena is too small"):
        tflite.run_tflm(converted["int8_wa"], x_test[:1], arena_size=result["min_arena_bytes"] - 64)


def test_tflm_refuses_hybrid_models_with_a_clear_error(kws):
    _, converted, (_, _, x_test, _) = kws
    with pytest.raises(tflite.TFLMError, match="Hybrid models are not supported"):
        tflite.run_tflm(converted["int8_w"], x_test[:1])


# -------------------------------------------------------------------------------------------- LSTM
def test_lstm_converts_at_batch1_and_samples_stay_independent(lstm):
    model, w, converted = lstm
    fp32 = converted["fp32"]
    assert fp32.method == "concrete_batch1" and fp32.input_shape == (1, 6, 2)
    x = w.x_test[:40]
    ref = model.predict(x, verbose=0)
    out = tflite.predict(fp32, x)
    assert np.abs(out - ref).max() < 1e-4          # the LSTM state is reset between samples
    rev = tflite.predict(fp32, x[::-1])[::-1]
    np.testing.assert_array_equal(out, rev)        # order does not matter
    task = tasks.forecast_task(w, eval_limit=40)
    scores = task.evaluate(fp32)
    steps = metrics.forecast_metrics(w, out, "test", n=40)
    assert task.n_eval() == 40 and scores["T_mae"] == steps["T_mae"] > 0 and len(steps["T_mae_steps"]) == 6
    real = w.denormalize_targets(ref)
    truth = w.denormalize_targets(w.y_test[:40])
    assert scores["T_mae"] == pytest.approx(np.abs(real - truth)[..., 0].mean(), abs=1e-4)

    wa = converted["int8_wa"]
    assert wa.method == "concrete_batch1" and wa.input_dtype == "int8"
    result = tflite.compare_tflm_litert(wa, w.x_test, limit=40)
    assert result["max_diff_lsb"] <= 1 and result["agreement"] is None  # (N, 6, 2): no classes
    # the LSTM kernel takes temporary memory while preparing: the runtime's report is too small
    assert result["min_arena_bytes"] > result["arena_bytes"] + 256


def test_compare_modes_flags_test_data_outside_the_calibrated_range(lstm):
    model, w, _ = lstm
    cmp = conversion.compare_modes_forecast("fc_lstm", model, w, modes=("fp32", "int8_wa"), limit=40, runs=3,
                                         warmup=1)
    table = cmp.table.set_index("mode")
    assert list(table.index) == ["FP32", "INT8 W+A"]
    assert table.loc["FP32", "diff_T_mae"] == pytest.approx(0.0, abs=1e-5)
    assert np.isnan(table.loc["FP32", "input_clipped"])        # float input: nothing to clip
    assert table.loc["INT8 W+A", "input_clipped"] < 0.02       # test data like the training data
    assert cmp.tflm["n"] == 40 and table.loc["INT8 W+A", "tflm_max_diff_lsb"] <= 1
    assert set(cmp.breakdown["mode"]) == {"FP32", "INT8 W+A"}
    # a warmer test period (+3 sd of temperature) falls outside the int8 range calibrated on training data
    shift = np.array([3.0, 0.0], np.float32)
    warm = dataclasses.replace(w, x_test=w.x_test + shift, y_test=w.y_test + shift)
    hot = conversion.compare_modes_forecast("fc_lstm", model, warm, modes=("int8_wa",), limit=40, runs=3, warmup=1,
                                         tflm=False).table.iloc[0]
    assert hot["input_clipped"] > 0.3
    assert hot["diff_T_mae"] > table.loc["INT8 W+A", "diff_T_mae"] + 0.5  # degC lost to clipping


def test_compare_modes_kws_scores_each_file_next_to_keras(kws):
    model, _, (x_train, _, x_test, y_test) = kws
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    cmp = conversion.compare_modes_kws("tiny", model, x_test, y_test, labels=["a", "b", "c", "d"],
                                       representative=x_train, clip=clip, features=KWS_FEATURES,
                                       modes=("fp32", "int8_wa"), limit=64, runs=3, warmup=1, tflm=False)
    table = cmp.table.set_index("mode")
    keras_top1 = float((model.predict(x_test[:64], verbose=0).argmax(-1) == y_test[:64]).mean())
    assert list(table.index) == ["FP32", "INT8 W+A"] and (table["keras_top1"] == keras_top1).all()
    probs = tflite.predict(cmp.converted["int8_wa"], x_test[:64])
    assert table.loc["INT8 W+A", "top1"] == float((probs.argmax(-1) == y_test[:64]).mean())
    assert table.loc["FP32", "diff_top1"] == 0.0 and table.loc["INT8 W+A", "input_clipped"] < 0.05
    assert cmp.tflm is None and set(cmp.breakdown["stage"]) == {*bench.BREAKDOWN_STAGES, "total"}


# ---------------------------------------------------------------------------------------- C export
def test_c_array_round_trips_the_bytes(kws):
    data = kws[1]["int8_wa"].data
    source, header = tflite.to_c_array(data, "tiny_model", arena_bytes=12345)
    assert "#define TINY_MODEL_ARENA_BYTES 12345" in header
    assert "extern const unsigned char tiny_model[];" in header
    assert "alignas(16) const unsigned char tiny_model[] = {" in source
    assert f"const unsigned int tiny_model_len = {len(data)};" in source
    parsed = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", source.split("{", 1)[1].split("}")[0]))
    assert parsed == data
    with pytest.raises(ValueError, match="not a C identifier"):
        tflite.to_c_array(data, "1-model")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_array_compiles_and_links_with_the_right_length(kws, tmp_path):
    conv = kws[1]["int8_wa"]
    arena = tflite.tflm_min_arena(conv)
    c_path, h_path = tflite.write_c_array(conv, tmp_path, "kws_model", arena)
    assert {p.name for p in tmp_path.iterdir()} == {"kws_model.c", "kws_model.h"}  # no temp files left
    main = tmp_path / "main.c"
    main.write_text('#include <stdint.h>\n#include <stdio.h>\n#include "kws_model.h"\n'
                    'int main(void) {\n'
                    '  printf("%u %d %d %c%c%c%c\\n", kws_model_len, KWS_MODEL_ARENA_BYTES,\n'
                    '         (int)((uintptr_t)kws_model % 16), kws_model[4], kws_model[5], kws_model[6], kws_model[7]);\n'
                    '  return 0;\n}\n')
    run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=True)  # noqa: E731
    run("gcc", "-std=c11", "-Wall", "-Werror", "-c", c_path.name, "-o", "kws_model.o")
    run("gcc", "-std=c11", "-Wall", "-c", "main.c", "-o", "main.o")
    run("gcc", "main.o", "kws_model.o", "-o", "app")
    assert run("./app").stdout.split() == [str(conv.size), str(arena), "0", "TFL3"]
    if shutil.which("g++"):  # the same file builds as C++ (TFLM firmware is C++)
        run("g++", "-std=c++11", "-Wall", "-Werror", "-x", "c++", "-c", c_path.name, "-o", "kws_model_cc.o")


# -------------------------------------------------------------------------------- corrupted files
def _corrupt(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "random":
        return np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    if how == "identifier":
        return data[:4] + b"XXXX" + data[8:]
    return data[:5]  # "too short"


@pytest.mark.parametrize("how, message", [
    ("truncated", "truncated or corrupted"),
    ("random", "file identifier"),
    ("identifier", r"file identifier b'XXXX'.*expected b'TFL3'"),
    ("short", "only 5 bytes"),
])
def test_corrupted_tflite_gives_a_clear_error(kws, tmp_path, how, message):
    bad = _corrupt(kws[1]["int8_wa"].data, how)
    x = kws[2][2][:2]
    with pytest.raises(tflite.InvalidTFLiteError, match=message):
        tflite.predict(bad, x)
    with pytest.raises(tflite.InvalidTFLiteError, match=message):
        tflite.run_tflm(bad, x)
    path = tmp_path / "bad.tflite"
    path.write_bytes(bad)
    with pytest.raises(tflite.InvalidTFLiteError, match=str(path)):
        tasks.Task("kws", x_test=x, y_test=np.zeros(2, int)).evaluate(path)


def test_bad_tflite_bytes_error_clearly():
    with pytest.raises(tflite.InvalidTFLiteError, match="file identifier"):
        tflite.tflm_arena(b"not a flatbuffer" * 4)
    with pytest.raises(tflite.InvalidTFLiteError, match="only 0 bytes"):
        tflite.breakdown(b"")
    with pytest.raises(FileNotFoundError, match="no .tflite file at model.tflite"):
        tflite.tflm_arena("model.tflite")


# ------------------------------------------------------------------------------- latency breakdown
def test_latency_breakdown_has_every_stage(kws, lstm):
    conv = kws[1]["int8_wa"]
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    task = tasks.Task("kws", features=features.get(KWS_FEATURES), clip=clip)
    frame = task.latency_breakdown(conv, runs=5, warmup=1)
    assert list(frame["stage"]) == [*bench.BREAKDOWN_STAGES, "total"]
    assert (frame["ms"] > 0).all() and set(frame["mode"]) == {"INT8 W+A"} and set(frame["model"]) == {"tiny_cnn"}
    stage = frame.set_index("stage")["ms"]
    assert stage["total"] > stage["inference"]

    _, w, converted = lstm
    fc_task = tasks.forecast_task(w)
    np.testing.assert_allclose(fc_task.raw_sample(), w.x_test[0] * w.feature_std + w.feature_mean)
    frame = fc_task.latency_breakdown(converted["fp32"], runs=5, warmup=1)
    assert list(frame["stage"]) == [*bench.BREAKDOWN_STAGES, "total"] and (frame["ms"] > 0).all()
    with pytest.raises(ValueError, match="features"):
        tasks.Task("kws", clip=clip).latency_breakdown(conv)
