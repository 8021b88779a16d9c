"""labkit.prune: one-shot pruning hits the exact sparsity, tfmot fine-tuning reaches its target (depthwise
kernels included), channel pruning builds the expected smaller model and is exact when the removed channels
were already dead, parameters/MACs/latency fall with the channels, and zlib size falls with sparsity."""
from __future__ import annotations

import numpy as np
import pytest

import labkit  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

from labkit import estimate, experiments, graph, models, prune, tflite, train

KWS_SHAPE = (16, 8, 1)  # a small spectrogram: fast to build and fit


def _randomize_bn(model: tf.keras.Model, seed: int = 0) -> None:
    """Non-trivial BatchNorm parameters and statistics (a fresh BN layer is the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif layer.weights and len(layer.get_weights()) > 1:  # non-zero biases
            kernel, bias, *rest = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(bias.dtype), *rest])


def _kernels(model: tf.keras.Model) -> dict[str, np.ndarray]:
    return {layer.name: w.numpy() for layer, w, _ in prune.prunable_weights(model)}


# ------------------------------------------------------------------------------------------ one-shot
@pytest.mark.parametrize("sparsity", [0.3, 0.75, 0.9])
def test_oneshot_per_layer_zeroes_exactly_the_smallest_weights(sparsity):
    model = models.build("ds_cnn", KWS_SHAPE, 4, alpha=0.25)
    before = _kernels(model)
    biases = [w.numpy().copy() for w in model.weights if "bias" in w.name]
    pruned = prune.prune_oneshot(model, sparsity)
    for name, w in _kernels(pruned).items():
        k = int(round(sparsity * w.size))
        zeroed = w == 0
        assert zeroed.sum() == k, name                                   # exact count per kernel
        orig = np.abs(before[name])
        assert orig[~zeroed].min() >= orig[zeroed].max()                 # the smallest ones went
        np.testing.assert_array_equal(w[~zeroed], before[name][~zeroed])  # the others are untouched
    for b, w in zip(biases, [w for w in pruned.weights if "bias" in w.name]):
        np.testing.assert_array_equal(b, w.numpy())
    for name, w in _kernels(model).items():                              # the input model is unchanged
        np.testing.assert_array_equal(w, before[name])
    report = prune.sparsity_report(pruned)
    assert report.iloc[-1]["layer"] == "total"
    assert report.set_index("layer").loc["dw1", "tfmot_prunable"] == False  # noqa: E712 (numpy bool)
    assert report.set_index("layer").loc["pw1", "tfmot_prunable"] == True  # noqa: E712


def test_oneshot_global_hits_total_sparsity_even_with_ties():
    model = models.build("fc_mlp", (6, 3), (6, 2))
    fc1 = model.get_layer("fc1")
    kernel, bias = fc1.get_weights()
    kernel[:, :5] = 0.01  # many equal magnitudes around the threshold
    fc1.set_weights([kernel, bias])
    total = sum(w.size for w in _kernels(model).values())
    pruned = prune.prune_oneshot(model, 0.6, scope="global")
    assert sum(int((w == 0).sum()) for w in _kernels(pruned).values()) == round(0.6 * total)
    with pytest.raises(ValueError, match="sparsity"):
        prune.prune_oneshot(model, 1.0)
    with pytest.raises(ValueError, match="scope"):
        prune.prune_oneshot(model, 0.5, scope="channel")


# ------------------------------------------------------------------------------------ fine-tuned (tfmot)
@pytest.mark.parametrize("total, frequency", [(1, 100), (7, 3), (130, 100), (1050, 100), (37, None)])
def test_schedule_end_step_is_on_the_frequency_grid_and_reaches_the_target(total, frequency):
    sched, info = prune.pruning_schedule(0.75, total, frequency=frequency)
    assert info["end_step"] % info["frequency"] == 0 and 1 <= info["end_step"] <= total
    assert experiments.pruning.last_pruned_sparsity(sched, total) == (info["end_step"], pytest.approx(0.75))


def test_schedule_table_shows_the_unaligned_end_step_falling_short():
    from labkit.experiments import pruning

    table = pruning.schedule_table(0.75, 130, frequency=100)
    naive, aligned = table["reached"].tolist()
    # naive: last update at step 100 of 130 -> 0.75 * (1 - (30/130)^3)
    assert naive == pytest.approx(0.75 * (1 - (30 / 130) ** 3), abs=1e-4) and naive < 0.745
    assert aligned == pytest.approx(0.75)


def _fake_kws(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(size=(n, *KWS_SHAPE)).astype(np.float32) + y[:, None, None, None].astype(np.float32)
    return x, y


def test_finetune_reaches_target_sparsity_in_every_kernel_including_depthwise():
    model = models.build("ds_cnn", KWS_SHAPE, 4, alpha=0.25)
    x, y = _fake_kws(96)
    kw = dict(epochs=2, batch_size=16, loss="sparse_categorical_crossentropy", seed=0)
    res = prune.prune_finetune(model, 0.75, x, y, depthwise="prune", skip=(), **kw)  # 12 steps
    assert res.schedule["end_step"] % res.schedule["frequency"] == 0
    for name, w in _kernels(res.model).items():
        assert abs((w == 0).mean() - 0.75) <= 1.0 / w.size, name  # tfmot keeps round(n * 0.25) weights
    assert [type(layer).__name__ for layer in res.model.layers] == [type(layer).__name__ for layer in model.layers]
    # the default recipe = tfmot's own behaviour (depthwise kernels stay dense) + a dense output layer,
    # so the total misses the target; pruned_layers() names exactly the layers that were pruned
    default = prune.prune_finetune(model, 0.75, x, y, **kw)
    assert default.schedule["depthwise"] == "dense" and default.schedule["skip"] == ["output"]
    dense = prune.sparsity_report(default.model).set_index("layer")
    assert dense.loc["dw1", "sparsity"] == 0.0 and dense.loc["output", "sparsity"] == 0.0
    assert dense.loc["pw1", "sparsity"] == pytest.approx(0.75, abs=0.02)
    assert dense.loc["total", "sparsity"] < 0.74
    pruned = set(dense.index[(dense["sparsity"] > 0.7)]) - {"total"}
    assert pruned == set(prune.pruned_layers(model)) == {"conv1", "pw1", "pw2", "pw3", "pw4"}
    assert set(prune.pruned_layers(model, depthwise="prune", skip=())) == set(_kernels(model))


@pytest.mark.parametrize("total, frequency, begin", [(100, 5, 0.2), (130, 10, 0.5), (7, 3, 0.3), (40, None, 0.6)])
def test_schedule_begin_fraction_starts_later_and_still_reaches_the_target(total, frequency, begin):
    sched, info = prune.pruning_schedule(0.8, total, frequency=frequency, begin_fraction=begin, end_fraction=0.7)
    f = info["frequency"]
    assert info["begin_step"] % f == 0 and (info["end_step"] - info["begin_step"]) % f == 0
    assert 0 <= info["begin_step"] <= begin * total and info["end_step"] <= total
    assert experiments.pruning.last_pruned_sparsity(sched, total) == (info["end_step"], pytest.approx(0.8))
    should, sparsity = sched(np.arange(1, info["begin_step"] + 1) if info["begin_step"] else np.array([0]))
    assert float(np.max(sparsity)) == 0.0                        # nothing pruned before begin_step
    with pytest.raises(ValueError, match="begin_fraction"):
        prune.pruning_schedule(0.8, total, begin_fraction=0.7, end_fraction=0.7)


def test_bn_freeze_keeps_statistics_and_recalibrate_reestimates_them():
    model = models.build("ds_cnn", KWS_SHAPE, 4, alpha=0.25)
    _randomize_bn(model)
    x, y = _fake_kws(64)
    kw = dict(epochs=1, batch_size=16, loss="sparse_categorical_crossentropy", seed=0)
    stats = lambda m: [v.numpy().copy() for v in m.get_layer("dw1_bn").weights[2:]]  # noqa: E731
    frozen = prune.prune_finetune(model, 0.5, x, y, bn="freeze", **kw).model
    for a, b in zip(stats(frozen), stats(model)):
        np.testing.assert_array_equal(a, b)                      # moving mean/variance untouched
    assert all(layer.trainable for layer in frozen.layers)       # and the result is trainable again
    trained = prune.prune_finetune(model, 0.5, x, y, **kw).model
    assert not np.allclose(stats(trained)[0], stats(model)[0])   # "train": BN follows the pruned network
    recal = prune.prune_finetune(model, 0.5, x, y, bn="freeze", recalibrate=True, **kw).model
    ref = prune.recalibrate_bn(frozen, x)
    for a, b in zip(stats(recal), stats(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="bn must be"):
        prune.prune_finetune(model, 0.5, x, y, bn="fold", **kw)


def test_finetune_in_graph_mode_reaches_target():
    model = models.build("fc_mlp", (6, 3), (6, 2), residual=True)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(320, 6, 3)).astype(np.float32)
    y = x[:, -1:, :2] + 0.1 * rng.normal(size=(320, 6, 2)).astype(np.float32)
    res = prune.prune_finetune(model, 0.8, x, y, epochs=3, batch_size=16, loss="mae", skip=())  # 60 steps > eager
    assert res.schedule["total_steps"] == 60 > train.EAGER_MAX_STEPS
    assert prune.sparsity_report(res.model).iloc[-1]["sparsity"] == pytest.approx(0.8, abs=2e-3)
    assert np.isfinite(res.history["loss"]).all()


def _drifting_fit():
    """A forecaster, training targets 1.0 above persistence and validation targets 1.0 below it: the more
    the fine-tune learns the training offset, the worse the validation loss, so the best epoch is early."""
    model = models.build("fc_mlp", (6, 3), (6, 2), residual=True)
    rng = np.random.default_rng(3)
    x, xv = (rng.normal(size=(n, 6, 3)).astype(np.float32) for n in (320, 96))
    y = x[:, -1:, :2] + 1.0 + 0.1 * rng.normal(size=(320, 6, 2)).astype(np.float32)
    yv = xv[:, -1:, :2] - 1.0 + 0.1 * rng.normal(size=(96, 6, 2)).astype(np.float32)
    kw = dict(epochs=8, batch_size=32, loss="mae", learning_rate=0.01, validation_data=(xv, yv), seed=0)
    return model, x, y, xv, yv, kw


def test_keep_best_returns_the_lowest_validation_epoch_at_the_final_sparsity():
    model, x, y, xv, yv, kw = _drifting_fit()
    res = prune.prune_finetune(model, 0.8, x, y, skip=(), end_fraction=0.25, keep_best=True, **kw)
    val, first = res.history["val_loss"], res.schedule["end_step"] // 10   # 10 steps per epoch; 2 here
    assert 0 < first < 8 and res.schedule["kept_epoch"] == first + int(np.argmin(val[first:])) + 1
    kept = res.schedule["kept_epoch"]
    assert kept < 8 and val[kept - 1] < val[-1]          # the data make the last epoch not the best one
    assert res.model.evaluate(xv, yv, verbose=0) == pytest.approx(val[kept - 1], rel=1e-4)  # those weights came back
    assert prune.sparsity_report(res.model).iloc[-1]["sparsity"] == pytest.approx(0.8, abs=2e-3)
    last = prune.prune_finetune(model, 0.8, x, y, skip=(), end_fraction=0.25, **kw)  # default: the last epoch
    assert last.schedule["kept_epoch"] == 8
    assert last.model.evaluate(xv, yv, verbose=0) == pytest.approx(last.history["val_loss"][-1], rel=1e-4)
    tuned = prune.finetune(model, x, y, keep_best=True, **kw)                   # any epoch
    assert tuned.schedule["kept_epoch"] == int(np.argmin(tuned.history["val_loss"])) + 1
    kw.pop("validation_data")
    with pytest.raises(ValueError, match="keep_best needs validation_data"):
        prune.finetune(model, x, y, keep_best=True, **kw)


# ------------------------------------------------------------------------------------ channel pruning
def _kill_channels(model: tf.keras.Model, layer: str, channels: list[int]) -> None:
    """Make output ``channels`` of ``layer`` contribute exactly nothing downstream: zero filter and bias,
    and zero the BN shift / depthwise bias that follow (their outputs would otherwise be constants)."""
    g = graph.Graph(model)
    k, *rest = model.get_layer(layer).get_weights()
    k[..., channels] = 0
    rest = [np.where(np.isin(np.arange(b.size), channels), 0, b) for b in rest]
    model.get_layer(layer).set_weights([k, *rest])
    name = layer
    while True:
        consumers = g.consumers(name)
        kind = g.cls(consumers[0]) if len(consumers) == 1 else ""
        if kind not in prune._FOLLOWERS or kind == "Flatten":
            return
        name = consumers[0]
        target = model.get_layer(name)
        weights = target.get_weights()
        if g.cls(name) == "BatchNormalization":  # gamma, beta, mean, var: beta = mean = 0 -> output 0
            weights[1][channels] = 0
            weights[2][channels] = 0
        elif g.cls(name) == "DepthwiseConv2D":
            weights[1][channels] = 0
        target.set_weights(weights)


@pytest.mark.parametrize("name, shape, outputs, kwargs", [
    ("ds_cnn", KWS_SHAPE, 4, {}),
    ("cnn", KWS_SHAPE, 4, {}),
    ("mlp", KWS_SHAPE, 4, {}),
    ("fc_mlp", (6, 3), (6, 2), {"residual": True}),
    ("fc_cnn", (6, 3), (6, 2), {"residual": True}),
])
def test_channel_pruning_matches_original_when_removed_channels_were_dead(name, shape, outputs, kwargs):
    model = models.build(name, shape, outputs, alpha=0.25 if name in ("ds_cnn", "mlp") else 1.0, **kwargs)
    _randomize_bn(model)
    layers = prune.prunable_channel_layers(model)
    assert layers and "output" not in layers
    for i, layer in enumerate(layers):
        n = model.get_layer(layer).get_weights()[0].shape[-1]
        dead = sorted(np.random.default_rng(i).choice(n, n // 4, replace=False).tolist())
        _kill_channels(model, layer, dead)
    pruned = prune.prune_channels(model, 0.25)
    for layer in layers:  # each prunable layer lost exactly its dead quarter ...
        n = model.get_layer(layer).get_weights()[0].shape[-1]
        assert pruned.get_layer(layer).get_weights()[0].shape[-1] == n - n // 4
    # ... the output layer kept its size, and the network computes the same function
    assert pruned.output_shape == model.output_shape
    x = np.random.default_rng(5).normal(size=(16, *shape)).astype(np.float32)
    np.testing.assert_allclose(pruned(x, training=False).numpy(), model(x, training=False).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_ds_cnn_channel_pruning_gives_the_alpha_architecture_and_depthwise_follows_pointwise():
    model = models.build("ds_cnn", (49, 10, 1), 12)
    pruned = prune.prune_channels(model, 0.5, norm="l2")
    twin = models.build("ds_cnn", (49, 10, 1), 12, alpha=0.5)
    assert [w.shape for w in pruned.weights] == [w.shape for w in twin.weights]
    keep = prune.channels_to_keep(prune.channel_scores(model, "l2"), 0.5)
    # dw2 holds the depthwise filters of exactly the channels pw1 kept, in order
    np.testing.assert_array_equal(pruned.get_layer("dw2").get_weights()[0],
                                  model.get_layer("dw2").get_weights()[0][:, :, keep["pw1"], :])
    np.testing.assert_array_equal(pruned.get_layer("pw2").get_weights()[0],
                                  model.get_layer("pw2").get_weights()[0][:, :, keep["pw1"], :][..., keep["pw2"]])
    with pytest.raises(ValueError, match="norm"):
        prune.prune_channels(model, 0.5, norm="l3")
    with pytest.raises(ValueError, match="cannot be channel-pruned"):
        prune.keep_channels(model, {"output": [0, 1]})


def test_norms_rank_filters_differently():
    layer_kernel = np.zeros((1, 1, 4, 3), np.float32)
    layer_kernel[..., 0] = [1.0, 1.0, 1.0, 1.0]      # L1 4, L2 2, Linf 1
    layer_kernel[..., 1] = [3.0, 0.0, 0.0, 0.0]      # L1 3, L2 3, Linf 3
    layer_kernel[..., 2] = [1.5, 1.5, 0.0, 0.0]      # L1 3, L2 2.12, Linf 1.5
    inp = tf.keras.Input((2, 2, 4))
    x = tf.keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(inp)
    out = tf.keras.layers.Dense(2, name="output")(tf.keras.layers.Flatten()(x))
    model = tf.keras.Model(inp, out)
    model.get_layer("conv").set_weights([layer_kernel])
    best = {n: int(np.argmax(prune.channel_scores(model, n)["conv"])) for n in prune.NORMS}
    assert best == {"l1": 0, "l2": 1, "linf": 1}
    assert prune.channels_to_keep(prune.channel_scores(model, "l1"), 1 / 3)["conv"].tolist() == [0, 1]
    assert prune.channels_to_keep(prune.channel_scores(model, "linf"), 1 / 3)["conv"].tolist() == [1, 2]


def test_lstm_is_refused_with_a_clear_message():
    with pytest.raises(NotImplementedError, match="alpha"):
        prune.prune_channels(models.build("fc_lstm", (6, 3), (6, 2)), 0.5)


def test_channel_pruning_reduces_params_macs_and_measured_latency():
    model = models.build("ds_cnn", (49, 10, 1), 12)
    pruned = prune.prune_channels(model, 0.75)  # keep a quarter of the channels
    before, after = estimate.totals(model), estimate.totals(pruned)
    assert after["params"] < 0.2 * before["params"]
    assert after["macs"] < 0.15 * before["macs"]  # ~quadratic in the width for pointwise convolutions
    x = np.random.default_rng(0).normal(size=(64, 49, 10, 1)).astype(np.float32)
    files = [tflite.convert(m, "int8_wa", x).data for m in (model, pruned)]
    medians = [[], []]
    for _ in range(3):  # interleaved rounds: a burst of load from elsewhere hits both models
        for i, data in enumerate(files):
            medians[i].append(tflite.latency(data, x[:1], runs=150, warmup=15)["median_ms"])
    assert min(medians[1]) < 0.8 * min(medians[0]), medians


def test_zlib_size_falls_as_sparsity_rises():
    model = models.build("cnn", KWS_SHAPE, 4)
    x = np.random.default_rng(0).normal(size=(64, *KWS_SHAPE)).astype(np.float32)
    sizes = {"fp32": [], "int8_wa": []}
    for s in (0.0, 0.5, 0.9):
        pruned = prune.prune_oneshot(model, s)
        for mode in sizes:
            conv = tflite.convert(pruned, mode, x if mode == "int8_wa" else None)
            sizes[mode].append((conv.size, conv.zlib_size))
    for mode, pairs in sizes.items():
        raw, packed = zip(*pairs)
        assert max(raw) - min(raw) < 0.01 * raw[0], (mode, raw)  # the file keeps every weight
        assert packed[0] > packed[1] > packed[2], (mode, packed)  # the zeros compress
    assert sizes["fp32"][2][1] < 0.4 * sizes["fp32"][0][1]


def test_mcu_estimate_applies_to_the_kits_ds_cnn():
    # The kit's DS-CNN must be the MLPerf Tiny one for the Cortex-M4 figure (measured on it) to apply.
    # MACs counted by hand: conv 10x4 stride 2 -> 25x5x64 outputs x 40 taps = 320,000; 4 blocks of
    # depthwise 3x3 (125 x 64 x 9 = 72,000) + pointwise 64->64 (125 x 64 x 64 = 512,000); dense 64 x 12 = 768.
    by_hand = 25 * 5 * 64 * 40 + 4 * (125 * 64 * 9 + 125 * 64 * 64) + 64 * 12
    assert by_hand == 2_656_768
    assert estimate.totals(models.build("ds_cnn", (49, 10, 1), 12))["macs"] == by_hand
    # ms = MACs x cycles/MAC / clock, on a made-up core (1 M MACs x 2 cycles / 100 MHz = 20 ms)
    core = estimate.McuModel(name="test core", clock_hz=100e6, cycles_per_mac=2.0, source="-")
    assert core.latency_ms(1_000_000) == pytest.approx(20.0)
    assert core.latency_ms(3_000_000) == pytest.approx(3 * core.latency_ms(1_000_000))
    # MLPerf Tiny v0.5 measured 5.497 inferences/s on a 120 MHz Cortex-M4: 182 ms, 8.2 cycles per MAC
    assert estimate.CORTEX_M4.latency_ms(by_hand) == pytest.approx(181.9, abs=0.05)


def test_recalibrate_bn_renormalises_every_batchnorm_on_the_given_inputs():
    model = models.build("ds_cnn", KWS_SHAPE, 4, alpha=0.25)
    _randomize_bn(model)  # moving statistics that do not match the data
    x, _ = _fake_kws(300)
    fixed = prune.recalibrate_bn(prune.prune_oneshot(model, 0.5), x, max_samples=256)
    for layer in [l for l in fixed.layers if isinstance(l, tf.keras.layers.BatchNormalization)]:
        gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
        idx = np.linspace(0, len(x) - 1, 256).round().astype(int)
        out = tf.keras.Model(fixed.inputs, layer.output)(x[idx], training=False).numpy()
        out = out.reshape(-1, out.shape[-1])
        var = layer.moving_variance.numpy()
        np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-4)  # normalised mean -> beta
        # normalised spread -> |gamma| (shrunk by epsilon for low-variance channels)
        np.testing.assert_allclose(out.std(axis=0), np.abs(gamma) * np.sqrt(var / (var + layer.epsilon)),
                                   rtol=1e-3, atol=1e-5)
    # the input model is not modified
    assert not np.allclose(model.get_layer("conv1_bn").moving_mean.numpy(),
                           fixed.get_layer("conv1_bn").moving_mean.numpy())


def test_sequential_models_are_pruned_and_recalibrated_too():
    model = tf.keras.Sequential([
        tf.keras.Input(KWS_SHAPE), tf.keras.layers.Conv2D(8, 3, name="c1"), tf.keras.layers.BatchNormalization(),
        tf.keras.layers.ReLU(), tf.keras.layers.Flatten(), tf.keras.layers.Dense(6, activation="relu", name="d1"),
        tf.keras.layers.Dense(3, name="output")])
    _randomize_bn(model)
    assert prune.prunable_channel_layers(model) == ["c1", "d1"]
    pruned = prune.prune_channels(model, 0.5)
    assert pruned.get_layer("c1").get_weights()[0].shape == (3, 3, 1, 4)
    assert pruned.get_layer("d1").get_weights()[0].shape == (14 * 6 * 4, 3)
    x, _ = _fake_kws(64)
    fixed = prune.recalibrate_bn(pruned, x)
    bn = [layer for layer in fixed.layers if isinstance(layer, tf.keras.layers.BatchNormalization)][0]
    acts = tf.keras.Model(fixed.inputs, bn.input)(x, training=False).numpy().reshape(-1, 4)
    np.testing.assert_allclose(bn.moving_mean.numpy(), acts.mean(axis=0), rtol=1e-4, atol=1e-5)
