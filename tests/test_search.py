"""Constraint checks, Pareto fronts and resumable Optuna studies (labkit.search)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import search
from labkit.experiments import tradeoffs


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
    assert len(resumed.get_trials()) == len(study.get_trials())  # read back from the file, not a new study
    measured = []

    def counted(params):
        measured.append(params)
        return _objective(params)

    frame = search.run_study(resumed, counted, SPACE, ["loss", "size"], n_trials=10, progress=False)
    assert len(frame) == 10  # only the remaining trials ran: at most 10 - len(first) new measurements
    assert 1 <= len(measured) <= 10 - len(first) and not set(map(str, measured)) & set(map(str, calls))
    kept = frame.set_index("trial").loc[first["trial"]]
    assert (kept[["loss", "size"]].to_numpy() == first[["loss", "size"]].to_numpy()).all()
    for row in frame.to_dict(orient="records"):  # every stored metric is the measured one
        assert row["loss"] == (row["x"] - 2) ** 2 + row["y"]

    measured.clear()
    again = search.run_study(search.open_study("toy", ["minimize", "minimize"], storage=url), counted,
                             SPACE, ["loss", "size"], n_trials=10, progress=False)
    assert len(again) == 10 and measured == []  # already complete: nothing is measured again


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
    for _ in range(10):  # on a loaded machine the last heartbeat can land late: poll a little longer
        study = search.open_study("killed", ["minimize", "minimize"], storage=url, heartbeat_s=1)
        states = [t.state.name for t in study.get_trials()]
        if "RUNNING" not in states:
            break
        time.sleep(1.0)
    assert "RUNNING" not in states and states.count("FAIL") == 1 and states.count("COMPLETE") >= 2
    frame = search.run_study(study, lambda p: {"loss": float(p["x"]), "size": float(p["y"])}, SPACE,
                             ["loss", "size"], n_trials=8, progress=False)
    assert len(frame) == 8


def test_run_study_reuses_other_workers_trials_and_survives_failing_configs(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = search.open_study("shared", ["minimize", "minimize"], storage=url, seed=0)
    done = search.run_study(first, _objective, SPACE, ["loss", "size"], n_trials=6, progress=False)
    measured_by_first = {(r["x"], r["y"]) for r in done.to_dict("records")}

    calls = []

    def second_worker(params):  # another process on the same database
        calls.append((params["x"], params["y"]))
        if params["x"] == 4:
            raise NotImplementedError("this configuration cannot be built")
        return _objective(params)

    other = search.open_study("shared", ["minimize", "minimize"], storage=url, seed=1)
    frame = search.run_study(other, second_worker, SPACE, ["loss", "size"], n_trials=12, progress=False,
                             catch=(NotImplementedError,))
    assert len(frame) == 12 and not set(calls) & measured_by_first  # nothing measured twice
    unbuildable = {(r["x"], r["y"]) for r in frame.to_dict("records") if r["x"] == 4}
    assert unbuildable <= measured_by_first  # the second worker's x == 4 trials all failed
    states = [t.state.name for t in other.get_trials()]
    assert states.count("FAIL") == sum(1 for x, _ in calls if x == 4) > 0


def test_params_are_completed_and_checked():
    p = search.normalize_params("kws", {"model": "cnn", "sparsity": 0.8})
    assert p == {"model": "cnn", "alpha": 1.0, "features": "mfcc_a", "keep": 1.0, "sparsity": 0.8, "mode": "int8_wa"}
    assert search.describe({"model": "ds_cnn", "alpha": 0.5, "features": "mfcc_b", "sparsity": 0.8}) == \
        "ds_cnn x0.5 · mfcc_b · sparse 0.8 · INT8 W+A"
    assert search.describe({"model": "fc_lstm", "keep": 0.5, "mode": "fp32"}) == "fc_lstm · structured 0.5 · FP32"
    for bad, message in [({"model": "fc_mlp"}, "unknown kws model"), ({"mode": "int4"}, "unknown conversion mode"),
                         ({"sparsity": 1.0}, "sparsity"), ({"keep": 0.0}, "keep"), ({"features": "mel"}, "preset"),
                         ({"width": 2}, "unknown kws parameter")]:
        with pytest.raises(ValueError, match=message):
            search.normalize_params("kws", bad)
    for profile in search.SPACES:  # every default choice and every course row is a valid configuration
        for task in search.TASKS:
            space = search.search_space(task, profile)
            for k, choices in space.items():
                for v in choices:
                    search.normalize_params(task, {k: v})
            assert search.space_size(space) == int(np.prod([len(v) for v in space.values()]))
    for task in search.TASKS:
        for model in tradeoffs.COURSE_MODELS[task]:
            for opt in tradeoffs.COURSE_OPTIMIZATIONS:
                tradeoffs.course_params(task, model, opt)
    assert tradeoffs.course_params("kws", "mlp", "Structured 0.75")["keep"] == 0.75
    table = search.space_table({"kws": {"model": ["cnn", "ds_cnn"]}})
    assert table.loc["model", "kws"] == "cnn, ds_cnn" and table.loc["mode", "kws"] == "int8_wa (fixed)"


def _record(table, rows, **params):
    from labkit import results

    results.record(table, rows, params=params)


def test_recorded_rows_only_gathers_measurements_of_the_same_model(tmp_reports):
    from labkit import config

    cfg = config.profile("quick")
    same = dict(eval_limit=None, bench_runs=cfg.bench_runs)
    _record("05_conversion", [
        {"model": "mlp · mfcc_a", "mode": "FP32", "top1": 0.70, "keras_top1": 0.70, "tflite_kb": 1017.6,
         "zlib_kb": 934.7, "inference_ms": 0.025, "total_ms": 1.48},
        {"model": "mlp · mfcc_a", "mode": "FP16", "top1": 0.70, "keras_top1": 0.70, "tflite_kb": 511.0,
         "zlib_kb": 464.3, "inference_ms": 0.02, "total_ms": 1.4},                   # not a course row
        {"model": "cnn · mfcc_a", "mode": "INT8 W+A", "top1": 0.79, "keras_top1": 0.79, "tflite_kb": 30.3,
         "zlib_kb": 25.3, "inference_ms": 0.05, "total_ms": 2.0},                    # an older cnn: stale
        {"model": "cnn · stft", "mode": "FP32", "top1": 0.5, "keras_top1": 0.81, "tflite_kb": 1, "zlib_kb": 1,
         "inference_ms": 1, "total_ms": 1},                                          # other features
        {"model": "fc_mlp", "mode": "INT8 W", "T_mae": 0.47, "keras_T_mae": 0.465, "RH_mae": 3.0, "tflite_kb": 9.2,
         "zlib_kb": 6.6, "inference_ms": 0.006, "total_ms": 0.011},
        {"model": "fc_mlp", "mode": "INT8 W+A", "T_mae": 0.80, "keras_T_mae": 0.465, "RH_mae": 3.2, "tflite_kb": 7.3,
         "zlib_kb": 3.7, "inference_ms": 0.016, "total_ms": 0.021},                  # one calibration rule: taken
    ], kws_dataset="synthetic", forecast_dataset=cfg.forecast_dataset, **same)
    _record("07_pruning", [
        {"task": "kws", "model": "mlp", "variant": "Baseline", "value": 0.70, "value_int8": 0.70, "tflite_kb": 277.2,
         "zlib_kb": 254.6, "latency_ms": 0.03},
        {"task": "kws", "model": "mlp", "variant": "Sparse 0.8", "value": 0.55, "value_int8": 0.53, "tflite_kb": 277.2,
         "zlib_kb": 92.3, "latency_ms": 0.03, "total_ms": 1.21},
        {"task": "kws", "model": "mlp", "variant": "Sparse 0.9", "value": 0.50, "value_int8": 0.49, "tflite_kb": 277.2,
         "zlib_kb": 80.1, "latency_ms": 0.03},                                     # recorded before total_ms
        {"task": "forecast", "model": "fc_mlp", "variant": "Baseline", "value": 0.46504, "value_int8": 0.47,
         "RH_mae_int8": 3.1, "tflite_kb": 7.7, "zlib_kb": 4.1, "latency_ms": 0.002, "total_ms": 0.03},
        {"task": "forecast", "model": "fc_mlp", "variant": "Sparse 0.8", "value": 0.46, "value_int8": 0.462,
         "RH_mae_int8": 3.05, "tflite_kb": 7.7, "zlib_kb": 3.1, "latency_ms": 0.002, "total_ms": 0.03},
        {"task": "forecast", "model": "fc_mlp", "variant": "Sparse 0.9", "value": 0.47, "value_int8": 0.471,
         "tflite_kb": 7.7, "zlib_kb": 2.9, "latency_ms": 0.002},                  # recorded before RH_mae_int8
        {"task": "forecast", "model": "fc_cnn", "variant": "Baseline", "value": 0.39, "value_int8": 0.39,
         "RH_mae_int8": 3.0, "tflite_kb": 6.2, "zlib_kb": 3.6, "latency_ms": 0.002},   # another fc_cnn: stale
        {"task": "forecast", "model": "fc_cnn", "variant": "Sparse 0.8", "value": 0.41, "value_int8": 0.41,
         "RH_mae_int8": 3.0, "tflite_kb": 6.2, "zlib_kb": 2.4, "latency_ms": 0.002},
    ], features="mfcc_a", norm="l1", dataset="synthetic", forecast_dataset=cfg.forecast_dataset,
        finetune_epochs=cfg.prune_epochs, bench_runs=cfg.bench_runs, max_train_samples=None)

    kws = tradeoffs.recorded_rows("kws", {"mlp": {"top1": 0.70}, "cnn": {"top1": 0.80}}, cfg, dataset_name="synthetic")
    assert sorted(kws) == [("mlp", "FP32"), ("mlp", "Sparse 0.8"), ("mlp", "Sparse 0.9")]
    assert kws[("mlp", "FP32")]["size_kb"] == 934.7 and kws[("mlp", "FP32")]["source"] == "notebook 05"
    assert kws[("mlp", "Sparse 0.8")]["top1"] == 0.53 and kws[("mlp", "Sparse 0.8")]["total_ms"] == 1.21
    assert np.isnan(kws[("mlp", "Sparse 0.9")]["total_ms"])
    fc = tradeoffs.recorded_rows("forecast", {"fc_mlp": {"T_mae": 0.465}, "fc_cnn": {"T_mae": 0.38}}, cfg)
    assert sorted(fc) == [("fc_mlp", "INT8 W"), ("fc_mlp", "INT8 W+A"), ("fc_mlp", "Sparse 0.8")]
    assert fc[("fc_mlp", "INT8 W")]["T_mae"] == 0.47
    assert fc[("fc_mlp", "INT8 W+A")]["T_mae"] == 0.80 and fc[("fc_mlp", "INT8 W+A")]["size_kb"] == 3.7
    # notebook 07's pruned forecaster: both MAEs of its int8 file, its sizes and latencies
    assert fc[("fc_mlp", "Sparse 0.8")] == {"T_mae": 0.462, "RH_mae": 3.05, "size_kb": 3.1, "tflite_kb": 7.7,
                                           "inference_ms": 0.002, "total_ms": 0.03, "source": "notebook 07"}
    assert tradeoffs.recorded_rows("forecast", {"fc_mlp": {"T_mae": 0.465}}, cfg.replace(forecast_dataset="jena"),
                                   ).keys().isdisjoint({("fc_mlp", "Sparse 0.8")})  # another series: 07's rows are not it
    # other settings (a smoke run's records, another dataset) are never gathered
    assert tradeoffs.recorded_rows("kws", {"mlp": {"top1": 0.70}}, config.profile("smoke"), dataset_name="synthetic") == {}
    assert tradeoffs.recorded_rows("kws", {"mlp": {"top1": 0.70}}, cfg, dataset_name="mini_speech_commands") == {}
    assert tradeoffs.recorded_rows("kws", {"mlp": {"top1": 0.70}}, cfg.replace(prune_epochs=8),
                                dataset_name="synthetic").keys() == {("mlp", "FP32")}
    # the STFT table gathers notebook 05's STFT rows only (the 07 rows are MFCC)
    stft = tradeoffs.recorded_rows("kws", {"cnn": {"top1": 0.81}}, cfg, dataset_name="synthetic", features="stft")
    assert sorted(stft) == [("cnn", "FP32")] and stft[("cnn", "FP32")]["top1"] == 0.5


def test_course_settings_per_profile_and_feature_table():
    from labkit import config

    quick, full, smoke = (config.profile(p) for p in ("quick", "full", "smoke"))
    mfcc = tradeoffs.course_settings("kws", quick)
    assert mfcc["features"] == "mfcc_a" and mfcc["pruned_models"] == ("ds_cnn",)  # notebook 07's model only
    assert len(mfcc["optimizations"]) == 7
    stft = tradeoffs.course_settings("kws", quick, features="stft")
    assert stft["optimizations"] == tradeoffs.QUANTIZATION_ROWS and "pruned_models" not in stft
    assert "pruned_models" not in tradeoffs.course_settings("kws", full, features="stft")
    assert tradeoffs.course_settings("kws", smoke)["models"] == ("ds_cnn",)
    assert tradeoffs.course_params("kws", "cnn", "INT8 W", "stft")["features"] == "stft"
    assert "features" not in tradeoffs.course_settings("forecast", quick)


def test_plot_fronts_draws_trials_front_and_constraint_boxes():
    import matplotlib

    matplotlib.use("Agg")
    trials = pd.DataFrame({
        "model": ["cnn", "cnn", "ds_cnn", "ds_cnn"], "mode": ["fp32", "int8_wa", "int8_wa", "int8_w"],
        "top1": [0.80, 0.79, 0.86, 0.85], "size_kb": [88.0, 25.0, 30.0, 34.0],
        "inference_ms": [0.05, 0.04, 0.07, 0.08], "total_ms": [1.6, 1.5, 1.7, 1.8]})
    from labkit import plots

    fig = plots.plot_fronts(trials, "kws")
    size_ax = fig.axes[0]
    assert len(size_ax.patches) == 3  # kws_a, kws_b, kws_c all bound accuracy and size
    front = size_ax.lines[0]
    assert list(front.get_xdata()) == [25.0, 30.0] and list(front.get_ydata()) == [0.79, 0.86]
    assert size_ax.get_ylim()[1] > 0.90  # the accuracy limit is visible although no trial reaches it
    box = size_ax.patches[0]  # kws_a: top1 > 0.9 and size < 25 kB
    assert box.get_x() + box.get_width() == pytest.approx(25.0) and box.get_y() == pytest.approx(0.90)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_cli_search_parser_documents_shared_storage():
    from labkit import cli

    parser = cli.build_parser()
    args = parser.parse_args(["search", "--task", "forecast", "--trials", "3", "--storage", "sqlite:///x.db",
                              "--study", "s", "--profile", "smoke"])
    assert args.func is cli._cmd_search and (args.task, args.trials, args.study) == ("forecast", 3, "s")
    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices["search"]
    text = sub.format_help()
    assert "postgresql://" in text and "resumes" in text


@pytest.fixture(scope="module")
def smoke_cfg():
    from labkit import config

    return config.profile("smoke").replace(eval_limit=None, bench_runs=5, bench_warmup=1)


def test_kws_evaluator_measures_every_objective(smoke_cfg):
    import time

    from labkit import data, train

    kws = data.load_kws("synthetic", per_word=smoke_cfg.synth_per_word, seed=0, progress=False)
    fit = train.train_kws("ds_cnn", kws, "mfcc_a", **train.kws_settings(smoke_cfg), seed=0)
    dense = search.evaluate_kws({"model": "ds_cnn", "mode": "fp32"}, data=kws, cfg=smoke_cfg)
    small = search.evaluate_kws({"model": "ds_cnn", "keep": 0.75, "sparsity": 0.5, "mode": "int8_wa"}, data=kws,
                                cfg=smoke_cfg)
    for out in (dense, small):
        assert set(search.OBJECTIVES["kws"]) <= set(out) and all(np.isfinite(v) for v in out.values())
        n = len(kws.y_test)
        assert 0 <= out["top1"] <= 1 and out["top1"] * n == pytest.approx(round(out["top1"] * n))
        assert 0 < out["size_kb"] < out["tflite_kb"]  # zlib-compressed is smaller than the file
        assert 0 < out["inference_ms"] < out["total_ms"] and out["preprocessing_ms"] > 0
    assert dense["top1"] == pytest.approx(fit.metrics["top1"])  # an FP32 file is the Keras model
    from labkit import prune

    kernels = int(prune.sparsity_report(fit.model).iloc[-1]["params"])
    assert dense["params"] == fit.params and dense["tflite_kb"] * 1024 > 4 * kernels  # float32 weights inside
    assert small["params"] < 0.7 * dense["params"]               # 25 % of the channels removed
    assert 0.3 < small["nonzero_params"] / small["params"] < 0.65  # half of the kernel weights zeroed
    assert small["tflite_kb"] < dense["tflite_kb"] / 2           # int8 and narrower
    t0 = time.perf_counter()
    assert search.evaluate_kws({"model": "ds_cnn", "mode": "fp32"}, data=kws, cfg=smoke_cfg) == dense
    assert time.perf_counter() - t0 < 0.5  # measured once


def test_forecast_evaluator_measures_every_objective(smoke_cfg):
    from labkit import data, train

    windows = data.make_windows(data.load_weather("payerne"))
    fit = train.train_forecaster("fc_mlp", windows, **train.forecast_settings(smoke_cfg), seed=0)
    fp32 = search.evaluate_forecast({"model": "fc_mlp", "mode": "fp32"}, windows=windows, cfg=smoke_cfg)
    int8 = search.evaluate_forecast({"model": "fc_mlp", "mode": "int8_wa"}, windows=windows, cfg=smoke_cfg)
    for out in (fp32, int8):
        assert set(search.OBJECTIVES["forecast"]) <= set(out) and all(np.isfinite(v) for v in out.values())
        assert 0 < out["T_mae"] < 3 * fit.metrics["persist_T_mae"]
        assert 0 < out["RH_mae"] < 3 * fit.metrics["persist_RH_mae"]
        assert 0 < out["size_kb"] < out["tflite_kb"] and 0 < out["inference_ms"] < out["total_ms"]
    assert fp32["T_mae"] == pytest.approx(fit.metrics["T_mae"], abs=1e-5)  # the FP32 file is the Keras model
    assert fp32["RH_mae"] == pytest.approx(fit.metrics["RH_mae"], abs=1e-4)
    assert int8["tflite_kb"] < fp32["tflite_kb"]
    assert abs(int8["T_mae"] - fp32["T_mae"]) < 0.1  # calibrated on train + validation: no clipping damage


def test_study_name_follows_what_would_change_the_measurements(monkeypatch):
    from types import SimpleNamespace

    from labkit import config

    rng = np.random.default_rng(0)
    ds = SimpleNamespace(**{f"{a}_{s}": rng.normal(size=(4, 3)) for a in "xy" for s in ("train", "val", "test")})
    quick = config.profile("quick")
    name = search.study_name("forecast", ds, quick)
    assert name.startswith("forecast-quick-s0-")
    assert search.study_name("forecast", ds, quick.replace(search_trials=400)) == name  # more trials: resume
    assert search.study_name("forecast", ds, quick.replace(finetune_epochs=5)) != name
    assert search.study_name("forecast", ds, quick.replace(prune_epochs=5)) != name
    assert search.study_name("forecast", ds, quick, seed=1) != name
    assert search.study_name("forecast", ds, quick, space={"model": ["fc_cnn"]}) != name
    monkeypatch.setitem(search.tasks.FINETUNE_LR_SCALE, "forecast", 1.0)   # another fine-tuning rate
    assert search.study_name("forecast", ds, quick) != name
    monkeypatch.undo()
    monkeypatch.setitem(search.tasks.FINETUNE_KEEP_BEST, "forecast", False)  # the last epoch instead of the best
    assert search.study_name("forecast", ds, quick) != name
    monkeypatch.undo()
    assert search.study_name("forecast", ds, quick) == name
    ds.x_test = ds.x_test + 1.0  # other data
    assert search.study_name("forecast", ds, quick) != name
