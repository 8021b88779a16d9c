"""labkit.metrics and labkit.train: forecasting metric and persistence on hand-computed examples, training reduces the
loss, and the model cache (hit on the same recipe, miss on a changed hyper-parameter)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labkit import augment, metrics, train

from fakes import sine_windows


# -------------------------------------------------------------------------------------- the metric
def test_forecast_mae_matches_hand_computed_values():
    # 2 samples, 3 steps, targets (T, RH); errors chosen by hand
    y_true = np.zeros((2, 3, 2))
    y_pred = np.zeros((2, 3, 2))
    y_pred[:, :, 0] = [[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]]   # |err| T: step means 1.0, 1.0, 2.0
    y_pred[:, :, 1] = [[10.0, 0.0, 0.0], [0.0, 0.0, -4.0]]   # |err| RH: step means 5.0, 0.0, 2.0
    out = metrics.forecast_mae(y_true, y_pred, ["T (degC)", "rh (%)"])
    assert out["T_mae"] == pytest.approx(8 / 6)
    assert out["RH_mae"] == pytest.approx(14 / 6)
    assert out["T_mae_steps"] == pytest.approx([1.0, 1.0, 2.0])
    assert out["RH_mae_steps"] == pytest.approx([5.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        metrics.forecast_mae(y_true, y_pred[:, :2], ["T (degC)", "rh (%)"])


def test_persistence_repeats_last_observed_value_in_real_units():
    w = sine_windows(60)
    pred = metrics.persistence(w, "test")
    assert pred.shape == w.y_test.shape
    last_real = w.x_test[:, -1, :] * w.feature_std + w.feature_mean
    np.testing.assert_allclose(pred[:, 0], last_real, rtol=1e-6)
    np.testing.assert_allclose(pred[:, 5], last_real, rtol=1e-6)
    # its MAE, computed independently by hand from the raw arrays
    true_real = w.y_test * w.target_std + w.target_mean
    expected_t = np.mean(np.abs(true_real[:, :, 0] - last_real[:, None, 0]))
    m = metrics.forecast_metrics(w, w.y_test, "test")  # a perfect model ...
    assert m["T_mae"] == pytest.approx(0.0, abs=1e-5)
    assert m["persist_T_mae"] == pytest.approx(expected_t, rel=1e-6)  # ... beside persistence
    assert m["T_ratio"] == pytest.approx(0.0, abs=1e-5)


def test_kws_metrics_confusion_and_per_class():
    probs = np.eye(3)[[0, 1, 1, 2, 0]]
    out = metrics.kws_metrics(np.array([0, 1, 2, 2, 0]), probs, ["a", "b", "c"])
    assert out["top1"] == pytest.approx(0.8)
    assert out["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert out["per_class_accuracy"] == {"a": 1.0, "b": 1.0, "c": 0.5}


# ------------------------------------------------------------------------ training and the cache
@pytest.fixture
def tmp_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.slow
def test_forecaster_learns_and_cache_hits_then_misses(tmp_data, capsys):
    w = sine_windows(400)
    first = train.train_forecaster("fc_mlp", w, epochs=8, batch_size=32, seed=0, learning_rate=3e-3)
    assert not first.cache_hit
    loss = first.history["loss"]
    assert loss[-1] < 0.8 * loss[0], loss                      # training reduces the loss
    assert first.metrics["T_mae"] < first.metrics["persist_T_mae"]  # and beats persistence on a sine
    assert (tmp_data / "models" / first.key / "model.h5").exists()

    again = train.train_forecaster("fc_mlp", w, epochs=8, batch_size=32, seed=0, learning_rate=3e-3)
    assert again.cache_hit and again.key == first.key
    assert "cache hit" in capsys.readouterr().out
    assert again.metrics["T_mae"] == pytest.approx(first.metrics["T_mae"])
    np.testing.assert_allclose(again.model.predict(w.x_test, verbose=0),
                               first.model.predict(w.x_test, verbose=0), rtol=1e-5, atol=1e-6)

    changed = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0, learning_rate=3e-3)
    assert not changed.cache_hit and changed.key != first.key
    # the data changed in place (same array objects): a new key, never the model trained on the old data
    w.x_train *= 2
    doubled = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0, learning_rate=3e-3)
    assert not doubled.cache_hit and doubled.key not in (changed.key, first.key)
    w.x_train /= 2                                            # back to the very same bytes: the old key again
    assert train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0,
                                  learning_rate=3e-3).key == changed.key
    forced = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0, learning_rate=3e-3,
                                    cache=False)
    assert not forced.cache_hit and forced.key == changed.key
    # same seed, retrained from scratch: the very same weights (seeded init, shuffling, deterministic ops)
    for a, b in zip(forced.model.get_weights(), changed.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # cache=False stores nothing: an experiment cannot replace (or add) what the notebooks load
    entries = sorted(p.name for p in (tmp_data / "models").iterdir())
    other = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=1, learning_rate=3e-3, cache=False)
    assert sorted(p.name for p in (tmp_data / "models").iterdir()) == entries and other.key not in entries


_TRAIN_ONE = """
import sys
sys.path.insert(0, {tests!r})
from fakes import sine_windows
from labkit import train
print("READY", flush=True)
r = train.train_forecaster("fc_mlp", sine_windows(400), epochs=2, batch_size=32, seed=0, learning_rate=3e-3)
print("HIT" if r.cache_hit else "TRAINED", r.key, flush=True)
"""


@pytest.mark.slow
def test_two_processes_asking_for_the_same_model_train_it_once(tmp_data):
    """Notebooks side by side may ask for the same model: one trains it, the other waits for it and loads it."""
    key = train.train_forecaster("fc_mlp", sine_windows(400), epochs=2, batch_size=32, seed=0, learning_rate=3e-3,
                                 cache=False).key  # the key, without storing anything
    script = _TRAIN_ONE.format(tests=str(Path(__file__).parent))
    with train.cache_lock(key):  # held here until both processes wait for it
        procs = [subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ), stdout=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        assert [p.stdout.readline().strip() for p in procs] == ["READY", "READY"]
        time.sleep(3.0)  # both reach the lock (TensorFlow is imported by then)
        assert not (tmp_data / "models" / key).exists()
    outs = sorted(p.communicate(timeout=300)[0].split()[-2] for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["HIT", "TRAINED"]  # one trained it; the other waited, then loaded that very entry
    with train.cache_lock(key):  # cached: no lock is taken, so holding none cannot block
        assert train.load_cached(key) is not None


def test_a_corrupt_cache_entry_is_retrained_and_replaced(tmp_data, capsys):
    w = sine_windows(200)
    first = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0)
    model_file = tmp_data / "models" / first.key / "model.h5"
    model_file.write_bytes(b"not an HDF5 file")                # e.g. a disk that filled up mid-write
    capsys.readouterr()
    again = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0)
    assert not again.cache_hit and again.key == first.key
    assert "ignoring unreadable cache entry" in capsys.readouterr().out
    assert model_file.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"    # a real HDF5 file again
    third = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0)
    assert third.cache_hit
    for a, b in zip(third.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_cache_key_depends_on_every_part():
    base = {"data": "abc", "hyper": {"epochs": 3}, "seed": 0}
    k = train.cache_key("kws", "cnn", base)
    assert k == train.cache_key("kws", "cnn", dict(base))
    assert k != train.cache_key("kws", "cnn", {**base, "seed": 1})
    assert k != train.cache_key("kws", "cnn", {**base, "hyper": {"epochs": 4}})
    assert k != train.cache_key("kws", "mlp", base)


@dataclasses.dataclass
class FakeKWS:
    """The ``KWSData`` interface on pure tones (300 / 1000 / 3000 Hz) with noise."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list
    name: str = "tones"

    def split(self, name):
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


def _tones(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    xs, ys = [], []
    for k, f in enumerate((300.0, 1000.0, 3000.0)):
        for _ in range(per_class):
            xs.append(0.3 * np.sin(2 * np.pi * f * (1 + 0.05 * rng.normal()) * t + rng.uniform(0, 6.3))
                      + 0.05 * rng.normal(size=t.size))
            ys.append(k)
    return np.asarray(xs, np.float32), np.asarray(ys)


@pytest.mark.slow
def test_kws_training_reduces_loss_and_reports_metrics(tmp_data):
    data = FakeKWS(*_tones(20, 0), *_tones(6, 1), *_tones(6, 2), labels=["lo", "mid", "hi"])
    res = train.train_kws("tinyconv", data, "logmel", epochs=3, batch_size=16, seed=0, augment=False)
    loss = res.history["loss"]
    assert len(loss) == 3 and loss[-1] < 0.5 * loss[0], loss
    assert res.metrics["top1"] > 0.9                      # three tones are easy to tell apart
    assert np.sum(res.metrics["confusion_matrix"]) == len(data.y_test)
    assert set(res.metrics["per_class_accuracy"]) == {"lo", "mid", "hi"}
    row = res.row()
    assert row["model"] == "tinyconv" and row["features"] == "logmel" and row["params"] == res.params > 0
    hit = train.train_kws("tinyconv", data, "logmel", epochs=3, batch_size=16, seed=0, augment=False)
    assert hit.cache_hit and hit.key == res.key and hit.metrics["top1"] == res.metrics["top1"]
    x_test = train.kws_features(data, "logmel")[2]
    np.testing.assert_allclose(train.predict(hit.model, x_test), train.predict(res.model, x_test), atol=1e-6)
    data.x_train[:, :800] = 0.0                                # the first 50 ms silenced in place: retrained
    silenced = train.train_kws("tinyconv", data, "logmel", epochs=3, batch_size=16, seed=0, augment=False)
    assert not silenced.cache_hit and silenced.key != res.key
    aug = train.train_kws("tinyconv", data, "logmel", epochs=1, batch_size=16, seed=0, augment=True)
    assert aug.key != res.key and len(aug.history["loss"]) == 1 and aug.info["augment"]["time_shift_ms"] == 100
    assert res.info["augment"] is None and res.info["patience"] == 30
    default = train.train_kws("tinyconv", data, "logmel", epochs=1, batch_size=16, seed=0)  # the default recipe
    assert default.key == aug.key and default.info["augment"] == dataclasses.asdict(augment.KWS_AUGMENT)
    with pytest.raises(ValueError, match="already synthetic"):
        train.train_kws("tinyconv", dataclasses.replace(data, name="synthetic"), "logmel", epochs=1,
                        extra_synthetic=5)


def test_extra_synthetic_maps_labels_by_name_into_the_train_split_only(tmp_data, monkeypatch):
    data = FakeKWS(*_tones(4, 0), *_tones(2, 1), *_tones(2, 2), labels=["lo", "mid", "hi"])
    x_syn, _ = _tones(1, 3)                                   # three clips: 300, 1000, 3000 Hz
    x_syn = np.concatenate([x_syn, x_syn[:1]])
    names = np.array(["hi", "lo", "_silence_", "hi"])         # "_silence_" is not a label here: dropped
    calls = []

    def fake_synthetic_clips(labels, per_word, *, seed=0, progress=True):
        calls.append((list(labels), per_word))
        return x_syn, names

    monkeypatch.setattr(train, "synthetic_clips", fake_synthetic_clips)  # the generator train_kws calls
    x, y, added = train.mix_synthetic(data, 2, seed=0)
    assert calls == [(["lo", "mid", "hi"], 2)]
    assert added == {"lo": 1, "mid": 0, "hi": 2}
    assert len(x) == len(data.x_train) + 3 and y[len(data.y_train):].tolist() == [2, 0, 2]
    np.testing.assert_array_equal(x[len(data.y_train)], x_syn[0])

    res = train.train_kws("tinyconv", data, "logmel", epochs=1, batch_size=8, extra_synthetic=2, augment=False)
    assert res.metrics["n_train"] == len(data.y_train) + 3
    assert res.metrics["n"] == len(data.y_test)               # val/test untouched
    assert res.key != train.train_kws("tinyconv", data, "logmel", epochs=1, batch_size=8, augment=False).key


def test_augmentation_shifts_in_time_and_adds_noise():
    import tensorflow as tf

    x = np.zeros((64, 16000), np.float32)
    x[:, 8000] = 1.0                                            # one click in the middle of every clip
    y = np.arange(64)
    shifted, y_out = augment.waveform_fn(augment.Augment(time_shift_ms=100, noise_prob=0.0), None)(
        tf.constant(x), tf.constant(y))
    shifted = shifted.numpy()
    assert shifted.shape == x.shape and (y_out.numpy() == y).all()
    pos = shifted.argmax(axis=1)
    assert (np.abs(pos - 8000) <= 1600).all() and len(set(pos)) > 10  # up to +-100 ms, varied
    np.testing.assert_array_equal(shifted.sum(axis=1), 1.0)      # a pure shift: nothing added or lost
    noisy, _ = augment.waveform_fn(augment.Augment(time_shift_ms=0, noise_prob=1.0, noise_volume=0.1), None)(
        tf.constant(x), tf.constant(y))
    rms = np.sqrt(np.mean((noisy.numpy() - x) ** 2, axis=1))
    assert 0 < rms.min() and rms.max() <= 0.1 + 1e-3          # white noise of RMS <= noise_volume


def test_speed_perturbation_resamples_each_clip_around_its_centre():
    import tensorflow as tf

    tf.random.set_seed(0)
    aug = augment.Augment(time_shift_ms=0, noise_prob=0.0, speed=0.1)
    assert aug.on_waveform and augment.KWS_AUGMENT.speed == 0.1
    x = np.zeros((64, 16000), np.float32)
    x[:, 4000] = 1.0                                            # a click a quarter into every clip
    out, _ = augment.waveform_fn(aug, None)(tf.constant(x), tf.constant(np.arange(64)))
    out = out.numpy()
    pos = out.argmax(axis=1)
    centre = (16000 - 1) / 2
    # output sample i reads the input at centre + (i - centre) * rate, rate in [0.9, 1.1]
    lo, hi = centre - (centre - 4000) / 0.9, centre - (centre - 4000) / 1.1
    assert (pos >= np.floor(lo)).all() and (pos <= np.ceil(hi)).all() and np.ptp(pos) > 400
    assert (np.count_nonzero(out, axis=1) <= 3).all() and (out.max(axis=1) > 0.5).all()  # moved, not smeared
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)[None].repeat(8, 0)
    played, _ = augment.waveform_fn(aug, None)(tf.constant(tone), tf.constant(np.arange(8)))
    peak_hz = np.abs(np.fft.rfft(played.numpy()[:, 4000:12000], axis=1)).argmax(axis=1) * 16000 / 8000
    assert (peak_hz >= 895).all() and (peak_hz <= 1105).all() and len(set(peak_hz)) > 3  # pitch moves too
    with pytest.raises(ValueError, match="speed"):
        augment.Augment(speed=1.5)


# ------------------------------------------------------------------------ issue 13: recipe options
def test_spec_masks_blank_bands_of_bounded_width_with_the_clip_mean():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    f = rng.normal(size=(64, 49, 10, 1)).astype(np.float32) + 3.0
    aug = augment.Augment(time_shift_ms=0, noise_prob=0, time_masks=1, time_mask_frames=5, freq_masks=1,
                          freq_mask_bins=2)
    assert aug.on_features and not aug.on_waveform
    out, _ = augment.mask_fn(aug)(tf.constant(f), tf.constant(np.arange(64)))
    out = out.numpy()[..., 0]
    mean = f[..., 0].mean(axis=(1, 2))
    changed = out != f[..., 0]
    for i in range(64):
        rows = np.flatnonzero(changed[i].all(axis=1))        # masked frames: every bin replaced
        cols = np.flatnonzero(changed[i].all(axis=0))        # masked bins: every frame replaced
        assert len(rows) <= 5 and len(cols) <= 2
        if len(rows):
            assert rows.max() - rows.min() == len(rows) - 1  # one contiguous band
        np.testing.assert_allclose(out[i][changed[i]], mean[i], rtol=1e-6)
        outside = np.ones((49, 10), bool)
        outside[rows, :] = False
        outside[:, cols] = False
        np.testing.assert_array_equal(out[i][outside], f[i, ..., 0][outside])  # the rest untouched
    assert changed.any(axis=(1, 2)).mean() > 0.5             # most clips got a mask (width 0 is possible)


def test_label_smoothing_loss_matches_the_formula():
    import tensorflow as tf

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    y = np.array([0, 1])
    got = float(augment.smoothed_sparse_ce(3, 0.1)(tf.constant(y), tf.constant(probs)))
    target = np.full((2, 3), 0.1 / 3)
    target[[0, 1], y] += 0.9
    expected = float(np.mean(-(target * np.log(probs)).sum(axis=1)))
    assert got == pytest.approx(expected, rel=1e-5)
    assert augment.resolve(None) == augment.KWS_AUGMENT and augment.resolve(False) is None
    with pytest.raises(TypeError, match="augment must be"):
        augment.resolve("shift")


def test_weighted_mae_weighs_each_target():
    import tensorflow as tf

    y_true = np.zeros((2, 6, 2), np.float32)
    y_pred = np.stack([np.full((2, 6), 1.0), np.full((2, 6), 2.0)], axis=-1).astype(np.float32)
    # weights (1, 3) normalised to mean 1 -> (0.5, 1.5): (0.5 * 1 + 1.5 * 2) / 2 = 1.75 per step
    loss = train._weighted_mae([1.0, 3.0])(tf.constant(y_true), tf.constant(y_pred)).numpy()
    np.testing.assert_allclose(loss, 1.75, rtol=1e-6)


def test_target_weights_enter_the_cache_key_and_are_checked(tmp_data):
    w = sine_windows(200)
    plain = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0)
    weighted = train.train_forecaster("fc_mlp", w, epochs=1, batch_size=32, seed=0, target_weights=[1.0, 2.0])
    assert weighted.key != plain.key and weighted.info["target_weights"] == [1.0, 2.0]
    with pytest.raises(ValueError, match="one per target"):
        train.train_forecaster("fc_mlp", w, epochs=1, target_weights=[1.0])


def test_empty_split_fails_early_with_counts_rule_and_remedy(tmp_path, tmp_data):
    import hashlib

    from labkit.data import load_kws, splits
    from labkit.data.audio import wav_bytes

    # speakers whose SHA-1 rule puts them all in the test split
    speakers = [s for s in (hashlib.sha1(str(i).encode()).hexdigest()[:8] for i in range(400))
                if splits.which_set(s) == "test"][:3]
    rng = np.random.default_rng(0)
    for word in ("no", "yes"):
        (tmp_path / word).mkdir()
        for s in speakers:
            (tmp_path / word / f"{s}_nohash_0.wav").write_bytes(wav_bytes(rng.standard_normal(16000) * 0.1))
    data = load_kws(str(tmp_path), progress=False)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (0, 0, 6)
    with pytest.raises(ValueError) as err:
        train.train_kws("tinyconv", data, "logmel", epochs=1)
    msg = str(err.value)
    assert "train and val splits are empty" in msg and "0/0/6" in msg
    assert "sha1" in msg.lower() and "80/10/10" in msg and "speakers per split" in msg   # the rule and the counts
    assert "more speakers" in msg and "split=" in msg                                    # what to do
