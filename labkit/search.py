"""Trade-off search under the course's constraints (notebook 08).

The course's homework question, "which model meets these constraints?", answered by search:
an Optuna multi-objective study over the optimisation space (model family, width multiplier
alpha, sparsity, quantization mode, feature preset) whose objectives are *measured* for every
trial (metric, zlib-compressed TFLite size, inference latency, total latency).

Storage is an Optuna RDB URL: SQLite by default (one machine; an interrupted study resumes
where it stopped and never loses finished trials); the same study runs from many worker
processes or machines against a shared database server (``pip install "tinyml-labkit[postgres]"``)::

    labkit search --task forecast --trials 100 --workers 2 --storage postgresql://user:pw@host/db --study fc

started in as many shells or machines as you like: Optuna hands each worker different trials, and the
trial of a worker that dies is retried. Opening, sharing and watching studies lives in
:mod:`labkit.studies` (re-exported here: :func:`open_study`, :func:`run_study`, :func:`trials_frame`).

Main entry points (notebook 08):

* :data:`PRESETS`, :func:`check`, :func:`meets`, :func:`best_per_preset` / :func:`best_configs`,
  :func:`preset_checks`: constraints, pass/fail and margins;
* :func:`search_space`, :func:`evaluate_kws`, :func:`evaluate_forecast`, :func:`make_objective`: what a
  trial is and how it is measured (training, pruning and conversion through the caches);
* :func:`open_study`, :func:`run_study`, :func:`run_search`: resumable, shareable Optuna studies;
* :func:`pareto_mask`: Pareto fronts (drawn with the constraint boxes by ``labkit.plots.plot_fronts``).

A trial is measured through ``labkit.tasks.Task`` (the same scoring, calibration inputs and pruning
fine-tune as notebooks 05-07). The course's summary tables are ``labkit.experiments.tradeoffs``.
"""
from __future__ import annotations

import dataclasses
import math
import operator
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import config, features, metrics, models, prune, tasks, tflite, train
from .studies import (REFERENCE_ATTR, StorageError, default_storage, mask_url, open_study,  # noqa: F401
                      run_study, trials_frame)
from .tasks import Task

KB = 1024
"""Bytes in a kB for every size in this module (as the course computes ``os.path.getsize(f) / 1024``)."""


@dataclasses.dataclass(frozen=True)
class Constraint:
    """One bound on one measured quantity, e.g. ``Constraint("T_mae", "<", 0.5, "°C")``."""

    metric: str
    op: str  # "<" or ">"
    limit: float
    unit: str = ""

    def __post_init__(self) -> None:
        if self.op not in ("<", ">"):
            raise ValueError(f"constraint operator must be '<' or '>', not {self.op!r}")

    def margin(self, value: float) -> float:
        """How far inside the bound ``value`` is (positive = met, negative = missed), in the metric's unit."""
        return self.limit - value if self.op == "<" else value - self.limit

    def passed(self, value: float | None) -> bool:
        """Whether ``value`` satisfies the bound strictly (a missing or NaN value fails)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return {"<": operator.lt, ">": operator.gt}[self.op](value, self.limit)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.limit:g}{(' ' + self.unit) if self.unit else ''}"


@dataclasses.dataclass(frozen=True)
class ConstraintPreset:
    """A named set of constraints from the course, for one task ("kws" or "forecast")."""

    name: str
    task: str
    constraints: tuple[Constraint, ...]
    description: str = ""

    def __str__(self) -> str:
        return f"{self.name}: " + ", ".join(str(c) for c in self.constraints)


PRESETS: dict[str, ConstraintPreset] = {
    p.name: p for p in (
        ConstraintPreset("forecast_a", "forecast", (
            Constraint("T_mae", "<", 0.5, "°C"), Constraint("RH_mae", "<", 1.8, "%RH"),
            Constraint("size_kb", "<", 2.0, "kB")), "forecasting, version a"),
        ConstraintPreset("forecast_b", "forecast", (
            Constraint("T_mae", "<", 0.6, "°C"), Constraint("RH_mae", "<", 1.9, "%RH"),
            Constraint("size_kb", "<", 1.7, "kB")), "forecasting, version b"),
        ConstraintPreset("kws_a", "kws", (
            Constraint("top1", ">", 0.90), Constraint("size_kb", "<", 25.0, "kB")), "KWS: accuracy + size"),
        ConstraintPreset("kws_b", "kws", (
            Constraint("top1", ">", 0.90), Constraint("size_kb", "<", 35.0, "kB"),
            Constraint("inference_ms", "<", 1.5, "ms")), "KWS: accuracy + size + inference latency"),
        ConstraintPreset("kws_c", "kws", (
            Constraint("top1", ">", 0.90), Constraint("size_kb", "<", 45.0, "kB"),
            Constraint("total_ms", "<", 40.0, "ms")), "KWS: accuracy + size + total latency"),
    )
}
"""The course's constraint presets. Sizes are zlib-compressed TFLite files in kB (1 kB = 1024 B)."""


def presets_for(task: str) -> list[ConstraintPreset]:
    """The presets of one task ("kws" or "forecast"). Used by notebook 08."""
    found = [p for p in PRESETS.values() if p.task == task]
    if not found:
        raise ValueError(f"no constraint presets for task {task!r}; tasks: kws, forecast")
    return found


def check(measured: Mapping[str, Any], preset: ConstraintPreset | str) -> pd.DataFrame:
    """One row per constraint: measured value, limit, pass/fail and margin. Used by notebook 08."""
    preset = PRESETS[preset] if isinstance(preset, str) else preset
    rows = []
    for c in preset.constraints:
        value = measured.get(c.metric)
        value = None if value is None else float(value)
        rows.append({"preset": preset.name, "constraint": str(c), "metric": c.metric, "value": value,
                     "limit": c.limit, "passed": c.passed(value),
                     "margin": None if value is None else c.margin(value)})
    return pd.DataFrame(rows)


def meets(measured: Mapping[str, Any], preset: ConstraintPreset | str) -> bool:
    """Whether every constraint of ``preset`` holds for ``measured``. Used by notebook 08."""
    return bool(check(measured, preset)["passed"].all())


def pareto_mask(frame: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``frame``.

    ``objectives`` maps a column to "min" or "max". A row is dominated when another row is at least as
    good on every objective and strictly better on one. Rows with a NaN objective are never on the front.
    Used by notebook 08.
    """
    if not objectives:
        raise ValueError("pareto_mask needs at least one objective")
    for col, sense in objectives.items():
        if sense not in ("min", "max"):
            raise ValueError(f"objective {col!r}: sense must be 'min' or 'max', not {sense!r}")
        if col not in frame.columns:
            raise KeyError(f"no column {col!r} in the trials; columns: {list(frame.columns)}")
    values = np.column_stack([
        frame[c].to_numpy(dtype=float) * (1.0 if s == "min" else -1.0) for c, s in objectives.items()
    ]) if len(frame) else np.zeros((0, len(objectives)))
    valid = ~np.isnan(values).any(axis=1)
    mask = np.zeros(len(frame), dtype=bool)
    for i in np.flatnonzero(valid):
        others = values[valid]
        dominated = np.any(np.all(others <= values[i], axis=1) & np.any(others < values[i], axis=1))
        mask[i] = not dominated
    return mask


NO_TRIALS = "no trials"
NONE_BEATS_PERSISTENCE = "no trial beats persistence"
"""The two statuses of a :func:`best_per_preset` row without a configuration in it."""


def best_per_preset(trials: pd.DataFrame, presets: Iterable[ConstraintPreset], *,
                    primary: str, sense: str = "max") -> pd.DataFrame:
    """For each preset: the passing trial with the best ``primary`` metric (or 'none meets it', with the
    trial that comes closest: the largest worst-case relative margin). Rows whose ``beats_persistence`` column
    (forecasting, :func:`mark_persistence`) is False are no candidates: a forecaster that does not beat the
    free persistence forecast is never "best" nor "closest". Used by notebook 08."""
    rows = []
    measured = len(trials)
    if "beats_persistence" in trials.columns:
        trials = trials[trials["beats_persistence"].astype(bool)]
    for preset in presets:
        checks = [check(r, preset) for r in trials.to_dict(orient="records")]
        passing = [i for i, c in enumerate(checks) if c["passed"].all()]
        if passing:
            vals = trials.iloc[passing][primary].to_numpy(dtype=float)
            i = passing[int(np.nanargmax(vals) if sense == "max" else np.nanargmin(vals))]
            status = "met"
        else:
            def closeness(c: pd.DataFrame) -> float:
                rel = [m / abs(l) if m is not None and m == m and l else -math.inf  # missing value: the worst
                       for m, l in zip(c["margin"], c["limit"])]
                return min(rel)
            if not checks:  # none measured, or none of them beats persistence: nothing to pick or show
                row = {"preset": preset.name, "constraints": str(preset).split(": ", 1)[1], "status": NO_TRIALS}
                if measured:
                    row.update(status=NONE_BEATS_PERSISTENCE, beats_persistence=False)
                rows.append(row)
                continue
            i = int(np.argmax([closeness(c) for c in checks]))
            status = "not met (closest shown)"
        row = {"preset": preset.name, "constraints": str(preset).split(": ", 1)[1], "status": status}
        row.update(trials.iloc[i].to_dict())
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- persistence, the free forecaster
PERSISTENCE = "persistence (no model, 0 B)"
"""The ``config`` label of the persistence forecast: the last observed value repeated, no model, no bytes."""


def persistence_reference(windows: Any, cfg: config.Profile) -> dict[str, Any]:
    """The persistence forecast scored like a trial (``T_mae`` and ``RH_mae`` on the same test windows as
    :func:`evaluate_forecast`: the first ``cfg.eval_limit``), with ``size_kb`` 0: the zero-cost reference every
    forecaster must beat. Used by :func:`run_search` (notebook 08) and notebook 06's bit-width figure."""
    y = np.asarray(windows.y_test)
    n = len(y) if cfg.eval_limit is None else max(0, min(len(y), int(cfg.eval_limit)))
    true = (np.asarray(windows.y_true("test"), np.float64) if hasattr(windows, "y_true")
            else np.asarray(windows.denormalize_targets(y), np.float64))[:n]
    scores = metrics.forecast_mae(true, metrics.persistence(windows)[:n], list(windows.target_names))
    return {"trial": "ref", "config": PERSISTENCE, "model": "persistence",
            "T_mae": float(scores["T_mae"]), "RH_mae": float(scores["RH_mae"]), "size_kb": 0.0, "tflite_kb": 0.0,
            "params": 0.0, "n_test": n}


def mark_persistence(trials: pd.DataFrame, reference: Mapping[str, Any]) -> pd.DataFrame:
    """``trials`` with a ``beats_persistence`` column (True when both the T and the RH MAE are below the
    persistence forecast's) and ``pareto`` recomputed over :data:`OBJECTIVES` with persistence counted as a
    candidate: a trial persistence dominates (no better on any error, and larger) leaves the front, and a trial
    that does not beat persistence on both variables is never on it. Used by :func:`run_search` (notebook 08)."""
    out = trials.copy()
    out["beats_persistence"] = ((out["T_mae"] < reference["T_mae"]) & (out["RH_mae"] < reference["RH_mae"])
                                ).to_numpy(bool)
    objectives = OBJECTIVES["forecast"]
    both = pd.concat([pd.DataFrame([{k: reference[k] for k in objectives}]), out[list(objectives)]],
                     ignore_index=True)
    out["pareto"] = pareto_mask(both, objectives)[1:] & out["beats_persistence"].to_numpy(bool)
    return out


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


# ------------------------------------------------------------------------------------ the search space
TASKS: tuple[str, ...] = tasks.TASKS
"""The two tasks of the course."""

OBJECTIVES: dict[str, dict[str, str]] = {
    "kws": {"top1": "max", "size_kb": "min", "inference_ms": "min", "total_ms": "min"},
    "forecast": {"T_mae": "min", "RH_mae": "min", "size_kb": "min"},
}
"""The objectives Optuna optimises per task, in order, with their direction. Every trial also stores the
other measured quantities (raw file size, preprocessing time, parameters ...) as trial attributes; the
forecasters' latency is measured and stored but not optimised (a few microseconds, mostly noise)."""

PRIMARY: dict[str, tuple[str, str]] = {"kws": ("top1", "max"), "forecast": ("T_mae", "min")}
"""The headline metric per task (what "best" means among the configurations that meet a preset)."""

PARAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "kws": {"model": "ds_cnn", "alpha": 1.0, "features": "mfcc_a", "keep": 1.0, "sparsity": 0.0, "mode": "int8_wa"},
    "forecast": {"model": "fc_mlp", "alpha": 1.0, "keep": 1.0, "sparsity": 0.0, "mode": "int8_wa"},
}
"""What a parameter left out of a search space means. ``alpha``: width multiplier (the network is
built narrower and *trained* from scratch, through the model cache); ``keep``: structured pruning,
the fraction of channels kept (1.0 = none removed, then fine-tuned); ``sparsity``: unstructured
magnitude pruning, the fraction of weights set to zero (0.0 = none, then fine-tuned); ``mode``: the
TFLite conversion (``labkit.tflite.MODES``); ``features``: the KWS feature preset
(``labkit.features.PRESETS``; ``mfcc_a`` and ``mfcc_b`` differ in frame length and step, hence in
preprocessing time)."""

SPACES: dict[str, dict[str, dict[str, list[Any]]]] = {
    "smoke": {
        "kws": {"model": ["ds_cnn"], "mode": ["fp32", "int8_wa"]},
        "forecast": {"model": ["fc_mlp"], "sparsity": [0.0, 0.8], "mode": ["int8_wa"]},
    },
    "quick": {
        "kws": {"model": ["cnn", "ds_cnn"], "features": ["mfcc_a", "mfcc_b"], "mode": ["fp32", "int8_w", "int8_wa"]},
        "forecast": {"model": ["fc_mlp", "fc_cnn", "fc_lstm"], "alpha": [1.0, 0.5], "sparsity": [0.0, 0.8],
                     "mode": ["fp32", "int8_wa"]},
    },
    "full": {
        "kws": {"model": ["mlp", "cnn", "ds_cnn", "tinyconv"], "alpha": [1.0, 0.75, 0.5, 0.25],
                "features": ["mfcc_a", "mfcc_b", "logmel", "stft"], "keep": [1.0, 0.75, 0.5],
                "sparsity": [0.0, 0.5, 0.8, 0.9], "mode": ["fp32", "fp16", "int8_w", "int8_wa"]},
        "forecast": {"model": ["fc_mlp", "fc_cnn", "fc_lstm"], "alpha": [1.0, 0.75, 0.5, 0.25],
                     "keep": [1.0, 0.75, 0.5], "sparsity": [0.0, 0.5, 0.8, 0.9],
                     "mode": ["fp32", "fp16", "int8_w", "int8_wa"]},
    },
}
"""Default search spaces per profile and task (categorical choices; a parameter left out keeps its
:data:`PARAM_DEFAULTS` value). ``smoke``: two configurations per task, for the tests. ``quick``: close
to the models notebooks 03-07 already trained and cached (KWS: two networks on two MFCC frame settings
in three modes, two of them new trainings; forecasting: three networks, two widths, with and without
pruning), so a report run trains and fine-tunes only a few models. ``full``: the whole optimisation
space (structured pruning of the LSTM is impossible: those trials fail and the sampler moves on)."""

PRUNE_RECIPE_VERSION = "4"
"""Version of the prune-and-fine-tune recipe below; bump it to invalidate cached pruned models and start new
studies. 2: the fine-tunes take the task's settings (``Task.finetune_kwargs``, notebook 07's) instead of a
learning rate of their own. 3: ``prune.prune_finetune``'s new defaults (depthwise and output kernels dense). 4: a
forecaster's fine-tunes keep their best validation epoch and start at 0.3x its training rate
(``tasks.FINETUNE_KEEP_BEST``, ``tasks.FINETUNE_LR_SCALE``)."""


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    return task


def search_space(task: str, cfg: config.Profile | str = "quick") -> dict[str, list[Any]]:
    """The default search space of ``task`` for a profile (a copy: change it freely).

    Used by notebook 08 and ``labkit search``.
    """
    _check_task(task)
    name = cfg if isinstance(cfg, str) else cfg.name
    if name not in SPACES:
        raise ValueError(f"no default search space for profile {name!r}; profiles: {sorted(SPACES)}")
    return {k: list(v) for k, v in SPACES[name][task].items()}


def space_table(spaces: Mapping[str, Mapping[str, Sequence[Any]]]) -> pd.DataFrame:
    """Parameters (rows) by task (columns): the choices of each ``spaces[task]``, or the fixed default
    of a parameter the space leaves out. Used by notebook 08."""
    columns = {}
    for task, space in spaces.items():
        columns[task] = {k: (", ".join(str(v) for v in space[k]) if k in space else f"{default} (fixed)")
                         for k, default in PARAM_DEFAULTS[_check_task(task)].items()}
    return pd.DataFrame(columns).fillna("-")


def space_size(space: Mapping[str, Sequence[Any]]) -> int:
    """Number of distinct configurations in a categorical space. Used by notebook 08."""
    return int(np.prod([len(v) for v in space.values()])) if space else 0


def normalize_params(task: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` completed with :data:`PARAM_DEFAULTS` and checked: a clear error names a wrong value.

    Used by the evaluators and notebook 08.
    """
    _check_task(task)
    unknown = set(params) - set(PARAM_DEFAULTS[task])
    if unknown:
        raise ValueError(f"unknown {task} parameter(s) {sorted(unknown)}; parameters: {sorted(PARAM_DEFAULTS[task])}")
    p = {**PARAM_DEFAULTS[task], **params}
    family = models.KWS_MODELS if task == "kws" else models.FORECAST_MODELS
    if p["model"] not in family:
        raise ValueError(f"unknown {task} model {p['model']!r}; choose one of {family}")
    if p["mode"] not in tflite.MODES:
        raise ValueError(f"unknown conversion mode {p['mode']!r}; choose one of {tflite.MODES}")
    p["alpha"], p["keep"], p["sparsity"] = float(p["alpha"]), float(p["keep"]), float(p["sparsity"])
    if not p["alpha"] > 0:
        raise ValueError(f"alpha (width multiplier) must be > 0, got {p['alpha']}")
    if not 0.0 < p["keep"] <= 1.0:
        raise ValueError(f"keep (fraction of channels kept) must be in (0, 1], got {p['keep']}")
    if not 0.0 <= p["sparsity"] < 1.0:
        raise ValueError(f"sparsity (fraction of weights zeroed) must be in [0, 1), got {p['sparsity']}")
    if task == "kws" and p["features"] not in features.PRESETS:
        raise ValueError(f"unknown feature preset {p['features']!r}; choose one of {sorted(features.PRESETS)}")
    return p


def describe(params: Mapping[str, Any], task: str | None = None) -> str:
    """A short label of a configuration, e.g. ``"ds_cnn x0.5 · mfcc_b · sparse 0.8 · INT8 W+A"``.

    Used by notebook 08.
    """
    task = task or ("kws" if str(params.get("model", "")) in models.KWS_MODELS else "forecast")
    p = normalize_params(task, {k: v for k, v in params.items() if k in PARAM_DEFAULTS[task]})
    parts = [p["model"] + (f" x{p['alpha']:g}" if p["alpha"] != 1.0 else "")]
    if task == "kws":
        parts.append(p["features"])
    if p["keep"] < 1.0:
        parts.append(f"structured {p['keep']:g}")
    if p["sparsity"] > 0.0:
        parts.append(f"sparse {p['sparsity']:g}")
    parts.append(tflite.MODE_LABELS[p["mode"]])
    return " · ".join(parts)


# ------------------------------------------------------------------------------------------ evaluators
_MEMO: "dict[tuple, dict[str, Any]]" = {}
_MEMO_SIZE = 512


def _memo_key(task: str, dataset: Any, cfg: config.Profile, seed: int, p: Mapping[str, Any]) -> tuple:
    return (task, train.fingerprint(dataset), cfg, int(seed), tuple(sorted((k, str(v)) for k, v in p.items())))


def pruned_model(fit: Any, task: Task, *, keep: float = 1.0, sparsity: float = 0.0, epochs: int,
                 max_train_samples: int | None = None) -> Any:
    """The trained model of ``fit`` (a ``train.TrainResult`` of ``task``) pruned and fine-tuned with notebook
    07's recipe, through the model cache (``train.load_cached`` / ``save_cached``): structured pruning keeping
    ``keep`` of the channels (L1 ranking) then ``epochs`` of fine-tuning, and/or gradual magnitude pruning
    to ``sparsity`` while fine-tuning (tfmot, ``prune.prune_finetune``'s defaults: depthwise and output kernels
    dense); the fine-tunes take the task's settings (``Task.finetune_kwargs``: loss, batch size, fine-tuning
    learning rate, seed) and ``tasks.finetune_settings`` (epochs), as notebook 07's, on ``max_train_samples``
    evenly spaced training samples (``Task.training_subset``). Returns a ``TrainResult``
    (``info["nonzero_params"]`` ...); the unpruned ``fit`` itself when there is nothing to prune.
    Used by the evaluators (notebook 08).
    """
    if keep >= 1.0 and sparsity <= 0.0:
        return fit
    name = fit.info.get("model_name", "model")
    fit_kw = task.finetune_kwargs(epochs)
    recipe = {"parent": fit.key, "keep": float(keep), "sparsity": float(sparsity), "norm": "l1",
              "epochs": fit_kw["epochs"], "batch_size": fit_kw["batch_size"], "learning_rate": fit_kw["learning_rate"],
              "seed": fit_kw["seed"], "max_train_samples": max_train_samples, "keep_best": fit_kw.get("keep_best", False),
              "version": PRUNE_RECIPE_VERSION}
    key = train.cache_key("pruned", name, recipe)
    with train.cache_lock(key):  # notebooks 08 and 09 (or two search workers) may ask for the same one
        hit = train.load_cached(key)
        if hit is not None:
            return hit
        x, y = task.training_subset(max_train_samples)
        t0 = time.perf_counter()
        model = fit.model
        if keep < 1.0:
            model = prune.finetune(prune.prune_channels(model, 1.0 - keep, norm="l1"), x, y, **fit_kw).model
        if sparsity > 0.0:
            model = prune.prune_finetune(model, sparsity, x, y, **fit_kw).model
        seconds = time.perf_counter() - t0
        report = prune.sparsity_report(model).iloc[-1]
        info = {**fit.info, "pruning": recipe, "nonzero_params": int(model.count_params()) - int(report["zeros"]),
                "kernel_sparsity": float(report["sparsity"])}
        result = train.TrainResult(model=model, history={}, metrics={}, train_time_s=seconds, cache_hit=False,
                                   key=key, info=info)
        train.save_cached(result)
    return result


def _measure(converted: Any, metrics: Mapping[str, Any], breakdown: pd.DataFrame, model: Any) -> dict[str, float]:
    stage = breakdown.set_index("stage")["ms"]
    report = prune.sparsity_report(model).iloc[-1]
    out = {k: float(v) for k, v in metrics.items()}
    out.update({
        "size_kb": converted.zlib_size / KB, "tflite_kb": converted.size / KB,
        "preprocessing_ms": float(stage["preprocessing"]), "inference_ms": float(stage["inference"]),
        "postprocessing_ms": float(stage["postprocessing"]), "total_ms": float(stage["total"]),
        "params": float(model.count_params()), "nonzero_params": float(model.count_params() - int(report["zeros"])),
    })
    return out


def _evaluate(task: Task, p: Mapping[str, Any], cfg: config.Profile, label: str) -> dict[str, float]:
    """Train (cache), prune (cache), convert, score and time one configuration of ``task``."""
    t0 = time.perf_counter()
    finetune = tasks.finetune_settings(cfg)
    with train.quiet_cache_hits():
        fit = task.train(p["alpha"])
        res = pruned_model(fit, task, keep=p["keep"], sparsity=p["sparsity"], epochs=finetune["epochs"],
                           max_train_samples=finetune["max_train_samples"])
    conv = tflite.convert(res.model, p["mode"], task.calibration_inputs() if p["mode"] == "int8_wa" else None,
                          name=label)
    breakdown = task.latency_breakdown(conv, runs=cfg.bench_runs, warmup=cfg.bench_warmup)
    out = _measure(conv, task.evaluate(conv), breakdown, res.model)
    out["eval_s"] = time.perf_counter() - t0
    return out


def evaluate_kws(params: Mapping[str, Any], *, data: Any, cfg: config.Profile, seed: int = 0) -> dict[str, float]:
    """Measure one KWS configuration (see :data:`PARAM_DEFAULTS`) end to end.

    Trains the network through the model cache with notebook 03's recipe (``train.kws_settings(cfg)``:
    a cache hit for the models notebooks 03-07 trained), prunes and fine-tunes it if asked
    (:func:`pruned_model`, ``tasks.finetune_settings(cfg)``), converts it with the mode (int8 W+A
    calibrated on ``Task.calibration_inputs``: the training features) and measures: ``top1`` of the .tflite on the test split (LiteRT; the
    first ``cfg.eval_limit`` clips), ``size_kb`` (zlib-compressed file, kB = 1,024 B), ``tflite_kb`` (raw
    file), ``inference_ms`` and ``total_ms`` (median of ``cfg.bench_runs`` runs of
    ``Task.latency_breakdown`` on one test clip: features + inference + argmax), parameters and
    non-zero parameters. Identical calls in one process are measured once. Used by notebook 08.
    """
    p = normalize_params("kws", params)
    memo = _memo_key("kws", data, cfg, seed, p)
    if memo in _MEMO:
        return dict(_MEMO[memo])
    with train.quiet_cache_hits():
        task = tasks.kws_task(data, p["model"], p["features"], **train.kws_settings(cfg), seed=seed,
                              eval_limit=cfg.eval_limit)
    out = _evaluate(task, p, cfg, describe(p, "kws"))
    _remember(memo, out)
    return dict(out)


def evaluate_forecast(params: Mapping[str, Any], *, windows: Any, cfg: config.Profile,
                      seed: int = 0) -> dict[str, float]:
    """Measure one forecasting configuration (see :data:`PARAM_DEFAULTS`) end to end.

    Trains through the model cache with notebook 04's recipe (``train.forecast_settings(cfg)``), prunes
    and fine-tunes if asked, converts (int8 W+A calibrated on ``Task.calibration_inputs``: the train and
    validation windows) and measures: ``T_mae`` and ``RH_mae`` of the .tflite on the test split in real
    units (LiteRT), ``size_kb`` (zlib, kB = 1,024 B), ``tflite_kb``, ``inference_ms`` and ``total_ms``
    (normalise + inference + de-normalise, ``Task.latency_breakdown`` on one raw test window),
    parameters. Used by notebook 08.
    """
    p = normalize_params("forecast", params)
    memo = _memo_key("forecast", windows, cfg, seed, p)
    if memo in _MEMO:
        return dict(_MEMO[memo])
    task = tasks.forecast_task(windows, p["model"], **train.forecast_settings(cfg), seed=seed,
                               eval_limit=cfg.eval_limit)
    out = _evaluate(task, p, cfg, describe(p, "forecast"))
    _remember(memo, out)
    return dict(out)


def _remember(key: tuple, value: dict[str, Any]) -> None:
    _MEMO[key] = dict(value)
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))


def make_objective(task: str, dataset: Any, cfg: config.Profile, *,
                   seed: int = 0) -> Callable[[Mapping[str, Any]], dict[str, float]]:
    """``params -> measured metrics`` for :func:`run_study`: :func:`evaluate_kws` on a ``KWSData`` or
    :func:`evaluate_forecast` on ``Windows``. Used by notebooks 08-09 and ``labkit search``."""
    _check_task(task)
    if task == "kws":
        return lambda params: evaluate_kws(params, data=dataset, cfg=cfg, seed=seed)
    return lambda params: evaluate_forecast(params, windows=dataset, cfg=cfg, seed=seed)


# ---------------------------------------------------------------------------------- one search per task
@dataclasses.dataclass
class SearchResult:
    """A finished (or resumed) search: the Optuna study, its trials (one row per finished trial with the
    parameters, every measured quantity, a ``config`` label and a ``pareto`` flag over
    :data:`OBJECTIVES`), the space, the study name and storage URL, and how many trials this call ran.
    Used by notebook 08 and ``labkit search``."""

    task: str
    study: Any
    trials: pd.DataFrame
    space: dict[str, list[Any]]
    name: str
    storage: str
    new_trials: int
    seconds: float
    reference: dict[str, Any] | None = None

    @property
    def front(self) -> pd.DataFrame:
        """The non-dominated trials over every objective of the task, best primary metric first; for
        forecasting, the persistence forecast (:attr:`reference`, 0 B) first, as the zero-cost reference."""
        metric, sense = PRIMARY[self.task]
        front = self.trials[self.trials["pareto"]].drop_duplicates("config")  # a configuration tried twice: once
        front = front.sort_values(metric, ascending=sense == "min")
        if self.reference is None:
            return front
        return pd.concat([pd.DataFrame([self.reference]), front], ignore_index=True)


def study_name(task: str, dataset: Any, cfg: config.Profile, *, seed: int = 0,
               space: Mapping[str, Sequence[Any]] | None = None) -> str:
    """A study name that changes whenever the measurements would: ``<task>-<profile>-s<seed>-<hash>`` over
    the data fingerprint, the training, pruning (fine-tuning rate and best-epoch rule too) and benchmark settings,
    the space and the objectives
    (not the number of trials: asking for more resumes the study and adds trials). Re-running notebook 08
    with the same settings resumes the same study. Used by notebook 08."""
    import hashlib

    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "search_trials"}  # more trials: resume
    parts = {"data": train.fingerprint(dataset), "cfg": settings, "seed": int(seed),
             "space": dict(space or search_space(task, cfg)), "objectives": OBJECTIVES[_check_task(task)],
             "train_recipe": train.RECIPE_VERSION, "prune_recipe": PRUNE_RECIPE_VERSION,
             "finetune": {"lr_scale": tasks.FINETUNE_LR_SCALE[task], "keep_best": tasks.FINETUNE_KEEP_BEST[task]}}
    digest = hashlib.sha256(train.canonical_json(parts).encode()).hexdigest()[:10]
    return f"{task}-{cfg.name}-s{int(seed)}-{digest}"


def run_search(task: str, dataset: Any, cfg: config.Profile, *, seed: int = 0,
               space: Mapping[str, Sequence[Any]] | None = None, n_trials: int | None = None,
               storage: str | None = None, name: str | None = None, progress: bool = True) -> SearchResult:
    """Open (or resume) the study of ``task`` and run it to ``n_trials`` finished trials
    (default ``cfg.search_trials``) over ``space`` (default :func:`search_space`), measuring each new
    configuration with :func:`make_objective`. ``storage`` is an Optuna database URL (default: a SQLite
    file under ``reports/search/``); point several processes or machines at one shared URL (e.g.
    PostgreSQL) with the same ``name`` and they share the work. Configurations that cannot be built
    (structured pruning of an LSTM) fail their trial and the search goes on. Used by notebooks 08-09 and
    ``labkit search``."""
    space = {k: list(v) for k, v in (space or search_space(task, cfg)).items()}
    for k in space:
        if k not in PARAM_DEFAULTS[_check_task(task)]:
            raise ValueError(f"unknown {task} parameter {k!r} in the space; parameters: {sorted(PARAM_DEFAULTS[task])}")
    name = name or study_name(task, dataset, cfg, seed=seed, space=space)
    url = storage or default_storage(name)
    objectives = OBJECTIVES[task]
    directions = ["maximize" if s == "max" else "minimize" for s in objectives.values()]
    study = open_study(name, directions, storage=url, seed=seed)
    before = len(trials_frame(study))
    t0 = time.perf_counter()
    frame = run_study(study, make_objective(task, dataset, cfg, seed=seed), space, list(objectives),
                      n_trials=int(n_trials if n_trials is not None else cfg.search_trials), progress=progress,
                      catch=(NotImplementedError,))
    if len(frame):
        for k, v in PARAM_DEFAULTS[task].items():  # parameters outside the space: their fixed default
            if k not in frame.columns:
                frame[k] = v
        frame.insert(1, "config", [describe({k: r[k] for k in PARAM_DEFAULTS[task]}, task)
                                   for r in frame.to_dict("records")])
        frame["pareto"] = pareto_mask(frame, objectives)
    reference = persistence_reference(dataset, cfg) if task == "forecast" else None
    if reference is not None and study.user_attrs.get(REFERENCE_ATTR) != reference:
        study.set_user_attr(REFERENCE_ATTR, reference)  # for `labkit search status`, which loads no data
    if reference is not None and len(frame):
        frame = mark_persistence(frame, reference)
    return SearchResult(task=task, study=study, trials=frame, space=space, name=name, storage=url,
                        new_trials=len(frame) - before, seconds=time.perf_counter() - t0, reference=reference)


# ------------------------------------------------------------------------------------- preset reports
def presets_table(task: str | None = None) -> pd.DataFrame:
    """The constraint presets (of one task, or all) as a table. Used by notebook 08."""
    chosen = presets_for(task) if task else list(PRESETS.values())
    return pd.DataFrame([{"preset": p.name, "task": p.task, "constraints": str(p).split(": ", 1)[1],
                          "description": p.description} for p in chosen]).set_index("preset")


def best_configs(trials: pd.DataFrame, task: str, *, reference: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """:func:`best_per_preset` over the presets of ``task`` with the task's :data:`PRIMARY` metric, in few
    columns: preset, constraints, status, trial, source (when the candidates carry one), config, the measured
    objectives and ``beats_persistence`` (the parameters are in ``config``). With a
    ``reference`` (the persistence forecast, :func:`persistence_reference`), trials that do not beat it are
    no candidates (:func:`mark_persistence`) and each preset also gets a row for the reference itself
    (status "reference: no model", ``beats_persistence`` False: it does not beat itself), so that a limit the
    free forecast already meets shows as such.
    Used by notebooks 08-09."""
    metric, sense = PRIMARY[_check_task(task)]
    if reference is not None and len(trials):
        trials = mark_persistence(trials, reference)
    best = best_per_preset(trials, presets_for(task), primary=metric, sense=sense)
    if reference is not None:
        refs = pd.DataFrame([{"preset": p.name, "constraints": str(p).split(": ", 1)[1],
                              "status": "reference: no model", **reference, "beats_persistence": False}
                             for p in presets_for(task)])  # persistence does not beat itself
        best = pd.concat([best, refs], ignore_index=True)
        best["order"] = [list(PRESETS).index(p) for p in best["preset"]]
        best = best.sort_values(["order"], kind="stable").drop(columns="order").reset_index(drop=True)
    keep = [c for c in ("preset", "constraints", "status", "trial", "source", "config", *OBJECTIVES[task],
                        "inference_ms", "total_ms", "beats_persistence") if c in best.columns]
    return best[list(dict.fromkeys(keep))]  # the parameters are in ``config``; the rest is in the trials


def preset_checks(best: pd.DataFrame, *, n_test: int | None = None) -> pd.DataFrame:
    """One row per preset and constraint for the configurations :func:`best_per_preset` picked (and the
    persistence reference of :func:`best_configs`): the measured value, the limit, pass/fail and the margin
    (positive = inside the bound, in the metric's unit), and ``source`` when the candidates carry one. With
    ``n_test`` (the test clips behind each top-1), a top-1 constraint also gets ``noise_band``, two standard
    errors of the accuracy (``metrics.accuracy_se``), and ``within_noise``: the margin is smaller than that,
    so the test set cannot tell whether the limit is met. Used by notebooks 08-09."""
    parts = []
    for r in best.to_dict("records"):
        if r.get("status") in (NO_TRIALS, NONE_BEATS_PERSISTENCE):
            continue
        table = check(r, r["preset"])
        table.insert(1, "status", r["status"])
        table.insert(2, "config", r.get("config", ""))
        if "source" in r:
            table.insert(3, "source", r["source"])
        if n_test:
            band = [2 * metrics.accuracy_se(v, n_test) if m == "top1" and v is not None and not pd.isna(v)
                    else float("nan") for m, v in zip(table["metric"], table["value"])]
            table["noise_band"] = band
            table["within_noise"] = [bool(abs(m) <= b) if b == b and m is not None else False
                                     for m, b in zip(table["margin"], band)]
        parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def preset_key(best: pd.DataFrame) -> dict[str, str]:
    """``{preset: "met by <config>: ..." | "not met; closest: <config> ..."}`` for the report's index page
    (every number in the text is a measured value; the persistence reference rows are left out).
    Used by notebook 08."""
    key = {}
    for r in best.to_dict("records"):
        if str(r.get("status", "")).startswith("reference"):
            continue
        if r.get("status") in (NO_TRIALS, NONE_BEATS_PERSISTENCE):
            key[r["preset"]] = r["status"]
            continue
        values = ", ".join(f"{c.metric} {float(r[c.metric]):.4g}" for c in PRESETS[r["preset"]].constraints
                           if r.get(c.metric) is not None and not pd.isna(r.get(c.metric)))
        head = "met by" if r["status"] == "met" else "not met; closest:"
        key[r["preset"]] = f"{head} {r.get('config', '')} ({values})"
    return key
