"""labkit.quantize: fake quantization on hand-computed examples (rounding, clipping, scale and zero
point at 4 and 8 bits), BatchNorm folding, simulated 8-bit PTQ against the real TFLite int8 model, and
QAT at 4 bits (custom tfmot QuantizeConfigs) and 8 bits (tfmot scheme -> int8 .tflite)."""
from __future__ import annotations

import numpy as np
import pytest

from labkit import quantize as Q
from labkit.experiments import quantization as XQ


# ------------------------------------------------------------------------------------ the arithmetic
def test_ranges_and_rounding_mode():
    assert Q.qrange(8) == (-128, 127)
    assert Q.qrange(8, narrow_range=True) == (-127, 127)
    assert Q.qrange(4) == (-8, 7)
    assert Q.qrange(2, narrow_range=True) == (-1, 1)  # ternary weights
    # ties go away from zero (TFLite's std::round), not to even (np.round)
    np.testing.assert_array_equal(Q.round_half_away(np.array([-2.5, -0.5, 0.5, 1.5, 2.5])), [-3, -1, 1, 2, 3])
    with pytest.raises(ValueError, match="num_bits"):
        Q.qrange(1)


def test_fake_quant_4_bits_by_hand():
    # activations calibrated to [-1.5, 6.0] at 4 bits: scale = 7.5 / 15 = 0.5,
    # zero point = round(-8 - (-1.5) / 0.5) = -5 (every number here is exact in binary)
    scale, zp = Q.asymmetric_params(-1.5, 6.0, 4)
    assert scale == 0.5 and zp == -5
    x = np.array([-1.5, -0.25, 0.25, 0.75, 1.0, 6.0, 7.0, -3.0])
    # x / scale      = -3, -0.5, 0.5, 1.5, 2, 12, 14, -6
    # round (away)   = -3,   -1,   1,   2, 2, 12, 14, -6   ; + zp = -8 -6 -4 -3 -3 7 9 -11
    # clip [-8, 7]   = -8, -6, -4, -3, -3, 7, 7, -8
    np.testing.assert_array_equal(Q.quantize_int(x, 4, scale, zp), [-8, -6, -4, -3, -3, 7, 7, -8])
    # (q - zp) * scale: the two out-of-range values are clipped to the range ends
    np.testing.assert_array_equal(Q.fake_quant(x, 4, scale, zp), [-1.5, -0.5, 0.5, 1.0, 1.0, 6.0, 6.0, -1.5])


def test_fake_quant_8_bits_by_hand():
    scale, zp = 1 / 64, 10
    x = np.array([0.0, 1 / 128, -1 / 128, 0.3, 2.0, -2.2])
    # x/scale = 0, 0.5, -0.5, 19.2, 128, -140.8 -> round 0, 1, -1, 19, 128, -141 -> +10 -> clip [-128, 127]
    np.testing.assert_array_equal(Q.quantize_int(x, 8, scale, zp), [10, 11, 9, 29, 127, -128])
    np.testing.assert_allclose(Q.fake_quant(x, 8, scale, zp), [0.0, 1 / 64, -1 / 64, 19 / 64, 117 / 64, -138 / 64])
    # TFLite's asymmetric parameters for a [-1, 2] range: scale 3/255, zero point round(-128 + 85) = -43
    s8, z8 = Q.asymmetric_params(-1.0, 2.0, 8)
    assert s8 == pytest.approx(3 / 255) and z8 == -43
    # a range not containing 0 is widened to contain it (0 stays exact): [0.5, 2] -> [0, 2]
    s, z = Q.asymmetric_params(0.5, 2.0, 8)
    assert s == pytest.approx(2 / 255) and z == -128 and Q.fake_quant(np.array([0.0]), 8, s, z)[0] == 0.0


def test_symmetric_weights_per_channel_vs_per_tensor_by_hand():
    w = np.array([[0.5, -2.0], [-1.0, 1.0]])  # (in=2, out=2): channel maxima 1 and 2
    scale, zp = Q.symmetric_params(w, 4, per_channel=True)  # narrow range: qmax = 7
    np.testing.assert_allclose(scale, [1 / 7, 2 / 7])
    assert np.all(zp == 0)
    # per channel: 0.5*7 = 3.5 -> 4 -> 4/7 ; -1 -> -1 ; -2 -> -2 ; 1*3.5 -> 4 -> 8/7
    np.testing.assert_allclose(Q.quantize_weights(w, 4, per_channel=True), [[4 / 7, -2.0], [-1.0, 8 / 7]])
    # per tensor (scale 2/7): 0.5 -> 1.75 -> 2 -> 4/7 ; -1 -> -3.5 -> -4 -> -8/7: channel 0 loses precision
    np.testing.assert_allclose(Q.quantize_weights(w, 4, per_channel=False), [[4 / 7, -2.0], [-8 / 7, 8 / 7]])


def test_keras_fake_quant_layer_equals_numpy():
    x = np.random.default_rng(0).normal(0, 3, size=(64, 7)).astype(np.float32)
    for bits, scale, zp in ((8, 0.037, -12), (4, 0.61, 3), (2, 1.3, -1)):
        layer = Q.FakeQuant(bits, scale, zp)
        np.testing.assert_array_equal(layer(x).numpy(), Q.fake_quant(x, bits, np.float32(scale), zp))
    assert Q.FakeQuant.from_config(Q.FakeQuant(4, 0.5, -5).get_config()).zero_point == -5


# -------------------------------------------------------------------------------- graph rewriting
def _bn_model():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    inp = tf.keras.Input((8, 6, 2))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="c")(inp)
    x = tf.keras.layers.BatchNormalization(name="c_bn")(x)
    x = tf.keras.layers.ReLU(name="c_relu")(x)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = tf.keras.layers.BatchNormalization(name="dw_bn")(x)
    x = tf.keras.layers.ReLU(name="dw_relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = tf.keras.layers.Dense(5, name="fc")(x)
    x = tf.keras.layers.BatchNormalization(name="fc_bn")(x)
    out = tf.keras.layers.Dense(3, activation="softmax", name="out")(x)
    model = tf.keras.Model(inp, out)
    for layer in model.layers:  # non-trivial statistics, so folding is really tested
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                               rng.uniform(0.2, 3, c)])
    return model


def test_fold_batchnorm_keeps_outputs_and_plans_tflite_quant_points():
    model = _bn_model()
    x = np.random.default_rng(2).normal(size=(32, 8, 6, 2)).astype(np.float32)
    folded = Q.fold_batchnorm(model)
    names = [layer.name for layer in folded.layers]
    assert not any("bn" in n for n in names), names
    assert "out_softmax" in names  # softmax split out of the Dense, as TFLite runs it
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), atol=1e-5)
    points = {p["layer"]: p["kind"] for p in Q.quant_points(model)}
    # int8 tensors: input, after each fused Conv+ReLU (not between), pooling, Dense outputs, softmax (fixed)
    assert points == {"input_1" if "input_1" in points else names[0]: "calibrate", "c_relu": "calibrate",
                      "dw_relu": "calibrate", "gap": "calibrate", "fc": "calibrate", "out": "calibrate",
                      "out_softmax": "fixed"}
    # weights-only PTQ at 8 bits barely moves the outputs; 2 bits moves them a lot
    d8 = np.abs(Q.ptq(model, 8)(x).numpy() - model(x).numpy()).mean()
    d2 = np.abs(Q.ptq(model, 2)(x).numpy() - model(x).numpy()).mean()
    assert d8 < 0.01 < d2


def test_percentile_calibration_clips_rare_values_and_the_sweep_uses_it():
    from labkit import config

    config.seed_everything(0)
    model = _bn_model()
    x = np.random.default_rng(3).normal(size=(64, 8, 6, 2)).astype(np.float32)
    x[0, 0, 0, 0] = 40.0                                       # one outlier stretches the min/max input range
    plain, clipped = Q.calibrate(model, x), Q.calibrate(model, x, percentile=99.9)
    name = next(iter(plain.ranges))                            # the input
    assert plain.ranges[name][1] == pytest.approx(40.0) and plain.percentile is None
    values = np.sort(x.ravel())
    assert clipped.ranges[name] == pytest.approx(tuple(np.percentile(values, [0.1, 99.9])))
    assert clipped.percentile == 99.9 and clipped.ranges[name][1] < 5.0
    for n, (lo, hi) in clipped.ranges.items():                 # every clipped range sits inside min/max
        assert plain.ranges[n][0] <= lo <= hi <= plain.ranges[n][1]
    with pytest.raises(ValueError, match="percentile must be in"):
        Q.calibrate(model, x, percentile=40)
    ref = model(x).numpy()
    evaluate = lambda m: {"error": float(np.abs(np.asarray(m(x[1:])) - ref[1:]).mean())}  # noqa: E731
    rows = XQ.ptq_sweep(model, evaluate, bits=(4,), representative=x, progress=False,
                        methods=["PTQ W+A", "PTQ W+A (clipped)"])
    assert rows["method"].tolist() == ["FP32", "PTQ W+A", "PTQ W+A (clipped)"] and rows["error"].iloc[0] == 0
    # on the inputs without the outlier, 4-bit steps sized by the outlier lose more than the clipped ones
    assert 0 < rows["error"].iloc[2] < 0.7 * rows["error"].iloc[1]


# ------------------------------------------------------------------------------- trained small model
def _templates(n: int, seed: int, k: int = 4, shape=(20, 10, 1)):
    rng = np.random.default_rng(seed)
    templ = np.random.default_rng(42).normal(size=(k, *shape)).astype(np.float32)
    y = rng.integers(0, k, n)
    return (templ[y] * 1.5 + rng.normal(0, 2.0, size=(n, *shape))).astype(np.float32), y


@pytest.fixture(scope="module")
def trained():
    """A small CNN (Conv+BN+ReLU, max-pooling, global pooling, softmax) trained for a few seconds on
    noisy class templates: accurate, but far from perfect, so quantization errors show."""
    import tensorflow as tf

    from labkit import config, models

    config.seed_everything(0)
    x_train, y_train = _templates(800, 0)
    x_test, y_test = _templates(400, 1)
    model = models.build("cnn", x_train.shape[1:], 4, alpha=0.25, seed=0)
    model.compile(tf.keras.optimizers.Adam(3e-3), tf.keras.losses.SparseCategoricalCrossentropy(), ["accuracy"])
    model.fit(x_train, y_train, epochs=6, batch_size=32, verbose=0)
    return model, x_train, y_train, x_test, y_test


@pytest.mark.slow
def test_simulated_int8_ptq_matches_real_tflite_int8(trained):
    from labkit import tflite

    model, x_train, _, x_test, y_test = trained
    rep = x_train[:300]
    int8 = tflite.convert(model, "int8_wa", rep)
    sim = Q.ptq(model, 8, activations=True, representative=rep)
    evaluate = XQ.kws_evaluator(x_test, y_test)
    fp_top1, sim_top1, tfl_top1 = evaluate(model)["top1"], evaluate(sim)["top1"], evaluate(int8)["top1"]
    assert fp_top1 > 0.6, "the test model did not train"
    # the stated tolerance: top-1 within 2 points, the same decision on >= 98 % of the inputs ...
    assert abs(sim_top1 - tfl_top1) <= 0.02, (sim_top1, tfl_top1)
    sim_vs_tfl, fp_vs_tfl = XQ.agreement(sim, int8, x_test), XQ.agreement(model, int8, x_test)
    assert sim_vs_tfl["argmax_agreement"] >= 0.98, sim_vs_tfl
    # ... and the simulation explains most of the int8 error: it is much closer to TFLite than float is
    assert sim_vs_tfl["mean_abs_diff"] < 0.5 * fp_vs_tfl["mean_abs_diff"], (sim_vs_tfl, fp_vs_tfl)
    # fewer bits hurt: 2-bit weights+activations lose far more than 8-bit
    low = evaluate(Q.ptq(model, 2, activations=True, representative=rep))["top1"]
    assert low < sim_top1 - 0.2, (low, sim_top1)


@pytest.mark.slow
def test_qat_4_bits_custom_configs_train_and_match_ptq(trained):
    model, x_train, y_train, x_test, y_test = trained
    evaluate = XQ.kws_evaluator(x_test, y_test)
    ptq4 = Q.ptq(model, 4, activations=True, representative=x_train[:300])
    # no learning: the QAT graph quantizes the same tensors as the PTQ simulation (independent code paths)
    frozen = Q.qat(model, 4, x_train=x_train[:256], y_train=y_train[:256], epochs=1, learning_rate=0.0)
    assert frozen.scheme == "custom" and not frozen.convertible
    # every activation range (input quantizer included, whatever Keras named it) starts calibrated
    ranges = [v for layer in frozen.model.layers for v in layer.non_trainable_weights
              if v.shape.rank == 0 and "kernel" not in v.name and v.name.endswith(("_min:0", "_max:0"))]
    assert frozen.ranges_initialised == len(ranges) > 4
    assert XQ.agreement(frozen.model, ptq4, x_test)["argmax_agreement"] >= 0.9
    # fine-tuning with 4-bit fake quantization in the loop recovers accuracy lost by 4-bit PTQ
    tuned = Q.qat(model, 4, x_train=x_train, y_train=y_train, epochs=2, batch_size=32)
    assert len(tuned.history["loss"]) == 2 and "accuracy" in tuned.history
    assert evaluate(tuned.model)["top1"] >= evaluate(ptq4)["top1"] - 0.03
    assert evaluate(tuned.model)["top1"] > 0.5


@pytest.mark.slow
def test_qat_8_bits_forecaster_converts_to_int8_and_lstm_is_refused():
    import tensorflow as tf

    from labkit import config, models, tflite

    config.seed_everything(0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(512, 6, 3)).astype(np.float32)
    y = (x[:, -1:, :2] + 0.1 * rng.normal(size=(512, 6, 2))).astype(np.float32)
    model = models.build("fc_mlp", (6, 3), (6, 2), residual=True)  # a custom LastObserved layer at the end
    model.compile(tf.keras.optimizers.Adam(1e-3), loss="mae")
    before = model(x[:64]).numpy()
    res = Q.qat(model, 8, x_train=x, y_train=y, epochs=1)
    np.testing.assert_array_equal(model(x[:64]).numpy(), before)  # QAT trains a copy
    assert res.scheme == "tfmot_8bit" and res.convertible
    int8 = tflite.convert(res.model, "int8_wa", x[:200])
    assert int8.input_dtype == "int8"
    # the real int8 file computes what the QAT model simulated (within a few output steps)
    lsb = int8.output_quant.scale
    assert XQ.agreement(res.model, int8, x[:128])["mean_abs_diff"] < 3 * lsb
    lstm = models.build("fc_lstm", (6, 3), (6, 2))
    lstm.compile(loss="mae")
    with pytest.raises(Q.UnsupportedLayerError, match="recurrent"):
        Q.qat(lstm, 8, x_train=x, y_train=y, epochs=1)


# ------------------------------------------------------------------------- below 8 bits, for real: W4A8
def _kernel_sizes(model) -> list[int]:
    """Weights of every Conv/DepthwiseConv/Dense kernel of a Keras model (what int4 packing halves)."""
    return [int(np.prod(layer.get_weights()[0].shape)) for layer in model.layers
            if type(layer).__name__ in Q.KERNEL_LAYERS]


@pytest.mark.slow
def test_w4a8_qat_converts_to_packed_int4_and_runs_in_litert_and_tflm(trained):
    from labkit import tflite

    model, x_train, y_train, x_test, y_test = trained
    res = Q.qat(model, 4, activation_bits=8, x_train=x_train, y_train=y_train, epochs=1, batch_size=32)
    assert res.w4a8 and not res.convertible and res.activation_bits == 8
    conv = tflite.convert(res.model, "w4a8", x_train[:200])
    assert conv.label == "INT4 W + INT8 A" and conv.input_dtype == "int8"
    # every kernel is stored as int4, two values per byte: ceil(n / 2) bytes per tensor, no int8 weights left
    sizes = _kernel_sizes(model)
    assert tflite.int4_tensors(conv.data) == len(sizes)
    storage = tflite.storage_table({"w4a8": conv}).loc["w4a8"]
    assert storage["int4"] == sum((n + 1) // 2 for n in sizes)
    assert storage.get("int8", 0) == 0
    # LiteRT runs it and computes what the QAT model simulated; TFLite Micro matches LiteRT's builtin kernels
    evaluate = XQ.kws_evaluator(x_test, y_test)
    assert abs(evaluate(conv)["top1"] - evaluate(res.model)["top1"]) <= 0.02
    check = tflite.compare_tflm_litert(conv, x_test[:64])
    assert check["max_diff_lsb"] <= 1 and check["agreement"] == 1.0
    # a float model has no 4-bit weights to keep: the mode refuses it with what to do instead
    with pytest.raises(ValueError, match="activation_bits=8"):
        tflite.convert(model, "w4a8", x_train[:200])


@pytest.mark.slow
def test_w4a8_depthwise_and_dense_kernels_pack_as_int4():
    import tensorflow as tf

    from labkit import config, models, tflite

    config.seed_everything(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 49, 10, 1)).astype(np.float32)
    y = rng.integers(0, 4, 128)
    model = models.build("ds_cnn", (49, 10, 1), 4, alpha=0.25, seed=0)
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    res = Q.qat(model, 4, activation_bits=8, x_train=x, y_train=y, epochs=1, batch_size=64)
    conv = tflite.convert(res.model, "w4a8", x[:64])
    folded = Q.fold_batchnorm(model)
    assert tflite.int4_tensors(conv.data) == len(_kernel_sizes(folded))  # conv, depthwise, pointwise, dense
    assert tflite.compare_tflm_litert(conv, x[:16])["max_diff_lsb"] <= 1


def test_calibration_inputs_rule_and_subset():
    import pandas as pd

    from labkit import data, tasks
    from labkit.data import evenly_spaced

    x = np.arange(1000, dtype=np.float32).reshape(1000, 1)
    task = tasks.Task("kws", x_train=x, x_test=-x)
    np.testing.assert_array_equal(task.calibration_inputs(), x)  # KWS: the training features
    sub = task.calibration_inputs(200)  # the converter's subset: 200 evenly spaced
    np.testing.assert_array_equal(sub, x[evenly_spaced(1000, 200)])
    assert len(sub) == 200 and sub.min() >= 0  # never a test input
    # forecasting: the training and validation windows, in time order, and nothing of the test windows
    idx = pd.date_range("2020-01-01", periods=400, freq="10min")
    df = pd.DataFrame({"T (degC)": np.linspace(0, 40, 400), "rh (%)": np.linspace(90, 10, 400),
                       "p (mbar)": 950.0 + np.sin(np.arange(400))}, index=idx)
    w = data.make_windows(df)
    cal = tasks.forecast_task(w).calibration_inputs()
    np.testing.assert_array_equal(cal, np.concatenate([w.x_train, w.x_val]))
    assert cal[..., 0].max() < w.x_test[..., 0].min()  # a warming series: the test weeks lie beyond calibration


def test_bit_sweep_figure_draws_float_and_persistence_references():
    import pandas as pd

    from labkit import plots

    rows = pd.DataFrame({"model": "fc_mlp", "method": ["FP32", "PTQ W+A", "PTQ W+A"], "bits": [32, 4, 8],
                         "T_mae": [0.40, 0.70, 0.41], "RH_mae": [2.8, 4.2, 2.9]})
    fig = plots.plot_bit_sweep({"fc_mlp": rows}, ["T_mae", "RH_mae"], reference={"T_mae": 0.59, "RH_mae": 3.42})
    for ax, (fp, ref) in zip(fig.axes, [(0.40, 0.59), (2.8, 3.42)]):
        lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
        assert list(lines["FP32"]) == [fp, fp] and list(lines["persistence"]) == [ref, ref]
        assert list(ax.get_xticks()) == [4, 8]  # the float row is a reference line, not a bit width
    no_ref = plots.plot_bit_sweep(rows, "T_mae")
    assert "persistence" not in {line.get_label() for line in no_ref.axes[0].get_lines()}
