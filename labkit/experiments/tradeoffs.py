"""Notebooks 08 and 09: reading the trade-off search (notebook 08: latency and forecasting notes, every
measured candidate) and the course's summary tables (notebook 09) - one row per model and optimization, with
the metric of the .tflite, its raw and zlib size and its latency - gathered from the rows notebooks 05 and 07
recorded for the very same model, from notebook 08's search trials, or measured now through
``labkit.search``'s evaluators.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .. import config, estimate, features, metrics, models, results, search, train
from ..estimate import CORTEX_M4, McuModel
from ..search import PARAM_DEFAULTS, _MEMO, _check_task, _key, _memo_key, make_objective, normalize_params
from .pruning import sweep_settings

__all__ = ["COURSE_MODELS", "COURSE_OPTIMIZATIONS", "COURSE_FEATURES", "QUANTIZATION_ROWS", "course_settings",
           "course_params", "recorded_rows", "course_table", "mcu_estimates", "latency_limits_note",
           "forecast_limits_note", "latency_drivers", "candidates", "course_view", "compare_recorded"]


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
    fine-tune) and whose STFT table has the quantization rows only. Used by notebook 09."""
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
    today's cache), so rows of an older model are ignored. Every int8 W+A row, recorded or measured here, is
    calibrated by the kit's one rule (``Task.calibration_inputs``), so recorded W+A rows are taken too.
    Rows of notebook 07 (the KWS model and the forecaster it pruned) take its int8 file's metrics (a
    forecaster's both MAEs: results recorded before 07 kept ``RH_mae_int8`` are skipped), its interpreter call
    (``latency_ms``) and whole prediction (``total_ms``: NaN in results recorded before it was measured).
    Used by notebook 09 (through :func:`course_table`)."""
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
            elif task == "forecast" and _close(r.get("keras_T_mae"), baselines[model].get("T_mae"), 1e-4):
                out[(model, mode)] = {"T_mae": r["T_mae"], "RH_mae": r["RH_mae"], **sizes}
    if cfg.eval_limit is not None:  # notebook 07 scores the whole test split
        return out
    settings = sweep_settings(cfg)
    expected = {"norm": "l1", **{k: settings[k] for k in ("finetune_epochs", "bench_runs", "max_train_samples")}}
    if task == "kws":
        expected.update({"features": features, "dataset": dataset_name or None})
        if not dataset_name:
            expected.pop("dataset")
    else:
        expected["forecast_dataset"] = cfg.forecast_dataset
    doc = _load_doc("07_pruning", directory)
    if not _same_settings(doc, cfg, expected):
        return out
    metric, extra, tol = ("top1", None, 1e-9) if task == "kws" else ("T_mae", "RH_mae", 1e-4)
    rows = [r for r in doc["rows"] if r.get("task") == task and r.get("model") in baselines]
    same_model = {r["model"] for r in rows if r["variant"] == "Baseline"
                  and _close(r["value"], baselines[r["model"]].get(metric), tol)}
    for r in rows:
        if r["model"] not in same_model or r["variant"] not in COURSE_OPTIMIZATIONS:
            continue
        if extra is not None and f"{extra}_int8" not in r:  # recorded before 07 kept the other target
            continue
        out[(r["model"], r["variant"])] = {
            metric: r["value_int8"], **({extra: r[f"{extra}_int8"]} if extra else {}), "size_kb": r["zlib_kb"],
            "tflite_kb": r["tflite_kb"], "inference_ms": r["latency_ms"], "total_ms": r.get("total_ms", float("nan")),
            "source": "notebook 07"}
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
    rows say so instead of costing a fine-tune each (:func:`course_settings`). Used by notebook 09."""
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


# ------------------------------------------------------------------------ reading the presets (notebook 08)
def mcu_estimates(trials: pd.DataFrame, num_classes: int, *, mcu: McuModel = CORTEX_M4) -> pd.DataFrame:
    """``trials`` (KWS) with the MACs of each configuration's network (built at its width and features; a
    structured row at ``alpha x keep``, the architecture channel pruning leaves) and ``mcu_ms_est``, the kit's
    microcontroller latency estimate from them (``estimate.CORTEX_M4``: MACs x cycles per MAC / clock).
    Used by notebook 08."""
    out = trials.copy()
    macs: dict[tuple, int] = {}
    for r in out.to_dict("records"):
        k = (r["model"], r["features"], float(r.get("alpha", 1.0)) * float(r.get("keep", 1.0)))
        if k not in macs:
            net = models.build(k[0], features.output_shape(k[1]), num_classes, alpha=k[2])
            macs[k] = int(estimate.totals(net)["macs"])
    out["macs"] = [macs[(r["model"], r["features"], float(r.get("alpha", 1.0)) * float(r.get("keep", 1.0)))]
                   for r in out.to_dict("records")]
    out["mcu_ms_est"] = [mcu.latency_ms(m) for m in out["macs"]]
    return out


def latency_limits_note(trials: pd.DataFrame, *, mcu: McuModel = CORTEX_M4) -> str:
    """What the KWS presets' latency limits mean on this host and on the kit's microcontroller estimate,
    computed from ``trials`` (with :func:`mcu_estimates`' columns). Every number is measured or estimated
    here. Used by notebook 08."""
    if not len(trials):
        return "No KWS trials: nothing to compare the latency limits with."
    t = trials.drop_duplicates("config")
    small = t.loc[t["macs"].idxmin()]
    lines = []
    for p in search.presets_for("kws"):
        for c in p.constraints:
            if c.metric not in ("inference_ms", "total_ms"):
                continue
            host = t[c.metric].astype(float)
            what = "inference" if c.metric == "inference_ms" else "the whole prediction (features + inference + argmax)"
            lines.append(f"{p.name} asks {what} {c.op} {c.limit:g} ms. On this host (LiteRT, one thread) the "
                         f"{len(t)} configurations take {host.min():.3f}-{host.max():.3f} ms: "
                         f"{int(sum(c.passed(v) for v in host))} of {len(t)} pass.")
            budget = c.limit * 1e-3 * mcu.clock_hz / mcu.cycles_per_mac
            fit = int(sum(c.passed(v) for v in t["mcu_ms_est"]))
            lines.append(f"  On the kit's microcontroller estimate ({mcu.name}, {mcu.cycles_per_mac:.1f} cycles/MAC) "
                         f"their inference alone takes {t['mcu_ms_est'].min():.0f}-{t['mcu_ms_est'].max():.0f} ms; "
                         f"{c.limit:g} ms there allows {budget:,.0f} MACs, {small['macs'] / budget:.0f}x fewer than "
                         f"the smallest network searched ({small['model']}, {small['macs']:,} MACs): "
                         f"{fit} of {len(t)} would fit.")
    lines.append("Which hardware the course's latency limits assume, we do not know: they are met on this host's CPU "
                 "and missed by far on the Cortex-M4 estimate, so here they only rank host latencies.")
    return "\n".join(lines)


def forecast_limits_note(trials: pd.DataFrame, reference: Mapping[str, Any], *, dataset: str = "") -> str:
    """The forecasting presets' error limits next to the persistence forecast (``reference``,
    ``search.persistence_reference``) and the best trial: which limits the free forecast already meets and
    how far below persistence the others ask. Computed from the trials. Used by notebook 08."""
    where = f" of {dataset}" if dataset else ""
    lines = [f"Persistence (no model, 0 B) on the {reference.get('n_test', '?')} test windows{where}: "
             f"T MAE {reference['T_mae']:.3f} °C, RH MAE {reference['RH_mae']:.2f} %RH."]
    for p in search.presets_for("forecast"):
        for c in p.constraints:
            if c.metric not in ("T_mae", "RH_mae"):
                continue
            ref = float(reference[c.metric])
            best = trials.loc[trials[c.metric].astype(float).idxmin()] if len(trials) else None
            text = f"{p.name}: {c} is {c.limit / ref:.2f}x persistence's error"
            if c.passed(ref):
                text += " and persistence already meets it: it does not separate a model from no model."
            elif best is not None:
                text += (f"; the best of the {trials['config'].nunique()} configurations searched, {best['config']}, "
                         f"reaches {float(best[c.metric]):.3g} "
                         f"({float(best[c.metric]) / ref:.2f}x persistence)"
                         + (": it meets it." if c.passed(float(best[c.metric])) else ": not met."))
            lines.append(text)
    return "\n".join(lines)


def latency_drivers(trials: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """How the KWS trials' total latency splits into features and inference, per frame setting and per network
    (medians over distinct configurations), and a sentence saying which of the two choices moved the total more,
    against the timing noise: the spread of the *same* feature computation timed in different trials.
    Used by notebook 08 (its take-away on total latency)."""
    t = trials.drop_duplicates("config")
    cols = ["preprocessing_ms", "inference_ms", "total_ms"]
    table = pd.concat([t.groupby("features")[cols].median().rename(index=lambda v: f"features {v}"),
                       t.groupby("model")[cols].median().rename(index=lambda v: f"network {v}")])
    share = float((t["preprocessing_ms"] / t["total_ms"]).median())
    noise = float(t.groupby("features")["preprocessing_ms"].agg(lambda v: v.max() - v.min()).max())
    text = (f"The features take {share:.0%} of the total latency on this host (median over {len(t)} configurations). "
            f"The same feature computation timed in different trials spreads over {noise:.3f} ms: timing noise.")
    moves = {}
    for what, col in (("frame settings", "features"), ("network", "model")):
        med = t.groupby(col)["total_ms"].median()
        if len(med) > 1:
            moves[what] = float(med.max() - med.min())
            text += f" Changing the {what} ({', '.join(med.index)}) moves the median total by {moves[what]:.3f} ms."
    if moves:
        big = max(moves, key=moves.get)
        text += (f" The {big} move it more, by more than the noise." if moves[big] > noise else
                 " Neither moves it by more than the timing noise: this search cannot rank them.")
    return table, text


# ---------------------------------------------------------- every measured candidate, readable tables (notebook 09)
def candidates(task: str, trials: pd.DataFrame, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every configuration the notebook measured, one frame for ``search.best_configs``: the search ``trials``
    (``source`` "trial N") and the rows of :func:`course_table` the search did not try (pruned rows recorded
    by notebook 07 or measured here, ``source`` as in the table), with the trials' columns and ``config``
    labels. Used by notebook 09."""
    _check_task(task)
    rows = trials.drop(columns=["pareto", "beats_persistence"], errors="ignore").assign(
        source=[f"trial {t}" for t in trials["trial"]]) if len(trials) else pd.DataFrame()
    extra = []
    inverse = {label: k for k, label in _COLUMNS[task].items()}
    for r in ([] if table is None else table.to_dict("records")):
        if str(r.get("Source", "")).startswith("search trial") or pd.isna(r.get(_COLUMNS[task]["size_kb"])):
            continue
        p = course_params(task, r["Model"], r["Optimization"])
        extra.append({"trial": None, "config": search.describe(p, task), **p,
                      **{k: r[label] for label, k in inverse.items() if label in r}, "source": r["Source"]})
    return pd.concat([rows, pd.DataFrame(extra)], ignore_index=True) if extra else rows


def _tags(sources: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Short tags for the ``Source`` sentences of a course table, and their legend."""
    known = {"notebook 05": ("nb05", "the row notebook 05 recorded for the same trained model"),
             "notebook 07": ("nb07", "the row notebook 07 recorded for the same trained model"),
             "measured here": ("here", "measured by this notebook (through the caches)")}
    tags, legend = [], {}
    for s in sources:
        s = str(s)
        if s.startswith("search trial"):
            tag, meaning = "T" + s.split()[-1], "search trial <n> of notebook 08's study"
            legend.setdefault("T<n>", meaning)
        elif s in known:
            tag, meaning = known[s]
            legend[tag] = meaning
        else:
            tag = next((k for k, v in legend.items() if v == s), f"n{sum(k.startswith('n') and k[1:].isdigit() for k in legend) + 1}")
            legend[tag] = s
        tags.append(tag)
    return tags, legend


def course_view(table: pd.DataFrame, task: str, *, n_test: int | None = None,
                reference: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, str]:
    """A readable copy of a :func:`course_table`: short ``Source`` tags (the returned legend says what each
    means); for KWS with ``n_test`` clips, ``±2SE``: two standard errors of each top-1
    (``metrics.accuracy_se``): two rows closer than that cannot be told apart on this test set; for
    forecasting with the persistence ``reference`` (``search.persistence_reference``), ``vs persistence``:
    "beats" only when both MAEs are below persistence's. Used by notebook 09."""
    view = table.copy()
    view["Source"], legend = _tags(view["Source"])
    if task == "kws" and n_test:
        view.insert(view.columns.get_loc("Top-1") + 1, "±2SE",
                    [2 * metrics.accuracy_se(v, n_test) if v == v else float("nan") for v in view["Top-1"]])
    text = "Source: " + "; ".join(f"{k} = {v}" for k, v in legend.items())
    if task == "forecast" and reference is not None:
        view.insert(view.columns.get_loc("H MAE") + 1, "vs persistence",
                    ["-" if t != t else "beats" if t < reference["T_mae"] and h < reference["RH_mae"] else "DOES NOT BEAT"
                     for t, h in zip(view["T MAE"], view["H MAE"])])
        text += (f"\nvs persistence: both MAEs below persistence's (T {reference['T_mae']:.3f} °C, "
                 f"RH {reference['RH_mae']:.2f} %RH, no model)")
    return view, text


def compare_recorded(table: pd.DataFrame, task: str, *, n_test: int | None = None,
                     directory: str | Path | None = None) -> pd.DataFrame:
    """The rows of a :func:`course_table` that notebook 07 also recorded (same model and optimization, its int8
    file), side by side: 07's value, this table's, the difference and where this table's number comes from.
    For top-1 with ``n_test`` clips, ``noise`` says whether the difference is inside two standard errors
    (``metrics.accuracy_difference``). An empty frame when 07 recorded nothing. Used by notebook 09."""
    doc = _load_doc("07_pruning", directory)
    if not doc:
        return pd.DataFrame()
    label = {"kws": "Top-1", "forecast": "T MAE"}[_check_task(task)]
    here = table.set_index(["Model", "Optimization"])
    rows = []
    for r in doc["rows"]:
        key = (r.get("model"), r.get("variant"))
        if r.get("task") != task or key not in here.index or pd.isna(here.loc[key, label]):
            continue
        ours, theirs = float(here.loc[key, label]), float(r["value_int8"])
        row = {"Model": key[0], "Optimization": key[1], f"07 {label}": theirs, f"09 {label}": ours,
               "difference": ours - theirs, "09 source": here.loc[key, "Source"]}
        if task == "kws" and n_test:
            row["noise"] = metrics.accuracy_difference(ours, theirs, n_test)["noise"]
        rows.append(row)
    return pd.DataFrame(rows)
