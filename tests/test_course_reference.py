"""The hidden tests of the course's exercises (labkit.course.reference) and the self-check helpers
(labkit.course.selfcheck): right answers pass, answers that merely call labkit fail, checks never raise."""
from __future__ import annotations

import json

import numpy as np
import pytest

from labkit import estimate, features, metrics, quantize, search
from labkit.course import reference, selfcheck


def _fails(name, answer, match="write it yourself"):
    with pytest.raises(AssertionError, match=match):
        reference.check(name, answer, seed=1)


def test_every_forbidden_target_resolves():
    # after a refactor moves a function, this names the entry of reference.EXERCISES to update
    for name, ex in reference.EXERCISES.items():
        for target in ex.forbidden:
            selfcheck._resolve(target)


def test_answers_that_call_labkit_fail_the_hidden_tests():
    _fails("stft_shape", lambda n, L, S, F: (features.FeatureConfig("stft", L, S, F, num_samples=n).num_frames, F // 2 + 1))
    _fails("fake_quant_tensor", lambda w, b: quantize.quantize_weights(w, b, per_channel=False))
    _fails("quantize_input", lambda x, s, z: quantize.quantize_int(x, 8, s, z).astype(np.int8))
    _fails("meets_preset", lambda m, p: search.meets(m, p))
    _fails("pareto_front", search.pareto_mask)  # the function itself, bound to another name
    _fails("mae_per_target", lambda yt, yp, names: np.array(list(metrics.forecast_mae(yt, yp, names).values())[::2]))
    _fails("chain_peak_ram", lambda sizes: estimate.peak_ram(None))

    fq = quantize.fake_quant  # an alias in the answer's globals

    def aliased(q, scale, zero_point):
        return fq((np.asarray(q, float) - zero_point) * scale, 8, scale, zero_point)
    _fails("dequantize", aliased)


def test_hidden_tests_catch_numpy_rounding_and_conventions():
    def np_round(w, bits):  # ties to even instead of away from zero
        qmax = 2 ** (bits - 1) - 1
        scale = np.abs(w).max() / qmax
        return np.clip(np.round(w / scale), -qmax, qmax) * scale
    _fails("fake_quant_tensor", np_round, match="expected")

    def macs_not_flops(shape, out, k, padding=0, stride=1):  # forgets FLOPs = 2 x MACs
        b, c, h, w = shape
        return b * ((h + 2 * padding - k) // stride + 1) * ((w + 2 * padding - k) // stride + 1) * out * k * k * c
    _fails("conv2d_flops", macs_not_flops, match="expected")
    _fails("meets_preset", lambda m, p: all(m.get(c.metric, 0) >= c.limit if c.op == ">" else m.get(c.metric, 0) <= c.limit
                                           for c in search.PRESETS[p].constraints), match="expected")


def test_forbid_restores_everything():
    original = quantize.fake_quant
    with pytest.raises(AssertionError):
        with selfcheck.forbid(lambda: None, "labkit.quantize.fake_quant", "labkit.features.FeatureConfig.num_frames"):
            quantize.fake_quant(1.0, 8, 1.0)
    assert quantize.fake_quant is original
    assert features.PRESETS["mfcc_a"].num_frames == 49


def _metadata_notebook(tmp_path, code):
    nb = {"cells": [], "metadata": {"otter": {"tests": {"q1": {"name": "q1", "points": 2, "suites": [{"cases": [
        {"code": code, "hidden": False, "locked": False},
        {"code": ">>> assert False, 'hidden'", "hidden": True, "locked": False}]}]}}}},
        "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "01_x.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_labkit_checker_runs_public_tests_only_and_never_raises(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _metadata_notebook(tmp_path, ">>> assert double(2) == 4\n")
    grader = selfcheck.Notebook(path.name)
    ok = grader.check("q1", {"double": lambda x: 2 * x})
    assert ok.ok and (ok.passed, ok.total) == (1, 1) and "passed" in repr(ok)  # the hidden case is not run
    bad = grader.check("q1", {"double": lambda x: x})
    assert not bad.ok and "AssertionError" in repr(bad)
    missing = grader.check("q1", {})  # NameError inside the test: reported, not raised
    assert not missing.ok and "NameError" in repr(missing)
    assert grader.check("nope", {}).total == 0


def test_labkit_checker_reads_the_colab_notebook(tmp_path, monkeypatch):
    """On Colab the notebook is not on the runtime's disk: the checker asks the frontend for it."""
    import sys
    import types

    monkeypatch.chdir(tmp_path)
    nb = json.loads(_metadata_notebook(tmp_path, ">>> assert x == 1\n").read_text())
    (tmp_path / "01_x.ipynb").unlink()
    message = types.ModuleType("google.colab._message")
    message.blocking_request = lambda kind, request="", timeout_sec=0: {"ipynb": nb} if kind == "get_ipynb" else None
    colab = types.ModuleType("google.colab")
    colab._message = message
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab._message", message)
    grader = selfcheck.init("01_x.ipynb")
    assert isinstance(grader, selfcheck.Notebook)  # never otter on Colab
    assert grader.check("q1", {"x": 1}).ok and not grader.check("q1", {"x": 2}).ok
