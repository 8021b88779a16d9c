"""Tests of labkit.models: reference architectures (MLPerf Tiny DS-CNN, micro_speech tiny_conv), every
builder on every feature preset at two widths, seeding, the residual forecasting head and bad input."""
from __future__ import annotations

import labkit  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from labkit import estimate, features, models

PRESETS = ("mfcc_a", "mfcc_b", "logmel", "stft")


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_ds_cnn_is_the_mlperf_tiny_reference():
    model = models.build("ds_cnn", (49, 10, 1), 12)
    assert _trainable(model) == 23_756
    assert estimate.totals(model)["macs"] == 2_656_768
    conv1 = model.get_layer("conv1")
    assert conv1.kernel_size == (10, 4) and conv1.strides == (2, 2) and conv1.filters == 64
    assert conv1.output_shape == (None, 25, 5, 64)
    types = [type(model.get_layer(f"{kind}{i}")).__name__ for i in range(1, 5) for kind in ("dw", "pw")]
    assert types == ["DepthwiseConv2D", "Conv2D"] * 4
    assert all(model.get_layer(f"pw{i}").kernel_size == (1, 1) for i in range(1, 5))
    bns = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert len(bns) == 9 and all(bn.momentum == 0.9 for bn in bns)
    assert model.get_layer("avg_pool").output_shape == (None, 1, 1, 64)
    assert model.output_shape == (None, 12)


def test_tinyconv_matches_micro_speech():
    model = models.build("tinyconv", (49, 40, 1), 4)
    conv = model.get_layer("conv1")
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding) == (8, (10, 8), (2, 2), "same")
    assert conv.output_shape == (None, 25, 20, 8)
    # conv 10*8*8 + 8, dense 4000*4 + 4
    assert model.count_params() == 648 + 16_004


def test_mlp_and_forecaster_sizes():
    assert models.build("mlp", (49, 10, 1), 12).count_params() == 490 * 256 + 256 + 2 * (256 * 256 + 256) + 256 * 12 + 12
    # fc_mlp on 6 steps x 3 features: 18*32+32 + 32*16+16 + 16*12+12
    assert models.build("fc_mlp", (6, 3), (6, 2)).count_params() == 608 + 528 + 204
    # LSTM(16) on 3 features: 4*(3*16 + 16*16 + 16), head 16*12+12
    assert models.build("fc_lstm", (6, 3), (6, 2)).count_params() == 1280 + 204


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("name", models.KWS_MODELS)
def test_kws_builders_on_every_preset(name, alpha):
    x_by_preset = {}
    for preset in PRESETS:
        shape = features.output_shape(preset)
        model = models.build(name, shape, 8, alpha=alpha, seed=1)
        x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
        y = model(x, training=False).numpy()
        assert y.shape == (2, 8)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
        x_by_preset[preset] = model.count_params()
        # every layer is named by the builder: a second build has the same names (Keras' automatic
        # names such as "conv2d_7" would change with the global layer counter)
        again = models.build(name, shape, 8, alpha=alpha, seed=1)
        assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    # each preset gives a model (sizes may coincide for convolutional models, not for the MLP)
    if name == "mlp":
        assert len(set(x_by_preset.values())) == len(PRESETS)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("name", models.FORECAST_MODELS)
@pytest.mark.parametrize("n_features", [2, 5])
def test_forecast_builders(name, alpha, n_features):
    model = models.build(name, (6, n_features), (6, 2), alpha=alpha)
    x = np.random.default_rng(0).standard_normal((3, 6, n_features)).astype(np.float32)
    assert model(x).shape == (3, 6, 2)


def test_alpha_scales_every_hidden_layer():
    half = models.build("ds_cnn", (49, 10, 1), 12, alpha=0.5)
    assert half.get_layer("conv1").filters == 32 and half.get_layer("pw4").filters == 32
    assert half.output_shape == (None, 12)  # the classifier keeps its size
    tiny = models.build("cnn", (49, 10, 1), 12, alpha=0.01)
    assert [tiny.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == [1, 1, 1]
    assert [models.build("mlp", (49, 10, 1), 12, alpha=0.25).get_layer(f"fc{i}").units for i in (1, 2, 3)] == [64] * 3
    assert models.build("fc_lstm", (6, 3), (6, 2), alpha=0.5).get_layer("lstm").units == 8
    assert models.scaled(64, 0.3) == 19 and models.scaled(3, 0.1) == 1
    with pytest.raises(ValueError, match="alpha"):
        models.scaled(8, 0)


@pytest.mark.parametrize("name", ["ds_cnn", "fc_lstm"])
def test_same_seed_same_weights(name):
    args = ((49, 10, 1), 12) if name == "ds_cnn" else ((6, 3), (6, 2))
    a = models.build(name, *args, seed=7).get_weights()
    b = models.build(name, *args, seed=7).get_weights()
    c = models.build(name, *args, seed=8).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    # layers of the same shape get different initial weights within one model
    if name == "ds_cnn":
        m = models.build(name, *args, seed=7)
        assert not np.array_equal(m.get_layer("pw1").kernel.numpy(), m.get_layer("pw2").kernel.numpy())


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_residual_head_adds_last_observed_targets(tmp_path):
    model = models.build("fc_mlp", (6, 4), (6, 2), residual=True, target_indices=(3, 1))
    out = model.get_layer("output")
    out.set_weights([np.zeros_like(w) for w in out.get_weights()])  # the network predicts "no change"
    x = np.random.default_rng(0).standard_normal((5, 6, 4)).astype(np.float32)
    y = model(x).numpy()
    expected = np.repeat(x[:, -1:, [3, 1]], 6, axis=1)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    # saved as .h5 (what labkit.train caches) and loaded back
    path = tmp_path / "m.h5"
    model.save(path)
    loaded = tf.keras.models.load_model(path, compile=False, custom_objects=models.custom_objects())
    np.testing.assert_allclose(loaded(x).numpy(), y, rtol=1e-6)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        models.build("resnet", (49, 10, 1), 12)
    with pytest.raises(ValueError, match="number of classes"):
        models.build("ds_cnn", (49, 10, 1), (6, 2))
    with pytest.raises(ValueError, match=r"\(time, features, 1\)"):
        models.build("cnn", (49, 10), 12)
    with pytest.raises(ValueError, match="steps, targets"):
        models.build("fc_mlp", (6, 3), 12)
    with pytest.raises(ValueError, match="residual=True only applies"):
        models.build("mlp", (49, 10, 1), 12, residual=True)
    with pytest.raises(ValueError, match="target_indices"):
        models.build("fc_cnn", (6, 3), (6, 2), residual=True, target_indices=(0, 5))
