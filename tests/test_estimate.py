"""Tests of labkit.estimate: hand-checked MACs and bytes of small layers, BatchNorm folding, peak RAM
on branching graphs, and the estimates against the kit's converter (labkit.tflite) and the TFLite Micro
arena: the flash estimate equals the converted file's tensor data byte for byte."""
from __future__ import annotations

import labkit  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from labkit import estimate, models, tflite
from labkit.experiments import estimation

L = tf.keras.layers


def _one(layer, input_shape):
    """Profile row of ``layer`` applied to an input of ``input_shape`` (no batch axis)."""
    inp = tf.keras.Input(input_shape)
    model = tf.keras.Model(inp, layer(inp))
    df = estimate.profile(model)
    return df[df["name"] == layer.name].iloc[0]


def test_conv2d_hand_count():
    # 2 in, 5 out, 3x3, 4x4 input, 'same': 16 positions * 5 filters * 9 taps * 2 channels
    row = _one(L.Conv2D(5, 3, padding="same", name="c"), (4, 4, 2))
    assert row["macs"] == 2 * 5 * 9 * 16 == 1_440
    assert row["params"] == 5 * 9 * 2 + 5
    assert row["weight_bytes_fp32"] == 4 * 95 and row["weight_bytes_int8"] == 90 + 4 * 5
    assert row["output_shape"] == "4x4x5"
    assert (row["act_bytes_fp32"], row["act_bytes_int8"]) == (4 * 80, 80)


def test_conv_stride_padding_groups_and_conv1d():
    # 'valid', stride 2 on 7x7: 3x3 outputs
    assert _one(L.Conv2D(4, 3, strides=2, name="c"), (7, 7, 3))["macs"] == 9 * 4 * 9 * 3
    # groups=2: each output channel sees 4/2 input channels; 5x5 'valid' -> 3x3
    assert _one(L.Conv2D(6, 3, groups=2, name="c"), (5, 5, 4))["macs"] == 9 * 6 * 9 * 2
    # Conv1D 3 -> 8 channels, kernel 3, 6 steps 'valid' -> 4 steps
    assert _one(L.Conv1D(8, 3, name="c"), (6, 3))["macs"] == 4 * 8 * 3 * 3


def test_depthwise_separable_dense_pooling():
    # depthwise 3x3 'same' on 4x4x3, depth multiplier 2: 16 positions * 6 channels * 9 taps
    row = _one(L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="d"), (4, 4, 3))
    assert row["macs"] == 16 * 6 * 9 and row["weight_bytes_int8"] == 54 + 4 * 6
    # separable = depthwise (16*3*9) + pointwise (16*3*5)
    assert _one(L.SeparableConv2D(5, 3, padding="same", name="s"), (4, 4, 3))["macs"] == 432 + 240
    # Dense on a 3-D input acts on the last axis at every step: 6 * 3 * 4
    assert _one(L.Dense(4, name="f"), (6, 3))["macs"] == 72
    assert _one(L.Dense(10, name="f"), (20,))["macs"] == 200
    assert _one(L.MaxPooling2D(2, name="p"), (4, 4, 3))["macs"] == 0
    assert _one(L.GlobalAveragePooling2D(name="p"), (4, 4, 3))["macs"] == 0


def test_recurrent_layers():
    # LSTM: 6 steps * 4 gates * (3 inputs * 16 + 16 * 16)
    row = _one(L.LSTM(16, name="r"), (6, 3))
    assert row["macs"] == 6 * 4 * (3 * 16 + 16 * 16) == 7_296
    # int8 kernels + int32 biases, and the int32 begin/end/strides of the slice that keeps the last step
    assert row["weight_bytes_int8"] == 3 * 64 + 16 * 64 + 4 * 64 + 3 * 3 * 4
    # GRU: 3 gates; SimpleRNN: 1
    assert _one(L.GRU(8, name="r"), (6, 3))["macs"] == 6 * 3 * (3 * 8 + 8 * 8)
    assert _one(L.SimpleRNN(8, name="r"), (5, 2))["macs"] == 5 * (2 * 8 + 8 * 8)


def test_batchnorm_folds_into_the_convolution():
    inp = tf.keras.Input((4, 4, 2))
    x = L.BatchNormalization(name="bn_in")(inp)                 # nothing to fold into: a MUL + ADD
    x = L.Conv2D(5, 3, padding="same", use_bias=False, name="c")(x)
    x = L.BatchNormalization(name="bn")(x)                      # folds, creating the bias c lacked
    x = L.ReLU(name="relu")(x)                                  # fused into c
    x = L.Dropout(0.5, name="drop")(x)                          # gone at inference
    df = estimate.profile(tf.keras.Model(inp, x)).set_index("name")
    assert not df.loc["bn_in", "folded"] and df.loc["bn_in", "weight_bytes_fp32"] == 2 * 2 * 4
    assert df.loc["bn", "folded"] and df.loc["relu", "folded"] and df.loc["drop", "folded"]
    assert df.loc["bn", "params"] == 4 * 5 and df.loc["bn", "macs"] == 0
    assert df.loc["bn", "weight_bytes_int8"] == 4 * 5 and df.loc["bn", "weight_bytes_fp32"] == 4 * 5
    assert df.loc["c", "weight_bytes_int8"] == 90
    # RAM: input 32 B, bn_in 32 B, conv 80 B (int8, no alignment): the folded layers add no tensor
    assert estimate.peak_ram(tf.keras.Model(inp, x), "int8", align=1) == 32 + 80


def test_totals_row():
    model = models.build("fc_mlp", (6, 3), (6, 2))
    df = estimate.profile(model)
    total = df.iloc[-1]
    assert total["name"] == "total"
    assert total["params"] == model.count_params() == df["params"].iloc[:-1].sum()
    assert total["macs"] == 18 * 32 + 32 * 16 + 16 * 12
    assert total["act_bytes_int8"] == estimate.peak_ram(model, "int8")
    assert set(estimate.totals(model)) == {"params", "trainable", "macs", "flash_fp32", "flash_int8",
                                           "ram_fp32", "ram_int8"}


def _branching():
    """x(16) -> a = Dense 32, b = Dense 8 -> concat(a, b) (40) -> Dense 4."""
    inp = tf.keras.Input((16,), name="x")
    a = L.Dense(32, name="a")(inp)
    b = L.Dense(8, name="b")(inp)
    c = L.Concatenate(name="c")([a, b])
    return tf.keras.Model(inp, L.Dense(4, name="o")(c))


def test_peak_ram_on_a_branching_graph():
    model = _branching()
    # live elements per op: a: x+a = 48; b: x+a+b = 56 (x freed after b); c: a+b+c = 80; o: c+o = 44
    timeline = estimate.memory_timeline(model, "float32", align=1)
    assert list(timeline["op"]) == ["a", "b", "c", "o"]
    assert list(timeline["live_bytes"]) == [4 * 48, 4 * 56, 4 * 80, 4 * 44]
    assert estimate.peak_ram(model, "float32", align=1) == 320
    assert estimate.peak_ram(model, "int8", align=1) == 80
    # TFLM aligns each buffer to 16 bytes: at c, a 32 + b 8->16 + c 40->48
    assert estimate.peak_ram(model, "int8") == 96
    # a residual block keeps the block input alive across both convolutions
    inp = tf.keras.Input((8, 8, 4))
    x = L.Conv2D(4, 3, padding="same", name="c1")(inp)
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    model = tf.keras.Model(inp, L.Add(name="add")([x, y]))
    assert estimate.peak_ram(model, "int8") == 3 * 256  # x, y and the sum at the add


def test_ds_cnn_peak_ram():
    model = models.build("ds_cnn", (49, 10, 1), 12)
    # two 25x5x64 maps live at every depthwise/pointwise layer
    assert estimate.peak_ram(model, "int8") == 2 * 25 * 5 * 64
    assert estimate.peak_ram(model, "float32") == 4 * 2 * 25 * 5 * 64


def test_fill_random_weights_is_seeded():
    a = estimate.fill_random_weights(models.build("cnn", (49, 10, 1), 4), seed=3).get_weights()
    b = estimate.fill_random_weights(models.build("cnn", (49, 10, 1), 4), seed=3).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    model = estimate.fill_random_weights(models.build("cnn", (49, 10, 1), 4), seed=3)
    assert (model.get_layer("conv1_bn").moving_variance.numpy() >= 1.0).all()


def test_board_share():
    share = estimate.board_share(512 * 1024, 64 * 1024, "nano33ble")
    assert share == {"board": "Arduino Nano 33 BLE Sense", "flash_share": 0.5, "ram_share": 0.25, "fits": True}
    assert not estimate.board_share(100, 200 * 1024, "nucleo_l476rg")["fits"]  # 128 KB SRAM
    with pytest.raises(ValueError, match="unknown board"):
        estimate.board_share(1, 1, "esp32")


def _int8(model, seed: int = 0) -> bytes:
    """The full-integer .tflite of ``model`` from the kit's converter, calibrated on random-normal inputs."""
    rep = np.random.default_rng(seed).standard_normal((8, *model.input_shape[1:])).astype(np.float32)
    return tflite.convert(model, "int8_wa", rep).data


@pytest.fixture(scope="module")
def ds_cnn_check():
    model = estimate.fill_random_weights(models.build("ds_cnn", (49, 10, 1), 12), seed=0)
    return model, estimation.check_against_tflite(model)


def test_estimates_match_tflite_and_tflm(ds_cnn_check):
    model, check = ds_cnn_check
    t = check.table.set_index(["mode", "quantity"])
    tot = estimate.totals(model)
    # the converter stores the flatten's target shape [-1, 64] (int32) beside the weights: 8 bytes
    assert estimate.profile(model).set_index("name").loc["flatten", "weight_bytes_int8"] == 8
    assert tot["flash_int8"] == 24_376 and tot["flash_fp32"] == 90_424
    for mode in ("fp32", "int8"):
        # flash: the weight estimate equals the converted file's tensor data, byte for byte ...
        assert t.loc[(mode, "flash: weights vs tensor data"), "measured"] == tot[f"flash_{mode}"]
        # ... and the file adds a bounded overhead (names, structure; quantization parameters for int8)
        file_bytes = t.loc[(mode, "flash: weights vs .tflite file"), "measured"]
        assert 0 < file_bytes - tot[f"flash_{mode}"] < (24_000 if mode == "int8" else 8_000)
        # RAM: peak activation estimate == TFLM's planned tensor area (arena head), exactly
        assert t.loc[(mode, "RAM: peak vs TFLM arena head"), "measured"] == tot[f"ram_{mode}"]
        # the whole arena adds the runtime's persistent structures (tail): under 10 kB here
        arena = check.arena[mode]
        assert arena["total"] == arena["head"] + arena["tail"] and 0 < arena["tail"] < 10_000
    bd = check.breakdown["int8"]
    assert sum(v for k, v in bd.items() if k != "file") == bd["file"] == len(check.tflite["int8"])
    # int8 stores a float32 scale + int64 zero point per channel: 9 layers x 64 channels x 2 tensors
    assert bd["quant_params"] >= 9 * 64 * 2 * 12


@pytest.mark.parametrize("name, shape, outputs", [
    ("mlp", (49, 10, 1), 12),      # Flatten: RESHAPE to [-1, 490]
    ("cnn", (49, 10, 1), 12),      # global average pooling: MEAN over axes [1, 2]
    ("fc_cnn", (6, 5), (6, 2)),    # Conv1D: EXPAND_DIMS axis; Reshape((6, 2)) packed at run time (open batch)
    ("fc_lstm", (6, 5), (6, 2)),   # batch-1 route: the LSTM's last-step slice, RESHAPE to [1, 6, 2]
])
def test_flash_estimate_equals_the_converted_tensor_data(name, shape, outputs):
    model = estimate.fill_random_weights(models.build(name, shape, outputs, seed=0), seed=0)
    conv = tflite.convert(model, "fp32")
    assert conv.method == ("concrete_batch1" if name == "fc_lstm" else "concrete")
    assert tflite.breakdown(conv)["tensor_data"] == estimate.totals(model)["flash_fp32"]


def test_branching_graph_peak_matches_tflm():
    model = estimate.fill_random_weights(_branching(), seed=1)
    int8 = _int8(model)
    assert tflite.tflm_arena(int8)["head"] == estimate.peak_ram(model, "int8") == 96
    assert tflite.tflm_arena_bytes(int8) > 96


def test_lstm_peak_matches_tflm():
    # the fused int8 LSTM writes the 6x16 sequence and keeps 4 int16 gate vectors as scratch
    model = estimate.fill_random_weights(models.build("fc_lstm", (6, 3), (6, 2)), seed=2)
    int8 = _int8(model)
    assert tflite.tflm_arena(int8)["head"] == estimate.peak_ram(model, "int8") == 32 + 96 + 4 * 16 * 2


def test_tfmot_wrappers_cost_what_the_plain_model_costs():
    import tensorflow_model_optimization as tfmot

    plain = estimate.totals(models.build("cnn", (49, 10, 1), 12))
    qat = tfmot.quantization.keras.quantize_model(models.build("cnn", (49, 10, 1), 12))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(models.build("cnn", (49, 10, 1), 12))
    # quantizer ranges, step counters and pruning masks are bookkeeping, not model weights
    assert estimate.totals(qat) == plain
    assert estimate.totals(pruned) == plain
