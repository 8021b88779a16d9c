"""Constraint checks, Pareto fronts and resumable Optuna studies (labkit.search)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import search


def test_constraint_presets_match_the_course():
    assert str(search.PRESETS["forecast_a"]) == "forecast_a: T_mae < 0.5 °C, RH_mae < 1.8 %RH, size_kb < 2 kB"
    assert str(search.PRESETS["forecast_b"]) == "forecast_b: T_mae < 0.6 °C, RH_mae < 1.9 %RH, size_kb < 1.7 kB"
    assert str(search.PRESETS["kws_b"]) == "kws_b: top1 > 0.9, size_kb < 35 kB, inference_ms < 1.5 ms"
    assert [p.name for p in search.presets_for("kws")] == ["kws_a", "kws_b", "kws_c"]
    with pytest.raises(ValueError, match="no constraint presets"):
        search.presets_for("vision")


def test_check_on_hand_made_trials():
    good = {"T_mae": 0.45, "RH_mae": 1.70, "size_kb": 1.90}
    table = search.check(good, "forecast_a")
    assert table["passed"].tolist() == [True, True, True]
    assert table["margin"].round(6).tolist() == [0.05, 0.1, 0.1]
    assert search.meets(good, "forecast_a") and not search.meets(good, "forecast_b")  # 1.9 kB > 1.7 kB
    edge = {"top1": 0.90, "size_kb": 24.0}  # strictly greater than 90 % is required
    assert search.check(edge, "kws_a")["passed"].tolist() == [False, True]
    missing = search.check({"top1": 0.95, "size_kb": 20.0}, "kws_b")  # no latency measured -> fails
    assert missing["passed"].tolist() == [True, True, False] and missing["value"].isna().tolist()[-1]


def test_pareto_front_on_hand_made_set():
    trials = pd.DataFrame({
        "top1": [0.90, 0.85, 0.92, 0.80, 0.92, np.nan],
        "size_kb": [20.0, 10.0, 40.0, 12.0, 45.0, 1.0],
    })
    mask = search.pareto_mask(trials, {"top1": "max", "size_kb": "min"})
    # 3 is dominated by 1 (worse and bigger), 4 by 2 (same accuracy, bigger), 5 has NaN
    assert mask.tolist() == [True, True, True, False, False, False]
    with pytest.raises(KeyError, match="no column"):
        search.pareto_mask(trials, {"latency": "min"})


def test_best_per_preset_picks_best_passing_or_closest():
    trials = pd.DataFrame([
        {"trial": 0, "top1": 0.93, "size_kb": 30.0, "inference_ms": 1.0, "total_ms": 30.0},
        {"trial": 1, "top1": 0.91, "size_kb": 20.0, "inference_ms": 2.0, "total_ms": 30.0},
        {"trial": 2, "top1": 0.95, "size_kb": 60.0, "inference_ms": 3.0, "total_ms": 50.0},
    ])
    best = search.best_per_preset(trials, search.presets_for("kws"), primary="top1").set_index("preset")
    assert best.loc["kws_a", "trial"] == 1 and best.loc["kws_a", "status"] == "met"
    assert best.loc["kws_b", "trial"] == 0 and best.loc["kws_c", "trial"] == 0


def _objective(params):
    x, y = float(params["x"]), float(params["y"])
    return {"loss": (x - 2) ** 2 + y, "size": x + y}


SPACE = {"x": [0, 1, 2, 3, 4], "y": [0, 1, 2, 3]}


def test_study_resumes_from_sqlite_without_losing_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    calls = []

    def interrupted(params):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the 4th new measurement
        calls.append(params)
        return _objective(params)

    study = search.open_study("toy", ["minimize", "minimize"], storage=url, seed=0)
    with pytest.raises(KeyboardInterrupt):
        search.run_study(study, interrupted, SPACE, ["loss", "size"], n_trials=10, progress=False)
    first = search.trials_frame(study)
    assert len(calls) == 3 and len(first) >= 3  # repeated configurations are reused, not re-measured
    states = [t.state.name for t in study.get_trials()]
    assert states.count("FAIL") == 1 and states[-1] == "FAIL"  # the interrupted trial

    resumed = search.open_study("toy", ["minimize", "minimize"], storage=url, seed=0)
    frame = search.run_study(resumed, _objective, SPACE, ["loss", "size"], n_trials=10, progress=False)
    assert len(frame) == 10  # only the remaining trials ran
    kept = frame.set_index("trial").loc[first["trial"]]
    assert (kept[["loss", "size"]].to_numpy() == first[["loss", "size"]].to_numpy()).all()
    for row in frame.to_dict(orient="records"):  # every stored metric is the measured one
        assert row["loss"] == (row["x"] - 2) ** 2 + row["y"]

    again = search.run_study(search.open_study("toy", ["minimize", "minimize"], storage=url), _objective,
                             SPACE, ["loss", "size"], n_trials=10, progress=False)
    assert len(again) == 10  # already complete: nothing new runs


def test_study_resumes_after_the_worker_process_is_killed(tmp_path):
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'killed.db'}"
    script = f"""
import os
from labkit import search
n = []
def objective(params):
    if len(n) == 2:
        os._exit(9)  # the machine dies mid-trial: no exception handler runs
    n.append(1)
    return {{"loss": float(params["x"]), "size": float(params["y"])}}
study = search.open_study("killed", ["minimize", "minimize"], storage={url!r}, heartbeat_s=1)
search.run_study(study, objective, {SPACE!r}, ["loss", "size"], n_trials=8, progress=False)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    time.sleep(3.5)  # past the grace period (3 heartbeats)
    study = search.open_study("killed", ["minimize", "minimize"], storage=url, heartbeat_s=1)
    states = [t.state.name for t in study.get_trials()]
    assert "RUNNING" not in states and states.count("FAIL") == 1 and states.count("COMPLETE") >= 2
    frame = search.run_study(study, lambda p: {"loss": float(p["x"]), "size": float(p["y"])}, SPACE,
                             ["loss", "size"], n_trials=8, progress=False)
    assert len(frame) == 8
