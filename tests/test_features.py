"""Tests of labkit.features: preset shapes, hand-computable values, librosa parity on real clips,
tf.data use and input validation."""
from __future__ import annotations

import math
import wave

import labkit  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from labkit import config, features

SR = 16000


def _read_wav(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == SR
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def real_clips() -> np.ndarray:
    """The four 1 s micro_speech test clips (yes, no, noise, silence) as float32 (4, 16000)."""
    root = config.shared_data_dir()
    folder = root / "micro_speech_testdata" if root else None
    if folder is None or not folder.is_dir():
        pytest.skip("micro_speech_testdata not available (set LABKIT_SHARED_DATA)")
    clips = [_read_wav(folder / f"{name}_1000ms.wav") for name in ("yes", "no", "noise", "silence")]
    return np.stack(clips)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal((3, SR))).astype(np.float32)


EXPECTED_SHAPES = {"mfcc_a": (49, 10, 1), "mfcc_b": (38, 10, 1), "logmel": (49, 40, 1), "stft": (32, 32, 1)}


@pytest.mark.parametrize("name", sorted(EXPECTED_SHAPES))
def test_preset_shapes(name, noise):
    assert set(features.PRESETS) == set(EXPECTED_SHAPES)
    cfg = features.get(name)
    assert features.output_shape(cfg) == EXPECTED_SHAPES[name]
    out = features.compute(noise, name, batch_size=2)  # 2 batches: full + partial
    assert out.shape == (3, *EXPECTED_SHAPES[name]) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert not np.allclose(out[0], out[1])  # different clips give different features
    assert f"{EXPECTED_SHAPES[name][0]}x{EXPECTED_SHAPES[name][1]}x1" in features.describe(name)


def test_frame_count_and_fft_default():
    cfg = features.FeatureConfig("mfcc", frame_length=400, frame_step=160)
    assert cfg.fft_length == 512 and cfg.num_frames == 1 + (16000 - 400) // 160 == 98
    assert features.PRESETS["mfcc_a"].num_frames == 49  # 640/320 without padding
    assert features.get(cfg) is cfg and features.preset_name(cfg) is None
    assert features.preset_name(features.FeatureConfig("mfcc", 640, 320, 1024)) == "mfcc_a"


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="mel"), "kind"),
    (dict(num_coefficients=41), "num_coefficients"),
    (dict(upper_edge_hz=9000.0), "upper_edge_hz"),
    (dict(frame_length=1024, fft_length=512), "fft_length"),
    (dict(resize=(32,)), "resize"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        features.FeatureConfig(**kwargs)


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="mfcc_a"):
        features.get("mfcc")


def test_sine_peak_and_silence_values():
    # 1 kHz sine: with a 1024-point FFT the magnitude peaks in bin 1000 / (16000 / 1024) = 64.
    t = np.arange(SR) / SR
    sine = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    raw = features.PRESETS["mfcc_a"].replace(kind="stft")
    spec = features.compute(sine, raw)[0, :, :, 0]
    assert spec.shape == (49, 513)
    assert (spec.argmax(axis=1) == 64).all()
    # Periodic Hann of length 640 has coherent gain 0.5: peak ~ 0.5 * 0.5 * 640 / 2 = 80 (bin-centred sine).
    assert spec.max() == pytest.approx(80.0, rel=0.01)
    # Silence: log-mel is log(1e-6) everywhere; MFCC c0 = log(1e-6) * sqrt(2 * 40), the rest 0.
    zeros = np.zeros((1, SR), np.float32)
    logmel = features.compute(zeros, features.PRESETS["mfcc_a"].replace(kind="logmel"))
    np.testing.assert_allclose(logmel, math.log(1e-6), rtol=1e-6)
    mfcc = features.compute(zeros, "mfcc_a")[0, :, :, 0]
    np.testing.assert_allclose(mfcc[:, 0], math.log(1e-6) * math.sqrt(80), rtol=1e-5)
    np.testing.assert_allclose(mfcc[:, 1:], 0.0, atol=1e-4)


@pytest.mark.parametrize("name", ["mfcc_a", "mfcc_b", "logmel", "stft"])
def test_parity_with_librosa_on_real_clips(name, real_clips):
    cfg = features.get(name)
    result = features.parity(real_clips, cfg)
    assert result["clips"] == 4
    assert result["max_abs_diff"] <= features.PARITY_ATOL[cfg.kind], result
    # The comparison is not vacuous: features span a real range...
    assert result["feature_max"] - result["feature_min"] > 5.0
    if cfg.kind != "stft":
        # ...and librosa's own HTK filterbank (triangles linear in Hz) is measurably different.
        loose = features.parity(real_clips[:2], cfg, filterbank="librosa")
        assert loose["max_abs_diff"] > 10 * result["max_abs_diff"]


def test_matched_filterbank_equals_tensorflow():
    for name in ("mfcc_a", "mfcc_b", "logmel"):
        cfg = features.get(name)
        np.testing.assert_allclose(features._htk_mel_filterbank(cfg).T, features.mel_matrix(cfg), atol=1e-5)


def test_tf_fn_in_tf_data_map(noise):
    fn = features.tf_fn("mfcc_a")
    assert features.tf_fn(features.get("mfcc_a")) is fn  # cached per config
    labels = np.arange(3)
    per_clip = tf.data.Dataset.from_tensor_slices((noise, labels)).map(lambda x, y: (fn(x), y)).batch(2)
    batched = tf.data.Dataset.from_tensor_slices((noise, labels)).batch(2).map(lambda x, y: (fn(x), y))
    expected = features.compute(noise, "mfcc_a")
    for ds in (per_clip, batched):
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
        assert [x.shape for x in xs] == [(2, 49, 10, 1), (1, 49, 10, 1)]
        np.testing.assert_allclose(np.concatenate(xs), expected, atol=1e-4)
        assert np.concatenate(ys).tolist() == [0, 1, 2]


def test_tf_fn_unknown_length_is_checked_at_run_time():
    fn = features.tf_fn("stft")
    ds = tf.data.Dataset.from_generator(lambda: iter([np.zeros(480, np.float32)]),
                                        output_signature=tf.TensorSpec([None], tf.float32)).map(fn)
    with pytest.raises(tf.errors.InvalidArgumentError):
        next(iter(ds))


def test_bad_input_errors(noise):
    pcm = (noise * 32767).astype(np.int16)
    with pytest.raises(TypeError, match="32768"):
        features.compute(pcm, "mfcc_a")
    with pytest.raises(ValueError, match="16000"):
        features.compute(noise[:, :480], "mfcc_a")
    with pytest.raises(ValueError, match="stereo"):
        features.compute(np.stack([noise[0], noise[1]], axis=-1), "mfcc_a")  # (16000, 2)
    with pytest.raises(ValueError, match="stereo"):
        features.compute(np.stack([noise, noise], axis=-1), "mfcc_a")  # (3, 16000, 2)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        features.compute(pcm.astype(np.float32), "mfcc_a")
    with pytest.raises(ValueError, match="NaN"):
        features.compute(np.full((1, SR), np.nan, np.float32), "mfcc_a")
    with pytest.raises(TypeError, match="float"):
        features.tf_fn("mfcc_a")(tf.constant(pcm))
    with pytest.raises(ValueError, match="16000"):
        features.tf_fn("mfcc_a")(tf.zeros([2, 8000]))
    with pytest.raises(ValueError, match="one clip"):
        features.librosa_features(noise, "mfcc_a")


def test_documented_conversions(noise):
    expected = features.compute(noise, "logmel")
    np.testing.assert_array_equal(features.compute(noise[..., None], "logmel"), expected)  # (N, 16000, 1)
    np.testing.assert_allclose(features.compute(noise.astype(np.float64), "logmel"), expected, atol=1e-5)
    np.testing.assert_array_equal(features.compute(noise[0], "logmel"), expected[:1])  # single clip
    # Batches of 2 (the last one zero-padded) give the same features as one batch of 3.
    np.testing.assert_allclose(features.compute(noise, "logmel", batch_size=2), expected, atol=1e-5)
    assert features.compute(np.zeros((0, SR), np.float32), "logmel").shape == (0, 49, 40, 1)


def test_views_and_examples(noise):
    v = features.views(noise[0], "mfcc_a")
    assert v.spectrogram_db.shape == (49, 513) and v.log_mel.shape == (49, 40) and v.mfcc.shape == (49, 10)
    assert v.fft_db.max() == 0.0 and v.fft_freqs[-1] == 8000.0
    y = np.array([0, 1, 1, 0, 1])
    picked = features.pick_examples(np.arange(5)[:, None] * np.ones((5, 4)), y, ["a", "b", "c"], per_label=2)
    assert sorted(picked) == ["a", "b"] and picked["a"][:, 0].tolist() == [0, 3] and len(picked["b"]) == 2
    again = features.pick_examples(np.arange(5)[:, None] * np.ones((5, 4)), y, ["a", "b", "c"], per_label=2)
    np.testing.assert_array_equal(picked["b"], again["b"])


def test_cost_table_measures_every_mode(noise):
    table = features.cost_table(noise, presets=("stft", "mfcc_a"), runs=3, warmup=1, batch_size=4,
                                progress=False)
    assert len(table) == 2 * len(features.MODES)
    assert set(table["mode"]) == set(features.MODES)
    assert (table["ms_per_clip"] > 0).all() and (table["p90_ms_per_clip"] >= table["ms_per_clip"]).all()
    assert table.loc[table["mode"] == "batched", "batch"].tolist() == [4, 4]
    assert table.loc[table["pipeline"] == "mfcc_a", "shape"].iloc[0] == "49x10"
    with pytest.raises(ValueError, match="unknown mode"):
        features.cost_table(noise, modes=("gpu",))


def test_parity_on_hardest_speech_commands_clips():
    """The two real clips with the largest log-domain TF-vs-librosa differences found over the 3,066
    clips of the developers' Speech Commands test set stay within PARITY_ATOL."""
    root = config.shared_data_dir()
    folder = root / "speech_commands_test_v0.02_part_a" if root else None
    paths = [folder / "on" / "f17d21b5_nohash_1.wav", folder / "down" / "a4383927_nohash_0.wav"] if folder else []
    if not paths or not all(p.exists() for p in paths):
        pytest.skip("speech_commands_test_v0.02_part_a not available")
    clips = np.stack([_read_wav(p) for p in paths])
    for name in ("logmel", "mfcc_b"):
        result = features.parity(clips, name)
        assert 1e-4 < result["max_abs_diff"] <= features.PARITY_ATOL[features.get(name).kind], (name, result)


def test_plot_helpers_and_explorer(noise, tmp_reports):
    import matplotlib

    matplotlib.use("Agg")
    from labkit import plots

    views = {f"clip {i}": features.views(c, "mfcc_a") for i, c in enumerate(noise[:2])}
    fig = plots.audio_views(views)
    assert len(fig.axes) == 2 * (len(plots.AUDIO_PANELS) + 1)  # each row: the panels and the MFCC colour bar
    html = plots.audio_gallery(views, fig).data
    assert html.count("<audio") == 2 and html.count("data:image/png;base64,") == 2
    assert plots.save_fig(fig, "test_views", show=False) is None  # no stray Out[n] in notebooks
    assert plots.figure_path("test_views").stat().st_size > 10_000
    three = plots.audio_views(views, panels=("spectrogram", "logmel", "mfcc"))
    assert len(three.axes) == 2 * (3 + 1)
    with pytest.raises(ValueError, match="unknown panel"):
        plots.audio_views(views, panels=("cepstrum",))
    table = features.cost_table(noise, presets=("stft",), runs=1, warmup=0, modes=("tf.function", "batched"),
                                batch_size=2, progress=False)
    assert len(plots.cost_bars(table).axes[0].patches) == 2
    from labkit import widgets

    box = widgets.explorer({"a": noise[:2]}, cfg="logmel")
    out = box.children[-1]
    assert "49x40x1" in out.outputs[-1]["text"]
    box.children[1].children[2].value = 16  # mel bins slider -> re-rendered with 16 bands
    assert "16 HTK mel bands" in out.outputs[-1]["text"]
