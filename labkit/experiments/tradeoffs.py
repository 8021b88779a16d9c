"""Notebook 08: the course's summary tables - one row per model and optimization, with the metric of the
.tflite, its raw and zlib size and its latency - gathered from the rows notebooks 05 and 07 recorded for the
very same model, from the search's trials, or measured now through ``labkit.search``'s evaluators.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .. import config, results, train
from ..search import PARAM_DEFAULTS, _MEMO, _check_task, _key, _memo_key, make_objective, normalize_params
from .pruning import sweep_settings

__all__ = ["COURSE_MODELS", "COURSE_OPTIMIZATIONS", "COURSE_FEATURES", "QUANTIZATION_ROWS", "course_settings",
           "course_params", "recorded_rows", "course_table"]


COURSE_MODELS: dict[str, tuple[str, ...]] = {
    "kws": ("mlp", "cnn", "ds_cnn"), "forecast": ("fc_mlp", "fc_cnn", "fc_lstm")}
"""The models of the course's summary tables, in the tables' order."""

COURSE_OPTIMIZATIONS: dict[str, dict[str, Any]] = {
    "FP32": {"mode": "fp32"}, "INT8 W": {"mode": "int8_w"}, "INT8 W+A": {"mode": "int8_wa"},
    "Structured 0.75": {"keep": 0.75, "mode": "int8_wa"}, "Structured 0.5": {"keep": 0.5, "mode": "int8_wa"},
    "Sparse 0.8": {"sparsity": 0.8, "mode": "int8_wa"}, "Sparse 0.9": {"sparsity": 0.9, "mode": "int8_wa"},
}
"""The rows of the course's summary tables as search parameters. Pruned rows are fine-tuned and then
converted to INT8 W+A, as in notebook 07's summary (Structured 0.75 keeps 75 % of the channels, Sparse
0.8 zeroes 80 % of the weights)."""

COURSE_FEATURES = "mfcc_a"
"""The KWS features of the summary table (the deployment features of notebooks 05-07); the course has a
second KWS table on ``"stft"`` (``course_table(..., features="stft")``)."""

QUANTIZATION_ROWS: tuple[str, ...] = ("FP32", "INT8 W", "INT8 W+A")
"""The course-table rows that need no fine-tuning (conversions of the trained model)."""

_COLUMNS = {
    "kws": {"top1": "Top-1", "tflite_kb": "TFLite kB", "size_kb": "zlib kB", "inference_ms": "Latency ms",
            "total_ms": "Total ms"},
    "forecast": {"T_mae": "T MAE", "RH_mae": "H MAE", "size_kb": "zlib kB", "tflite_kb": "TFLite kB",
                 "inference_ms": "Latency ms"},
}


def course_settings(task: str, cfg: config.Profile, features: str = COURSE_FEATURES) -> dict[str, Any]:
    """``models``, ``optimizations``, ``features`` (KWS) and ``pruned_models`` of :func:`course_table` for a
    profile: everything, except under ``smoke``, which keeps the rows its search space already measures
    (one model, two rows), and under ``quick``, whose KWS pruning rows are measured for DS-CNN on the MFCC
    features only (notebook 07 fine-tuned it; each other pruned row would cost another ``prune_epochs``
    fine-tune) and whose STFT table has the quantization rows only. Used by notebook 08."""
    _check_task(task)
    out: dict[str, Any]
    if cfg.name == "smoke":
        out = ({"models": ("ds_cnn",), "optimizations": ("FP32", "INT8 W+A")} if task == "kws"
               else {"models": ("fc_mlp",), "optimizations": ("INT8 W+A", "Sparse 0.8")})
    else:
        out = {"models": COURSE_MODELS[task], "optimizations": tuple(COURSE_OPTIMIZATIONS)}
    if task == "kws":
        out["features"] = features
        if cfg.name == "quick" and features == COURSE_FEATURES:
            out["pruned_models"] = ("ds_cnn",)
        elif cfg.name == "quick":
            out["optimizations"] = QUANTIZATION_ROWS
    return out


def course_params(task: str, model: str, optimization: str, features: str = COURSE_FEATURES) -> dict[str, Any]:
    """The full search parameters of one row of the course's table (KWS: on ``features``).
    Used by :func:`course_table`."""
    if optimization not in COURSE_OPTIMIZATIONS:
        raise ValueError(f"unknown optimization {optimization!r}; rows: {list(COURSE_OPTIMIZATIONS)}")
    extra = {"features": features} if task == "kws" else {}
    return normalize_params(task, {"model": model, **extra, **COURSE_OPTIMIZATIONS[optimization]})


def _close(a: Any, b: Any, tol: float) -> bool:
    try:
        return abs(float(a) - float(b)) <= tol
    except (TypeError, ValueError):
        return False


def _load_doc(table: str, directory: str | Path | None) -> dict[str, Any] | None:
    try:
        return results.load(table, directory)
    except FileNotFoundError:
        return None


def _same_settings(doc: Mapping[str, Any] | None, cfg: config.Profile, expected: Mapping[str, Any]) -> bool:
    """Whether a recorded document comes from this profile (when it says) with these parameters."""
    if not doc or doc.get("profile") not in ("", None, cfg.name):
        return False
    return all(v is None and k not in doc["params"] or doc["params"].get(k) == v for k, v in expected.items())


def recorded_rows(task: str, baselines: Mapping[str, Mapping[str, Any]], cfg: config.Profile, *,
                  dataset_name: str = "", directory: str | Path | None = None,
                  features: str = COURSE_FEATURES) -> dict[tuple[str, str], dict[str, Any]]:
    """Course-table rows notebooks 05 and 07 already measured, ``{(model, optimization): metrics}``, kept only
    where they were measured the way ``search.evaluate_kws`` / ``search.evaluate_forecast`` would: same profile
    settings (benchmark runs, evaluation limit, fine-tuning epochs) and the *same trained model*: the
    recorded float metric of each model must equal ``baselines[model]`` (the metrics of the model in
    today's cache), so rows of an older model are ignored. Forecasters' INT8 W+A rows are never taken
    (notebooks 05 and 07 calibrate on the training weeks only, the evaluator on train + validation).
    KWS rows of notebook 07 have no total latency and time the interpreter call alone.
    Used by notebook 08 (through :func:`course_table`)."""
    _check_task(task)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    data_key = {"kws": ("kws_dataset", dataset_name or None), "forecast": ("forecast_dataset", cfg.forecast_dataset)}
    expected = {"eval_limit": cfg.eval_limit, "bench_runs": cfg.bench_runs}
    if data_key[task][1] is not None:
        expected[data_key[task][0]] = data_key[task][1]
    doc = _load_doc("05_conversion", directory)
    if _same_settings(doc, cfg, expected):
        for r in doc["rows"]:
            model, mode = str(r.get("model", "")).split(" · ")[0], r.get("mode")
            if model not in baselines or mode not in ("FP32", "INT8 W", "INT8 W+A"):
                continue
            sizes = {"size_kb": r["zlib_kb"], "tflite_kb": r["tflite_kb"], "inference_ms": r["inference_ms"],
                     "total_ms": r["total_ms"], "source": "notebook 05"}
            if task == "kws" and r["model"] == f"{model} · {features}" \
                    and _close(r.get("keras_top1"), baselines[model].get("top1"), 1e-9):
                out[(model, mode)] = {"top1": r["top1"], **sizes}
            elif task == "forecast" and mode != "INT8 W+A" \
                    and _close(r.get("keras_T_mae"), baselines[model].get("T_mae"), 1e-4):
                out[(model, mode)] = {"T_mae": r["T_mae"], "RH_mae": r["RH_mae"], **sizes}
    if task != "kws" or cfg.eval_limit is not None:  # notebook 07 scores the whole test split
        return out
    settings = sweep_settings(cfg)
    expected = {"features": features, "norm": "l1", "dataset": dataset_name or None,
                **{k: settings[k] for k in ("finetune_epochs", "bench_runs", "max_train_samples")}}
    if not dataset_name:
        expected.pop("dataset")
    doc = _load_doc("07_pruning", directory)
    if _same_settings(doc, cfg, expected):
        rows = [r for r in doc["rows"] if r.get("task") == "kws" and r.get("model") in baselines]
        same_model = {r["model"] for r in rows if r["variant"] == "Baseline"
                      and _close(r["value"], baselines[r["model"]].get("top1"), 1e-9)}
        for r in rows:
            if r["model"] in same_model and r["variant"] in COURSE_OPTIMIZATIONS:
                out[(r["model"], r["variant"])] = {
                    "top1": r["value_int8"], "size_kb": r["zlib_kb"], "tflite_kb": r["tflite_kb"],
                    "inference_ms": r["latency_ms"], "total_ms": float("nan"), "source": "notebook 07"}
    return out


def course_table(task: str, dataset: Any, cfg: config.Profile, *, seed: int = 0, models: Sequence[str] | None = None,
                 optimizations: Sequence[str] | None = None, trials: pd.DataFrame | None = None,
                 gather: bool = True, directory: str | Path | None = None, progress: bool = True,
                 features: str = COURSE_FEATURES, pruned_models: Sequence[str] | None = None) -> pd.DataFrame:
    """The course's summary table of ``task``: one row per model and optimization (:data:`COURSE_MODELS`
    x :data:`COURSE_OPTIMIZATIONS`) with the metric of the .tflite, its raw and zlib size in kB and its
    latency, and where each number comes from (``Source``): a configuration measured in this process or
    found among ``trials`` (a search's trials), else a row notebook 05 or 07 recorded for the very same
    model (``gather=True``, see :func:`recorded_rows`), else it is measured now through the caches. A
    configuration that cannot be built (structured pruning of the LSTM) gets a note instead of numbers.
    KWS tables use ``features`` (the course has one table per feature type: ``"mfcc_a"``, ``"stft"``);
    ``pruned_models`` (default: all) are the models whose pruning rows are measured, the others' pruning
    rows say so instead of costing a fine-tune each (:func:`course_settings`). Used by notebook 08."""
    from tqdm.auto import tqdm

    _check_task(task)
    models = list(models or COURSE_MODELS[task])
    optimizations = list(optimizations or COURSE_OPTIMIZATIONS)
    evaluate = make_objective(task, dataset, cfg, seed=seed)
    by_key: dict[tuple, dict[str, Any]] = {}
    if trials is not None and len(trials):
        params = [c for c in trials.columns if c in PARAM_DEFAULTS[task]]
        for r in trials.to_dict("records"):
            key = _key(normalize_params(task, {k: r[k] for k in params}))
            by_key.setdefault(key, {**r, "source": f"search trial {r['trial']}"})
    recorded: dict[tuple[str, str], dict[str, Any]] = {}
    if gather:
        with train.quiet_cache_hits():
            if task == "kws":
                base = {m: train.train_kws(m, dataset, features, **train.kws_settings(cfg), seed=seed).metrics
                        for m in models}
            else:
                base = {m: train.train_forecaster(m, dataset, **train.forecast_settings(cfg), seed=seed).metrics
                        for m in models}
        recorded = recorded_rows(task, base, cfg, dataset_name=str(getattr(dataset, "name", "")), directory=directory,
                                 features=features)
    rows = []
    cells = [(m, o) for m in models for o in optimizations]
    for model, opt in tqdm(cells, desc=f"{task} summary table", disable=not progress, leave=False):
        p = course_params(task, model, opt, features)
        memo = _memo_key(task, dataset, cfg, seed, p)
        row: dict[str, Any] = {"Model": model, "Optimization": opt}
        if opt not in QUANTIZATION_ROWS and pruned_models is not None and model not in pruned_models:
            found = {"source": f"not measured under the {cfg.name} profile (fine-tuning budget)"}
        elif _key(p) in by_key:
            found = by_key[_key(p)]
        elif memo in _MEMO:
            found = {**_MEMO[memo], "source": "measured here"}
        elif (model, opt) in recorded:
            found = recorded[(model, opt)]
        else:
            try:
                found = {**evaluate(p), "source": "measured here"}
            except NotImplementedError as exc:
                found = {"source": f"not applicable: {str(exc).split(':')[0].split('.')[0]}"}
        for k, label in _COLUMNS[task].items():
            row[label] = float(found[k]) if found.get(k) is not None else float("nan")
        row["Source"] = found["source"]
        rows.append(row)
    return pd.DataFrame(rows)
