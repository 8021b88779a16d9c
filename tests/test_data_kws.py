"""WAV reading (real micro_speech fixtures + broken files) and load_kws on real and constructed folders."""
from __future__ import annotations

import hashlib
import re
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from labkit import config
from labkit.data import audio, kws, load_kws, splits
from labkit.data.audio import fix_length, read_wav, wav_bytes, write_wav

PART_A = "speech_commands_test_v0.02_part_a"


# ------------------------------------------------------------------------------------------- audio
def test_read_real_micro_speech_clips(shared_data):
    folder = shared_data / "micro_speech_testdata"
    yes = read_wav(folder / "yes_1000ms.wav")
    short = read_wav(folder / "yes_30ms.wav")
    assert yes.dtype == np.float32 and yes.shape == (16000,) and short.shape == (480,)
    assert -1.0 <= yes.min() and yes.max() < 1.0
    with wave.open(str(folder / "yes_1000ms.wav")) as wf:   # same samples as the raw int16 data / 32768
        raw = np.frombuffer(wf.readframes(16000), "<i2")
    np.testing.assert_array_equal(yes, raw / np.float32(32768))
    # speech is louder than the recorded silence
    assert np.sqrt(np.mean(yes ** 2)) > 3 * np.sqrt(np.mean(read_wav(folder / "silence_1000ms.wav") ** 2))


def test_fix_length_pads_centred_or_at_end(shared_data):
    short = read_wav(shared_data / "micro_speech_testdata" / "no_30ms.wav")
    centred, end = fix_length(short), fix_length(short, mode="end")
    assert centred.shape == end.shape == (16000,)
    np.testing.assert_array_equal(centred[7760:8240], short)       # (16000 - 480) / 2 = 7760
    assert not centred[:7760].any() and not centred[8240:].any()
    np.testing.assert_array_equal(end[:480], short)
    long = np.arange(16003, dtype=np.float32)
    assert fix_length(long)[0] == 1 and fix_length(long, mode="end")[-1] == 15999
    with pytest.raises(ValueError, match="pad mode"):
        fix_length(short, mode="left")


def _wav(path: Path, data: bytes, *, rate=16000, channels=1, width=2) -> Path:
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(channels)
        wf.setsampwidth(width)
        wf.setframerate(rate)
        wf.writeframes(data)
    return path


@pytest.mark.parametrize("case, error, pattern", [
    ("stereo", audio.ChannelsError, "2 channels, expected mono"),
    ("8khz", audio.SampleRateError, "sample rate 8000 Hz, expected 16000 Hz"),
    ("8bit", audio.SampleWidthError, "8-bit samples, expected 16-bit"),
    ("text", audio.NotAWavError, "not a readable PCM WAV file"),
    ("truncated", audio.CorruptWavError, "announces 1000 samples but the file holds 500"),
    ("empty", audio.CorruptWavError, "holds no samples"),
])
def test_bad_wav_files_raise_clear_errors(tmp_path, case, error, pattern):
    path = tmp_path / f"{case}.wav"
    pcm = np.zeros(1000, "<i2").tobytes()
    if case == "stereo":
        _wav(path, pcm, channels=2)
    elif case == "8khz":
        _wav(path, pcm, rate=8000)
    elif case == "8bit":
        _wav(path, bytes(1000), width=1)
    elif case == "text":
        path.write_text("this is not audio\n")
    elif case == "truncated":
        _wav(path, pcm)
        path.write_bytes(path.read_bytes()[:-1000])
    else:
        _wav(path, b"")
    with pytest.raises(error, match=re.escape(pattern)) as err:
        read_wav(path)
    assert isinstance(err.value, ValueError) and str(path) in str(err.value)


def test_write_read_round_trip(tmp_path):
    x = np.sin(np.linspace(0, 100, 16000)).astype(np.float32) * 0.5
    y = read_wav(write_wav(tmp_path / "a.wav", x))
    assert np.max(np.abs(y - x)) <= 1 / 32768
    assert not list(tmp_path.glob(".*tmp"))


# --------------------------------------------------------------------------------- speaker split
def test_speaker_id_and_official_hash_rule(shared_data):
    assert splits.speaker_id("0c540988_nohash_0.wav") == "0c540988"
    assert splits.speaker_id("backward_0c540988_nohash_0.wav.wav") == "0c540988"
    assert splits.speaker_id("1024.wav") == "1024"
    # The official test set holds exactly the speakers that the README's which_set sends to "testing":
    # an external check that our unsalted rule is the official one.
    speakers = {splits.speaker_id(p.name) for p in (shared_data / PART_A).glob("[a-z]*/*_nohash_*.wav")}
    assert len(speakers) > 100
    assert {splits.which_set(s) for s in speakers} == {"test"}
    salted = Counter(splits.which_set(s, salt=splits.RESPLIT_SALT) for s in speakers)
    assert set(salted) == {"train", "val", "test"} and salted["train"] > 0.7 * len(speakers)


# ------------------------------------------------------------------------------- real test set
@pytest.fixture(scope="module")
def part_a() -> Path:
    path = config.shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is not present")
    return path / PART_A


@pytest.fixture(scope="module")
def part_a_data(part_a):
    return load_kws(str(part_a), progress=False)


def test_load_real_test_set_layout(part_a, part_a_data):
    d = part_a_data
    assert d.labels == [*config.KWS12_WORDS, "_unknown_", "_silence_"]
    for s in ("train", "val", "test"):
        x, y = d.split(s)
        assert x.dtype == np.float32 and x.shape == (len(y), 16000) and y.dtype == np.int64
        assert np.abs(x).max() <= 1.0
    # every file is used exactly once, in the split its salted speaker hash says
    expected = Counter()
    for f in part_a.glob("*/*.wav"):
        split = splits.which_set(splits.speaker_id(f.name), salt=splits.RESPLIT_SALT)
        expected[split, f.parent.name] += 1
    got = Counter({(s, lab): n for s, c in d.info["counts"].items() for lab, n in c.items()})
    assert +got == +expected
    assert d.info["speaker_overlap"] == 0 and d.info["speakers"]["total"] > 150
    assert d.info["padded"] == 0 and d.info["source"] == str(part_a)
    summary = d.summary()
    assert summary.loc["total", "total"] == sum(expected.values()) == len(list(part_a.glob("*/*.wav")))
    assert summary.loc["yes", "total"] == len(list((part_a / "yes").glob("*.wav")))


def test_loaded_waveforms_are_the_files(part_a, part_a_data):
    d = part_a_data
    train_yes = sorted(f for f in (part_a / "yes").glob("*.wav")
                       if splits.which_set(splits.speaker_id(f.name), salt=splits.RESPLIT_SALT) == "train")
    x, y = d.split("train")
    first = x[np.flatnonzero(y == d.labels.index("yes"))[0]]
    np.testing.assert_array_equal(first, read_wav(train_yes[0]))


def test_word_choice_extra_word_and_missing_word(part_a):
    d = load_kws(str(part_a), words=["yes", "dog"], progress=False)
    assert d.labels == ["yes", "dog", "_unknown_", "_silence_"]
    n_dog = len(list((part_a / "_unknown_").glob("dog_*.wav")))
    assert n_dog > 0 and d.summary().loc["dog", "total"] == n_dog
    assert "dog" not in d.info["unknown_words"] and "no" in d.info["unknown_words"]
    with pytest.raises(kws.UnknownWordError, match=r"banana.*synthetic"):
        load_kws(str(part_a), words=["yes", "banana"], progress=False)


def test_word_subset_caps_unknown_and_is_deterministic(part_a):
    a = load_kws(str(part_a), words=list(config.KWS_WORDS), max_per_label=20, progress=False)
    b = load_kws(str(part_a), words=list(config.KWS_WORDS), max_per_label=20, progress=False)
    assert {"on", "off"} <= set(a.info["unknown_words"])
    assert a.summary()[["train", "val", "test"]].loc["yes"].tolist() == [16, 2, 2]
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(a.split(s)[0], b.split(s)[0])
    c = load_kws(str(part_a), words=list(config.KWS_WORDS), max_per_label=20, seed=1, progress=False)
    assert not np.array_equal(a.x_train, c.x_train)     # the subsample follows the seed


def test_registered_name_with_source_folder(part_a, part_a_data):
    d = load_kws("speech_commands_test", source=part_a, max_per_label=10, progress=False)
    assert d.labels == part_a_data.labels and d.name == "speech_commands_test"


# ------------------------------------------------------------------------- constructed layouts
def _clip(rng: np.random.Generator, n: int = 16000) -> bytes:
    return wav_bytes((rng.standard_normal(n) * 0.1).clip(-1, 1))


def _speakers(n: int) -> list[str]:
    return [hashlib.sha1(str(i).encode()).hexdigest()[:8] for i in range(n)]


def test_plain_word_folders_mini_layout(tmp_path):
    rng = np.random.default_rng(0)
    for word in ("no", "yes"):
        (tmp_path / word).mkdir()
        for i, spk in enumerate(_speakers(40)):
            (tmp_path / word / f"{spk}_nohash_0.wav").write_bytes(_clip(rng, 12000 if i % 4 == 0 else 16000))
    d = load_kws(str(tmp_path), progress=False)
    assert d.labels == ["no", "yes"]                     # no _unknown_/_silence_ in this layout
    assert d.info["padded"] == 20 and d.info["trimmed"] == 0
    expected = Counter(splits.which_set(s) for s in _speakers(40))   # unsalted: the official split
    assert d.info["counts"]["train"]["yes"] == expected["train"]
    assert d.info["counts"]["val"]["no"] == expected["val"]
    # a padded clip is centred: 2,000 zeros on each side
    x = np.concatenate([d.x_train, d.x_val, d.x_test])
    padded = x[(x[:, :2000] == 0).all(axis=1)]
    assert len(padded) == 20 and not padded[:, -2000:].any() and padded[:, 2000:14000].any(axis=1).all()
    with pytest.raises(kws.UnknownWordError):
        load_kws(str(tmp_path), words=["up"], progress=False)


def test_v2_layout_official_lists_unknown_and_silence(tmp_path):
    rng = np.random.default_rng(1)
    spk = _speakers(20)
    for word in ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat", "dog"):
        (tmp_path / word).mkdir()
        for s in spk:
            (tmp_path / word / f"{s}_nohash_0.wav").write_bytes(_clip(rng))
    (tmp_path / "_background_noise_").mkdir()
    (tmp_path / "_background_noise_" / "white.wav").write_bytes(_clip(rng, 16000 * 30))
    (tmp_path / "validation_list.txt").write_text("".join(f"{w}/{spk[0]}_nohash_0.wav\n" for w in ("yes", "cat")))
    (tmp_path / "testing_list.txt").write_text("".join(f"{w}/{s}_nohash_0.wav\n" for w in ("yes", "no", "dog")
                                                       for s in spk[1:3]))
    d = load_kws(str(tmp_path), progress=False)
    assert d.labels == [*config.KWS12_WORDS, "_unknown_", "_silence_"]
    c = d.info["counts"]
    assert (c["val"]["yes"], c["test"]["yes"], c["train"]["yes"]) == (1, 2, 17)
    # cat (1 val clip) and dog (2 test clips) feed _unknown_, capped per split at the mean keyword count (>= 1)
    assert c["val"]["_unknown_"] == 1 and c["test"]["_unknown_"] == 1
    assert c["train"]["_unknown_"] == round(np.mean([c["train"][w] for w in config.KWS12_WORDS]))
    assert c["train"]["_silence_"] == c["train"]["_unknown_"]
    sil = d.x_train[d.y_train == d.labels.index("_silence_")]
    rms_db = 20 * np.log10(np.sqrt(np.mean(sil.astype(np.float64) ** 2, axis=1)))
    assert rms_db.min() >= kws.SILENCE_DBFS[0] - 0.1 and rms_db.max() <= kws.SILENCE_DBFS[1] + 0.1
    assert set(d.info["unknown_words"]) == {"cat", "dog"}


def test_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "yes").mkdir()
    (tmp_path / "no").mkdir()
    (tmp_path / "yes" / "a_nohash_0.wav").write_bytes(wav_bytes(np.zeros(100)))
    with pytest.raises(audio.EmptyFolderError, match=re.escape(str(tmp_path / "no"))):
        load_kws(str(tmp_path), progress=False)
    (tmp_path / "no" / "b_nohash_0.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(audio.NotAWavError, match=re.escape(str(tmp_path / "no" / "b_nohash_0.wav"))):
        load_kws(str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="neither a dataset name"):
        load_kws(str(tmp_path / "missing"), progress=False)
    with pytest.raises(ValueError, match="summing to 100"):
        load_kws(str(tmp_path), split=(80, 10, 5), progress=False)


# ------------------------------------------------------------------- speaker folds, noise for augmentation
def test_speaker_folds_are_disjoint_and_test_every_speaker_once(tmp_path):
    rng = np.random.default_rng(3)
    spk = _speakers(30)
    for word in ("no", "yes"):
        (tmp_path / word).mkdir()
        for i, s in enumerate(spk):
            for n in range(1 + i % 3):                       # 1-3 clips per speaker and word
                (tmp_path / word / f"{s}_nohash_{n}.wav").write_bytes(_clip(rng))
    (tmp_path / "_background_noise_").mkdir()
    (tmp_path / "_background_noise_" / "white.wav").write_bytes(_clip(rng, 16000 * 10))
    d = load_kws(str(tmp_path), unknown=False, silence=False, progress=False)
    assert d.noise is not None and d.noise.shape == (8, 16000)   # 1 s cuts of the first 80 % only
    np.testing.assert_array_equal(d.noise[0], read_wav(tmp_path / "_background_noise_" / "white.wav")[:16000])
    assert {s: len(v) for s, v in d.speakers.items()} == {s: len(getattr(d, f"y_{s}")) for s in kws.SPLITS}
    folds = kws.speaker_folds(d, 5, seed=0)
    assert len(folds) == 5
    tested = []
    for i, f in enumerate(folds):
        sets = {s: set(f.speakers[s]) for s in kws.SPLITS}
        assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) \
            and not (sets["val"] & sets["test"])
        assert len(f.y_train) + len(f.y_val) + len(f.y_test) == len(d.y_train) + len(d.y_val) + len(d.y_test)
        assert len(f.y_val) > 0 and f.noise is d.noise and f.info["fold"] == i
        tested += list(sets["test"])
    assert sorted(tested) == sorted(spk)                          # every speaker tested exactly once
    sizes = [len(f.y_test) for f in folds]
    assert max(sizes) - min(sizes) <= 6                           # balanced by clips (<= one speaker apart)
    x0 = folds[0].x_test[0]                                       # the clips themselves are moved, not copied wrong
    assert any(np.array_equal(x0, x) for x in np.concatenate([d.x_train, d.x_val, d.x_test]))
    with pytest.raises(ValueError, match="speakers cannot fill"):
        kws.speaker_folds(d, 31)


def test_noise_comes_from_the_training_silence_clips_only(tmp_path):
    rng = np.random.default_rng(4)
    (tmp_path / "yes").mkdir()
    (tmp_path / "_unknown_").mkdir()
    (tmp_path / "_silence_").mkdir()
    for s in _speakers(20):
        (tmp_path / "yes" / f"{s}_nohash_0.wav").write_bytes(_clip(rng))
        (tmp_path / "_unknown_" / f"dog_{s}_nohash_0.wav").write_bytes(_clip(rng))
    for i in range(40):
        (tmp_path / "_silence_" / f"{i}.wav").write_bytes(_clip(rng))
    d = load_kws(str(tmp_path), words=["yes"], progress=False)
    n_train = sum(splits.which_set(str(i), salt=splits.RESPLIT_SALT) == "train" for i in range(40))
    assert d.noise.shape == (n_train, 16000) and d.info["noise_clips"] == n_train < 40
    train_sil = d.x_train[d.y_train == d.labels.index("_silence_")]
    assert {x.tobytes() for x in d.noise} == {x.tobytes() for x in train_sil}
