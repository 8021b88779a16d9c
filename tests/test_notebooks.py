"""Every notebook runs headless under the smoke profile, and what it records is right.

The notebooks run once per test session (the ``smoke_report`` fixture in conftest.py); each test
here reads the rows one notebook recorded and checks them against independent computations.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from labkit import report, search

pytestmark = pytest.mark.slow
NOTEBOOKS = [p.stem for p in report.discover()]


def _table(out, name: str) -> pd.DataFrame:
    doc = json.loads((out / "results" / f"{name}.json").read_text())
    assert doc["profile"] == "smoke" and doc["versions"]["tensorflow"].startswith("2.21")
    return pd.DataFrame(doc["rows"])


def _key(out, name: str) -> dict:
    return json.loads((out / "results" / f"{name}.json").read_text())["key"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_renders(smoke_report, name):
    run = json.loads((smoke_report / "runs.json").read_text())[name]
    assert run["status"] == "ok", f"{name} failed: {run['error']}"
    assert (smoke_report / "html" / f"{name}.html").stat().st_size > 10_000
    executed = json.loads((smoke_report / "executed" / f"{name}.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    recorded = [json.loads(p.read_text()) for p in (smoke_report / "results").glob("*.json")]
    assert any(doc["notebook"] == name for doc in recorded), f"{name} recorded no results"


def test_01_preprocessing_cost_and_parity(smoke_report):
    cost = _table(smoke_report, "01_preprocessing_cost").set_index(["pipeline", "mode"])
    assert {"stft", "logmel", "mfcc_a"} <= set(cost.index.get_level_values(0))
    assert (cost["ms_per_clip"] > 0).all()
    # a compiled graph beats op-by-op eager execution for every pipeline
    for pipe in ("stft", "logmel", "mfcc_a"):
        assert cost.loc[(pipe, "tf.function"), "ms_per_clip"] < cost.loc[(pipe, "eager"), "ms_per_clip"]
    parity = _table(smoke_report, "01_feature_parity")
    matched = parity[parity["librosa filterbank"] == "matched"]
    assert len(matched) >= 3 and (matched["max_abs_diff"] <= matched["tolerance"]).all()


def test_02_estimates_agree_with_tflite_and_tflm(smoke_report):
    costs = _table(smoke_report, "02_model_costs").set_index("model")
    assert {"mlp", "cnn", "ds_cnn", "tinyconv", "fc_mlp", "fc_cnn", "fc_lstm"} <= set(costs.index)
    # notebook 02 profiles the MLPerf Tiny reference (12 classes)
    assert costs.loc["ds_cnn", "macs"] == 2_656_768 and costs.loc["ds_cnn", "trainable"] == 23_756
    vs = _table(smoke_report, "02_estimate_vs_measured").set_index(["model", "mode"])
    ds = vs.loc[("ds_cnn", "int8")]
    assert ds["flash_est"] == ds["tensor_data"] and ds["ram_est"] == ds["arena_head"]
    assert ds["flash_est"] < ds["tflite_bytes"] < 2 * ds["flash_est"]  # flatbuffer overhead, stated not hidden
    assert ds["ram_est"] < ds["arena_total"] < ds["ram_est"] + 12_000


def test_03_kws_training_table(smoke_report):
    from labkit import models

    table = _table(smoke_report, "03_kws_training")
    assert {"mlp", "cnn", "ds_cnn", "tinyconv"} <= set(table["model"])
    assert {"stft", "mfcc_a"} <= set(table["features"])
    assert table["top1"].between(0, 1).all() and (table["epochs"] >= 1).all()
    ds = table[(table.model == "ds_cnn") & (table.features == "mfcc_a")].iloc[0]
    assert ds["params"] == models.build("ds_cnn", (49, 10, 1), 10).count_params()
    assert ds["size_kb"] == pytest.approx(ds["params"] * 4 / 1024, abs=0.01)


def test_04_forecasting_next_to_persistence(smoke_report):
    from labkit import data

    table = _table(smoke_report, "04_forecasting").set_index("model")
    w = data.make_windows(data.load_weather("payerne"))
    mae = np.abs(w.persistence("test") - w.y_true("test")).mean(axis=(0, 1))
    assert table.loc["persistence", "T_mae"] == pytest.approx(mae[0], abs=1e-6)
    assert table.loc["persistence", "RH_mae"] == pytest.approx(mae[1], abs=1e-6)
    for m in ("fc_mlp", "fc_cnn", "fc_lstm"):
        assert table.loc[m, "T_ratio"] == pytest.approx(table.loc[m, "T_mae"] / mae[0], rel=1e-6)
        assert 0 < table.loc[m, "T_mae"] < 3 * mae[0]


def test_05_conversion_modes_sizes_and_tflm(smoke_report):
    table = _table(smoke_report, "05_conversion")
    kws = table[table["top1"].notna()].set_index("mode")
    assert list(kws.index) == ["FP32", "FP16", "INT8 W", "INT8 W+A"]
    assert kws.loc["INT8 W+A", "tflite_kb"] < kws.loc["FP16", "tflite_kb"] < kws.loc["FP32", "tflite_kb"]
    assert (kws["zlib_kb"] < kws["tflite_kb"]).all()
    assert abs(kws.loc["FP32", "diff_top1"]) < 1e-9  # the float TFLite model is the Keras model
    # each whole-prediction median sits inside its own 10th-90th percentile spread, above the interpreter call
    assert ((table["total_p10_ms"] <= table["total_ms"]) & (table["total_ms"] <= table["total_p90_ms"])).all()
    assert (table["total_ms"] > table["inference_ms"]).all()
    tflm = _table(smoke_report, "05_tflm").set_index("model")
    assert (tflm["max_diff_lsb"] <= 1).all()  # TFLite Micro vs LiteRT reference kernels


def test_06_quantization_summary_and_bit_sweep(smoke_report):
    summary = _table(smoke_report, "06_quantization_summary").set_index(["model", "variant"])
    kws_model = summary.index.get_level_values(0)[0]
    ds = summary.loc[kws_model]
    assert list(ds.index) == ["FP32", "INT8 W", "INT8 W+A", "QAT INT8"]
    assert ds.loc["INT8 W+A", "tflite_kb"] < ds.loc["FP32", "tflite_kb"] / 1.5
    assert (ds["top1"] - ds["simulated_top1"]).abs().max() <= 0.1  # the fake-quant simulation tracks the file
    bits = _table(smoke_report, "06_quantization_bits")
    wa = bits[(bits.model == kws_model) & (bits.method.isin(["PTQ W+A", "QAT W+A"]))]
    assert {4, 8} <= set(wa["bits"]) and wa["top1"].between(0, 1).all()
    # a real 4-bit-weight file: half the int8 file's weight bytes (two int4 per byte, up to one spare nibble
    # per tensor), and TFLite Micro agrees with LiteRT on it
    w4 = _table(smoke_report, "06_w4a8").set_index("variant")
    int8_bytes, int4_bytes = w4.loc["INT8 W+A (PTQ)", "int8_bytes"], w4.loc["INT4 W + INT8 A (QAT)", "int4_bytes"]
    assert 0 <= int4_bytes - int8_bytes / 2 <= 16 and w4.loc["INT4 W + INT8 A (QAT)", "int8_bytes"] == 0
    assert (w4["tflm_max_diff_lsb"] <= 1).all() and (w4["tflm_agreement"] == 1.0).all()
    feats = _table(smoke_report, "06_wa_by_features")
    assert set(feats["features"]) == {"mfcc_a", "stft"}
    assert np.allclose(feats["change"], feats["int8_wa_top1"] - feats["fp32_top1"])


def test_07_pruning_summary(smoke_report):
    summary = _table(smoke_report, "07_pruning").set_index(["task", "variant"])
    for task in ("kws", "forecast"):
        rows = summary.loc[task]
        assert list(rows.index) == ["Baseline", "Baseline fine-tuned", "Structured 0.75", "Structured 0.5",
                                    "Sparse 0.8", "Sparse 0.9"]
        # the control row is the unpruned network fine-tuned with the same budget: same shape as the baseline
        assert rows.loc["Baseline fine-tuned", "params"] == rows.loc["Baseline", "params"]
        assert rows.loc["Baseline fine-tuned", "nonzero_params"] >= rows.loc["Sparse 0.8", "nonzero_params"]
        # structured pruning removes channels: fewer parameters and MACs, a smaller file
        assert rows.loc["Structured 0.5", "params"] < rows.loc["Structured 0.75", "params"] < rows.loc["Baseline", "params"]
        assert rows.loc["Structured 0.5", "macs"] < rows.loc["Baseline", "macs"]
        assert rows.loc["Structured 0.5", "tflite_kb"] < rows.loc["Baseline", "tflite_kb"]
        # sparsity keeps the shapes but compresses: zlib shrinks as sparsity rises
        assert rows.loc["Sparse 0.9", "params"] == rows.loc["Baseline", "params"]
        assert rows.loc["Sparse 0.9", "nonzero_params"] < rows.loc["Sparse 0.8", "nonzero_params"]
        assert rows.loc["Sparse 0.9", "zlib_kb"] < rows.loc["Sparse 0.8", "zlib_kb"] < rows.loc["Baseline", "zlib_kb"]
        # a whole prediction (features or normalisation, inference, argmax) takes longer than the interpreter call
        assert (rows["total_ms"] > rows["latency_ms"]).all(), rows[["latency_ms", "total_ms"]]
    # the forecaster's second target too, Keras and int8: notebook 09 takes whole rows from this table
    fc = summary.loc["forecast"]
    assert np.isfinite(fc[["RH_mae", "RH_mae_int8"]].to_numpy(float)).all() and (fc["RH_mae_int8"] > 0).all()


@pytest.mark.parametrize("table, key_table", [("08_preset_checks", "08_tradeoffs"),      # over the search trials
                                              ("09_preset_checks", "09_preset_checks")])  # over every candidate
def test_constraint_checks_are_consistent(smoke_report, table, key_table):
    checks = _table(smoke_report, table)
    assert set(checks["preset"]) == {"kws_a", "kws_b", "kws_c", "forecast_a", "forecast_b"}
    reference = checks[checks["status"] == "reference: no model"]  # persistence, checked beside the picks
    assert set(reference["preset"]) == {"forecast_a", "forecast_b"} and (reference["config"] == search.PERSISTENCE).all()
    checks = checks[checks["status"] != "reference: no model"]
    for row in checks.to_dict(orient="records"):
        if row["value"] is None or row["value"] != row["value"]:
            assert not row["passed"]
            continue
        assert row["passed"] == (row["margin"] > 0), row
        expected = row["limit"] - row["value"] if "<" in row["constraint"] else row["value"] - row["limit"]
        assert row["margin"] == pytest.approx(expected)
    met = set(checks.groupby("preset")["passed"].all().loc[lambda s: s].index)
    assert set(_key(smoke_report, key_table)["presets_met"].replace("none", "").split(", ")) - {""} == met


def test_09_course_tables_take_the_search_trials_and_notebook_07s_rows(smoke_report):
    trials = _table(smoke_report, "08_trials")
    kws = _table(smoke_report, "09_kws_summary").set_index("Optimization")
    assert list(kws["Model"].unique()) == ["ds_cnn"] and set(kws.index) == {"FP32", "INT8 W+A"}  # smoke's rows
    # each number comes from a measurement that says where it was taken; a trial's number is that trial's
    for opt, row in kws.iterrows():
        assert row["Source"].startswith(("search trial", "notebook 05", "notebook 07", "measured here")), row
        if row["Source"].startswith("search trial"):
            trial = trials[(trials["task"] == "kws") & (trials["trial"] == int(row["Source"].split()[-1]))]
            assert float(trial["top1"].iloc[0]) == pytest.approx(row["Top-1"])
    assert len(_table(smoke_report, "09_forecast_summary")) >= 1


def test_09_claims_are_computed_from_the_recorded_tables(smoke_report):
    doc = json.loads((smoke_report / "results" / "09_claims.json").read_text())
    assert doc["headline"]["order"] == 0                                  # first on the report's index
    claims = _table(smoke_report, "09_claims").set_index("id")
    assert list(claims.index[:3]) == ["K1", "K2", "K3"] and len(claims) == 13
    for r in claims.itertuples():
        assert r.holds in (True, False, None)
        assert (r.why_not != "") == (r.holds is not True), r              # a reason whenever it does not hold
    # the numbers are notebook 07's, not typed in
    pruning = _table(smoke_report, "07_pruning").set_index(["task", "variant"])
    if claims.loc["K7", "holds"] is not None:
        assert f"int8 {pruning.loc[('kws', 'Sparse 0.9'), 'value_int8']:.3f}" in claims.loc["K7", "ours"]
    assert _key(smoke_report, "09_claims")["claims"] == 13
