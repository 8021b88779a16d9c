"""The eSpeak NG synthetic keyword set: byte-identical output per seed, cache layout, splits."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from labkit import config, io
from labkit.data import load_kws, read_wav, splits, synth, synthetic_clips

LABELS = ["yes", "_unknown_", "_silence_"]


@pytest.fixture(scope="module")
def gen0():
    return synth.generate(LABELS, 3, seed=0, workers=2, progress=False)


def test_same_seed_same_bytes_other_seed_differs(gen0):
    # Pollute *this* process's eSpeak state first: the workers are fresh processes, so it must not matter.
    tts = synth.ESpeakNG()
    assert len(tts.synth("marvin", voice="en-us", rate=150, pitch=50, pitch_range=50, seed=1)) > 1000
    again = synth.generate(LABELS, 3, seed=0, workers=1, progress=False)
    assert again["sha256"] == gen0["sha256"] == hashlib.sha256(gen0["pcm"].tobytes()).hexdigest()
    other = synth.generate(LABELS, 3, seed=1, workers=2, progress=False)
    assert other["sha256"] != gen0["sha256"]
    # a smaller run reproduces the first clips of a larger one (fixed chunks, per-clip seeds)
    smaller = synth.generate(["yes"], 2, seed=0, progress=False)
    np.testing.assert_array_equal(smaller["pcm"], gen0["pcm"][:2])


def test_clips_look_like_keyword_clips(gen0):
    pcm, labels = gen0["pcm"], np.array(gen0["labels"])
    assert pcm.dtype == np.int16 and pcm.shape == (9, 16000)
    assert labels.tolist() == ["yes"] * 3 + ["_unknown_"] * 3 + ["_silence_"] * 3
    assert np.abs(pcm.astype(np.int32)).max() <= 0.999 * 32768 + 1
    rms = np.sqrt(np.mean((pcm / 32768.0) ** 2, axis=1))
    assert rms[labels == "_silence_"].max() < 0.11                        # <= -20 dBFS (+ the noise floor)
    assert np.median(rms[labels != "_silence_"]) > np.median(rms[labels == "_silence_"])
    infos = gen0["infos"]
    assert {i["word"] for i in infos[:3]} == {"yes"}
    assert all(i["word"] in synth.unknown_pool(["yes"]) for i in infos[3:6])
    assert gen0["espeak_ng"].count(".") == 2                               # e.g. "1.52.0"
    # speaker j says clip j of every label with the same voice
    assert infos[0]["voice"] == infos[3]["voice"] and infos[1]["voice"] == infos[4]["voice"]


def test_speaker_ids_give_an_exact_80_10_10_speaker_split():
    ids = synth.speaker_ids(0, 30)
    assert len(set(ids)) == 30 and all(len(s) == 8 for s in ids)
    sides = [splits.which_set(s, salt=splits.RESPLIT_SALT) for s in ids]
    assert sides == ["val" if j % 10 == 8 else "test" if j % 10 == 9 else "train" for j in range(30)]
    assert synth.speaker_ids(1, 30) != ids


def test_cached_set_layout_manifest_and_reuse(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    folder, manifest = synth.ensure_dataset(["yes", "dog"], 2, seed=3, progress=False)
    assert folder.parent == tmp_path / "synthetic"
    assert sorted(p.name for p in folder.iterdir()) == ["_silence_", "_unknown_", "dog", "manifest.json", "yes"]
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk == manifest and (manifest["seed"], manifest["per_word"]) == (3, 2)
    assert manifest["espeak_ng"] and manifest["labels"] == ["yes", "dog", "_unknown_", "_silence_"]
    assert "dog" not in manifest["unknown_words"]
    pcm = np.concatenate([np.round(read_wav(folder / f) * 32768).astype("<i2") for f in manifest["files"]])
    assert hashlib.sha256(pcm.tobytes()).hexdigest() == manifest["sha256"]
    pattern = re.compile(r"(_unknown_/[a-z]+_|(yes|dog|_silence_)/)[0-9a-f]{8}_nohash_0\.wav")
    assert all(pattern.fullmatch(f) for f in manifest["files"]), manifest["files"]
    # second call: served from the cache, no generation
    monkeypatch.setattr(synth, "generate", lambda *a, **k: pytest.fail("regenerated"))
    assert synth.ensure_dataset(["yes", "dog"], 2, seed=3, progress=False)[0] == folder
    x, y = synthetic_clips(["yes", "dog", "_unknown_", "_silence_"], 2, seed=3, progress=False)
    assert x.shape == (8, 16000) and x.dtype == np.float32
    assert y.tolist() == ["yes", "yes", "dog", "dog", "_unknown_", "_unknown_", "_silence_", "_silence_"]
    assert not list(tmp_path.glob("synthetic/.*partial"))


_ASK_FOR_THE_SET = """
import json
from labkit.data import synth
real = synth.generate
def counted(*a, **k):
    print("GENERATED", flush=True)
    return real(*a, **k)
synth.generate = counted
print("READY", flush=True)
folder, manifest = synth.ensure_dataset(["yes"], 1, seed=5, progress=False)
print(json.dumps({"folder": str(folder), "sha256": manifest["sha256"], "generation_s": manifest["generation_s"]}))
"""


def test_two_processes_asking_for_the_same_set_generate_it_once(tmp_path, monkeypatch):
    """Notebooks 01 and 03 may ask for the synthetic set at the same time: one generates, the other waits."""
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    folder = synth.dataset_dir(["yes"], 1, seed=5)
    env = {**os.environ, "LABKIT_DATA": str(tmp_path)}
    with io.file_lock(synth.lock_path(folder)):  # hold it until both processes wait for it
        procs = [subprocess.Popen([sys.executable, "-c", _ASK_FOR_THE_SET], env=env, stdout=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        assert [p.stdout.readline().strip() for p in procs] == ["READY", "READY"]
        time.sleep(1.0)
        assert not folder.exists()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum(o.count("GENERATED") for o in outs) == 1, outs
    got = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    assert got[0] == got[1] and got[0]["folder"] == str(folder)  # the waiting one loaded the other's set
    assert json.loads((folder / "manifest.json").read_text())["generation_s"] == got[0]["generation_s"]


def test_load_kws_synthetic_smoke_profile():
    """The smoke profile's set (12 per word, cached in the repo's data/ and reused by the notebooks)."""
    per_word = config.profile("smoke").synth_per_word
    d = load_kws("synthetic", per_word=per_word, seed=0, progress=False)
    assert d.labels == [*config.KWS_WORDS, "_unknown_", "_silence_"] and d.name == "synthetic"
    table = d.summary()
    assert (table.loc[d.labels, ["train", "val", "test"]].values == [[10, 1, 1]] * len(d.labels)).all()
    assert d.info["speakers"] == {"train": 10, "val": 1, "test": 1, "total": 12}
    assert d.info["speaker_overlap"] == 0 and d.info["synthetic"]["per_word"] == per_word
    assert d.x_train.dtype == np.float32 and d.x_train.shape == (100, 16000)


def test_missing_espeak_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with pytest.raises(synth.SynthError, match="pip install espeakng-loader"):
        synth.generate(["yes"], 1, progress=False)
    with pytest.raises(ValueError, match="plain words"):
        synth.ensure_dataset(["yes", "_unknown_"], 1, progress=False)
