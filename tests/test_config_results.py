"""Profiles, paths, atomic writes and result recording."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from labkit import config, results


def test_profiles_scale_up():
    smoke, quick, full = (config.profile(n) for n in ("smoke", "quick", "full"))
    assert smoke.synth_per_word < quick.synth_per_word
    assert smoke.kws_epochs <= quick.kws_epochs <= full.kws_epochs
    assert quick.kws_dataset == "synthetic" and quick.forecast_dataset == "payerne"  # offline default
    assert full.kws_dataset == "mini_speech_commands" and full.forecast_dataset == "jena_climate"


def test_profile_overrides_and_errors():
    assert config.profile("smoke", kws_epochs=7, kws_dataset=None).kws_epochs == 7
    assert config.profile("smoke", kws_dataset=None).kws_dataset == "synthetic"  # None = keep default
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        config.profile("fast")
    with pytest.raises(ValueError, match="unknown profile field"):
        config.profile("quick", epochs=3)


def test_paths_follow_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("LABKIT_REPORTS", str(tmp_path / "r"))
    assert config.data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()
    assert config.reports_dir() == tmp_path / "r"
    monkeypatch.setenv("LABKIT_SHARED_DATA", str(tmp_path / "missing"))
    assert config.shared_data_dir() is None


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    class Boom(bytes):
        pass

    target = tmp_path / "x.bin"
    results.atomic_write_bytes(target, b"first")
    with pytest.raises(TypeError):
        results.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]  # no temp file left behind


def test_record_and_load_roundtrip(tmp_reports, monkeypatch):
    import numpy as np

    monkeypatch.setenv("LABKIT_NOTEBOOK", "99_test")
    frame = pd.DataFrame({"model": ["a", "b"], "top1": [np.float32(0.5), 0.75], "n": [np.int64(3), 4]})
    assert results.record("99_models", frame, key={"best": 0.75, "nan": float("nan")}, params={"epochs": 2}) is None
    doc = json.loads((tmp_reports / "results" / "99_models.json").read_text())  # None: no stray Out[n] in notebooks
    assert doc["notebook"] == "99_test" and doc["params"] == {"epochs": 2}
    assert doc["rows"] == [{"model": "a", "top1": 0.5, "n": 3}, {"model": "b", "top1": 0.75, "n": 4}]
    assert doc["key"] == {"best": 0.75, "nan": None}  # NaN is not valid JSON: recorded as null
    assert doc["versions"]["tensorflow"].startswith("2.21")
    assert results.to_frame(results.load("99_models")).equals(pd.DataFrame(doc["rows"]))
    with pytest.raises(ValueError, match="table name"):
        results.record("bad name!", [])
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        results.load("never_recorded")


def test_import_labkit_sets_legacy_keras_before_tensorflow():
    code = ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None); import labkit, sys; "
            "assert 'tensorflow' not in sys.modules, 'import labkit must not import TensorFlow'; "
            "import tensorflow as tf; print(tf.keras.Model.__module__.split('.')[0])")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "tf_keras"


def test_import_after_tensorflow_warns():
    code = ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None); import tensorflow, warnings; "
            "warnings.simplefilter('error'); import labkit")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "import labkit first" in out.stderr
