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
* :func:`pareto_mask`, :func:`plot_fronts`: Pareto fronts with constraint boxes;
* :func:`course_table`: the course's summary tables, gathered from notebooks 05/07 or measured.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import operator
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from . import config
from .studies import (StorageError, default_storage, mask_url, open_study, run_study,  # noqa: F401
                      trials_frame)

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


def best_per_preset(trials: pd.DataFrame, presets: Iterable[ConstraintPreset], *,
                    primary: str, sense: str = "max") -> pd.DataFrame:
    """For each preset: the passing trial with the best ``primary`` metric (or 'none meets it', with the
    trial that comes closest: the largest worst-case relative margin). Used by notebook 08."""
    rows = []
    for preset in presets:
        checks = [check(r, preset) for r in trials.to_dict(orient="records")]
        passing = [i for i, c in enumerate(checks) if c["passed"].all()]
        if passing:
            vals = trials.iloc[passing][primary].to_numpy(dtype=float)
            i = passing[int(np.nanargmax(vals) if sense == "max" else np.nanargmin(vals))]
            status = "met"
        else:
            def closeness(c: pd.DataFrame) -> float:
                rel = [m / abs(l) if m is not None and l else -math.inf for m, l in zip(c["margin"], c["limit"])]
                return min(rel)
            if not checks:
                rows.append({"preset": preset.name, "constraints": str(preset).split(": ", 1)[1],
                             "status": "no trials"})
                continue
            i = int(np.argmax([closeness(c) for c in checks]))
            status = "not met (closest shown)"
        row = {"preset": preset.name, "constraints": str(preset).split(": ", 1)[1], "status": status}
        row.update(trials.iloc[i].to_dict())
        rows.append(row)
    return pd.DataFrame(rows)


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


# ------------------------------------------------------------------------------------ the search space
TASKS: tuple[str, ...] = ("kws", "forecast")
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
TFLite conversion (``labkit.convert.MODES``); ``features``: the KWS feature preset
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

PRUNE_LEARNING_RATE = 5e-4
"""Adam learning rate of the pruning fine-tunes (the value of notebook 07's sweep)."""

PRUNE_RECIPE_VERSION = "1"
"""Version of the prune-and-fine-tune recipe below; bump it to invalidate cached pruned models."""


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
    from . import convert, features, models

    _check_task(task)
    unknown = set(params) - set(PARAM_DEFAULTS[task])
    if unknown:
        raise ValueError(f"unknown {task} parameter(s) {sorted(unknown)}; parameters: {sorted(PARAM_DEFAULTS[task])}")
    p = {**PARAM_DEFAULTS[task], **params}
    family = models.KWS_MODELS if task == "kws" else models.FORECAST_MODELS
    if p["model"] not in family:
        raise ValueError(f"unknown {task} model {p['model']!r}; choose one of {family}")
    if p["mode"] not in convert.MODES:
        raise ValueError(f"unknown conversion mode {p['mode']!r}; choose one of {convert.MODES}")
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
    from . import convert, models

    task = task or ("kws" if str(params.get("model", "")) in models.KWS_MODELS else "forecast")
    p = normalize_params(task, {k: v for k, v in params.items() if k in PARAM_DEFAULTS[task]})
    parts = [p["model"] + (f" x{p['alpha']:g}" if p["alpha"] != 1.0 else "")]
    if task == "kws":
        parts.append(p["features"])
    if p["keep"] < 1.0:
        parts.append(f"structured {p['keep']:g}")
    if p["sparsity"] > 0.0:
        parts.append(f"sparse {p['sparsity']:g}")
    parts.append(convert.MODE_LABELS[p["mode"]])
    return " · ".join(parts)


# ------------------------------------------------------------------------------------------ evaluators
_MEMO: "dict[tuple, dict[str, Any]]" = {}
_MEMO_SIZE = 512


def _memo_key(task: str, dataset: Any, cfg: config.Profile, seed: int, p: Mapping[str, Any]) -> tuple:
    from . import train

    return (task, train.fingerprint(dataset), cfg, int(seed), tuple(sorted((k, str(v)) for k, v in p.items())))


@contextlib.contextmanager
def _quiet_cache_hits() -> Iterator[None]:
    """Swallow the "[train] cache hit" lines (one per trial) but keep every other line printed."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        for line in buf.getvalue().splitlines():
            if not line.startswith("[train] cache hit"):
                print(line)


def _fit_subset(x: np.ndarray, y: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced ``limit`` training samples (the smoke profile's fine-tunes, as in notebook 07)."""
    if limit is None or len(x) <= limit:
        return x, y
    idx = np.linspace(0, len(x) - 1, int(limit)).round().astype(int)
    return x[idx], y[idx]


def pruned_model(fit: Any, *, keep: float = 1.0, sparsity: float = 0.0, x: np.ndarray, y: np.ndarray, loss: str,
                 epochs: int, batch_size: int, seed: int = 0, max_train_samples: int | None = None) -> Any:
    """The trained model of ``fit`` (a ``train.TrainResult``) pruned and fine-tuned with notebook 07's
    recipe, through the model cache (``train.load_cached`` / ``save_cached``): structured pruning keeping
    ``keep`` of the channels (L1 ranking) then ``epochs`` of fine-tuning, and/or gradual magnitude pruning
    to ``sparsity`` while fine-tuning (tfmot, depthwise kernels included). Returns a ``TrainResult``
    (``info["nonzero_params"]`` ...); the unpruned ``fit`` itself when there is nothing to prune.
    Used by the evaluators (notebook 08).
    """
    import time

    from . import prune, train

    if keep >= 1.0 and sparsity <= 0.0:
        return fit
    name = fit.info.get("model_name", "model")
    recipe = {"parent": fit.key, "keep": float(keep), "sparsity": float(sparsity), "norm": "l1", "epochs": int(epochs),
              "batch_size": int(batch_size), "learning_rate": PRUNE_LEARNING_RATE, "seed": int(seed),
              "max_train_samples": max_train_samples, "version": PRUNE_RECIPE_VERSION}
    key = train.cache_key("pruned", name, recipe)
    hit = train.load_cached(key)
    if hit is not None:
        return hit
    x, y = _fit_subset(np.asarray(x), np.asarray(y), max_train_samples)
    fit_kw = dict(epochs=int(epochs), loss=loss, batch_size=int(batch_size), learning_rate=PRUNE_LEARNING_RATE,
                  seed=int(seed))
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
    result = train.TrainResult(model=model, history={}, metrics={}, train_time_s=seconds, cache_hit=False, key=key,
                               info=info)
    train.save_cached(result)
    return result


def _measure(converted: Any, metrics: Mapping[str, Any], breakdown: pd.DataFrame, model: Any) -> dict[str, float]:
    from . import prune

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


def evaluate_kws(params: Mapping[str, Any], *, data: Any, cfg: config.Profile, seed: int = 0) -> dict[str, float]:
    """Measure one KWS configuration (see :data:`PARAM_DEFAULTS`) end to end.

    Trains the network through the model cache with notebook 03's recipe (``train.kws_settings(cfg)``:
    a cache hit for the models notebooks 03-07 trained), prunes and fine-tunes it if asked
    (:func:`pruned_model`, ``cfg.finetune_epochs``), converts it with the mode (int8 W+A calibrated on
    training features) and measures: ``top1`` of the .tflite on the test split (LiteRT; the first
    ``cfg.eval_limit`` clips), ``size_kb`` (zlib-compressed file, kB = 1,024 B), ``tflite_kb`` (raw
    file), ``inference_ms`` and ``total_ms`` (median of ``cfg.bench_runs`` runs of
    ``bench.latency_breakdown`` on one test clip: features + inference + argmax), parameters and
    non-zero parameters. Identical calls in one process are measured once. Used by notebook 08.
    """
    import time

    from . import bench, convert, prune, train

    p = normalize_params("kws", params)
    memo = _memo_key("kws", data, cfg, seed, p)
    if memo in _MEMO:
        return dict(_MEMO[memo])
    t0 = time.perf_counter()
    with _quiet_cache_hits():
        fit = train.train_kws(p["model"], data, p["features"], **train.kws_settings(cfg), seed=seed, alpha=p["alpha"])
        f_train, _, f_test = train.kws_features(data, p["features"])
        res = pruned_model(fit, keep=p["keep"], sparsity=p["sparsity"], x=f_train,
                           y=np.asarray(data.y_train, np.int64), loss="sparse_categorical_crossentropy",
                           epochs=cfg.finetune_epochs, batch_size=cfg.kws_batch_size, seed=seed,
                           max_train_samples=prune.sweep_settings(cfg)["max_train_samples"])
    conv = convert.convert(res.model, p["mode"], f_train if p["mode"] == "int8_wa" else None, name=describe(p, "kws"))
    metrics = convert.evaluate_tflite_kws(conv, f_test, data.y_test, list(data.labels), limit=cfg.eval_limit)
    breakdown = bench.latency_breakdown(conv, clip=np.asarray(data.x_test[0]), features=p["features"],
                                        runs=cfg.bench_runs, warmup=cfg.bench_warmup)
    out = _measure(conv, {"top1": metrics["top1"]}, breakdown, res.model)
    out["eval_s"] = time.perf_counter() - t0
    _remember(memo, out)
    return dict(out)


def calibration_inputs(windows: Any) -> np.ndarray:
    """Representative inputs for a forecaster's int8 W+A conversion: the training *and* validation
    windows, so the calibrated ranges cover the later (warmer) weeks too (notebook 06 shows the test
    error that clipping causes when only the training weeks are used). Used by notebook 08."""
    return np.concatenate([np.asarray(windows.x_train, np.float32), np.asarray(windows.x_val, np.float32)])


def evaluate_forecast(params: Mapping[str, Any], *, windows: Any, cfg: config.Profile,
                      seed: int = 0) -> dict[str, float]:
    """Measure one forecasting configuration (see :data:`PARAM_DEFAULTS`) end to end.

    Trains through the model cache with notebook 04's recipe (``train.forecast_settings(cfg)``), prunes
    and fine-tunes if asked, converts (int8 W+A calibrated on :func:`calibration_inputs`) and measures:
    ``T_mae`` and ``RH_mae`` of the .tflite on the test split in real units (LiteRT), ``size_kb`` (zlib,
    kB = 1,024 B), ``tflite_kb``, ``inference_ms`` and ``total_ms`` (normalise + inference +
    de-normalise, ``bench.latency_breakdown`` on one raw test window), parameters. Used by notebook 08.
    """
    import time

    from . import bench, convert, prune, train

    p = normalize_params("forecast", params)
    memo = _memo_key("forecast", windows, cfg, seed, p)
    if memo in _MEMO:
        return dict(_MEMO[memo])
    t0 = time.perf_counter()
    with _quiet_cache_hits():
        fit = train.train_forecaster(p["model"], windows, **train.forecast_settings(cfg), seed=seed, alpha=p["alpha"])
        res = pruned_model(fit, keep=p["keep"], sparsity=p["sparsity"], x=np.asarray(windows.x_train, np.float32),
                           y=np.asarray(windows.y_train, np.float32), loss="mae", epochs=cfg.finetune_epochs,
                           batch_size=cfg.forecast_batch_size, seed=seed,
                           max_train_samples=prune.sweep_settings(cfg)["max_train_samples"])
    rep = calibration_inputs(windows) if p["mode"] == "int8_wa" else None
    conv = convert.convert(res.model, p["mode"], rep, name=describe(p, "forecast"))
    metrics = convert.evaluate_tflite_forecast(conv, windows, "test", limit=cfg.eval_limit)
    x0 = np.asarray(windows.x_test[0], np.float64)
    raw_window = x0 * np.asarray(windows.feature_std) + np.asarray(windows.feature_mean)
    breakdown = bench.latency_breakdown(conv, window=raw_window, windows=windows, runs=cfg.bench_runs,
                                        warmup=cfg.bench_warmup)
    names = [train.short_target_name(n) for n in windows.target_names]
    out = _measure(conv, {f"{n}_mae": metrics[f"{n}_mae"] for n in names}, breakdown, res.model)
    out["eval_s"] = time.perf_counter() - t0
    _remember(memo, out)
    return dict(out)


def _remember(key: tuple, value: dict[str, Any]) -> None:
    _MEMO[key] = dict(value)
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))


def make_objective(task: str, dataset: Any, cfg: config.Profile, *,
                   seed: int = 0) -> Callable[[Mapping[str, Any]], dict[str, float]]:
    """``params -> measured metrics`` for :func:`run_study`: :func:`evaluate_kws` on a ``KWSData`` or
    :func:`evaluate_forecast` on ``Windows``. Used by notebook 08 and ``labkit search``."""
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

    @property
    def front(self) -> pd.DataFrame:
        """The non-dominated trials over every objective of the task, best primary metric first."""
        metric, sense = PRIMARY[self.task]
        front = self.trials[self.trials["pareto"]].drop_duplicates("config")  # a configuration tried twice: once
        return front.sort_values(metric, ascending=sense == "min")


def study_name(task: str, dataset: Any, cfg: config.Profile, *, seed: int = 0,
               space: Mapping[str, Sequence[Any]] | None = None) -> str:
    """A study name that changes whenever the measurements would: ``<task>-<profile>-s<seed>-<hash>`` over
    the data fingerprint, the training, pruning and benchmark settings, the space and the objectives
    (not the number of trials: asking for more resumes the study and adds trials). Re-running notebook 08
    with the same settings resumes the same study. Used by notebook 08."""
    import hashlib

    from . import train

    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "search_trials"}  # more trials: resume
    parts = {"data": train.fingerprint(dataset), "cfg": settings, "seed": int(seed),
             "space": dict(space or search_space(task, cfg)), "objectives": OBJECTIVES[_check_task(task)],
             "train_recipe": train.RECIPE_VERSION, "prune_recipe": PRUNE_RECIPE_VERSION}
    digest = hashlib.sha256(train._canonical(parts).encode()).hexdigest()[:10]
    return f"{task}-{cfg.name}-s{int(seed)}-{digest}"


def run_search(task: str, dataset: Any, cfg: config.Profile, *, seed: int = 0,
               space: Mapping[str, Sequence[Any]] | None = None, n_trials: int | None = None,
               storage: str | None = None, name: str | None = None, progress: bool = True) -> SearchResult:
    """Open (or resume) the study of ``task`` and run it to ``n_trials`` finished trials
    (default ``cfg.search_trials``) over ``space`` (default :func:`search_space`), measuring each new
    configuration with :func:`make_objective`. ``storage`` is an Optuna database URL (default: a SQLite
    file under ``reports/search/``); point several processes or machines at one shared URL (e.g.
    PostgreSQL) with the same ``name`` and they share the work. Configurations that cannot be built
    (structured pruning of an LSTM) fail their trial and the search goes on. Used by notebook 08 and
    ``labkit search``."""
    import time

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
    return SearchResult(task=task, study=study, trials=frame, space=space, name=name, storage=url,
                        new_trials=len(frame) - before, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------- the course's tables
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
"""The KWS features of the summary table (the deployment features of notebooks 05-07)."""

_COLUMNS = {
    "kws": {"top1": "Top-1", "tflite_kb": "TFLite kB", "size_kb": "zlib kB", "inference_ms": "Latency ms",
            "total_ms": "Total ms"},
    "forecast": {"T_mae": "T MAE", "RH_mae": "H MAE", "size_kb": "zlib kB", "tflite_kb": "TFLite kB",
                 "inference_ms": "Latency ms"},
}


def course_settings(task: str, cfg: config.Profile) -> dict[str, tuple[str, ...]]:
    """``models`` and ``optimizations`` of :func:`course_table` for a profile: everything, except under
    ``smoke``, which keeps the rows its search space already measures (one model, two rows).
    Used by notebook 08."""
    _check_task(task)
    if cfg.name == "smoke":
        return ({"models": ("ds_cnn",), "optimizations": ("FP32", "INT8 W+A")} if task == "kws"
                else {"models": ("fc_mlp",), "optimizations": ("INT8 W+A", "Sparse 0.8")})
    return {"models": COURSE_MODELS[task], "optimizations": tuple(COURSE_OPTIMIZATIONS)}


def course_params(task: str, model: str, optimization: str) -> dict[str, Any]:
    """The full search parameters of one row of the course's table. Used by :func:`course_table`."""
    if optimization not in COURSE_OPTIMIZATIONS:
        raise ValueError(f"unknown optimization {optimization!r}; rows: {list(COURSE_OPTIMIZATIONS)}")
    extra = {"features": COURSE_FEATURES} if task == "kws" else {}
    return normalize_params(task, {"model": model, **extra, **COURSE_OPTIMIZATIONS[optimization]})


def _close(a: Any, b: Any, tol: float) -> bool:
    try:
        return abs(float(a) - float(b)) <= tol
    except (TypeError, ValueError):
        return False


def _load_doc(table: str, directory: str | Path | None) -> dict[str, Any] | None:
    from . import results

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
                  dataset_name: str = "", directory: str | Path | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """Course-table rows notebooks 05 and 07 already measured, ``{(model, optimization): metrics}``, kept only
    where they were measured the way :func:`evaluate_kws` / :func:`evaluate_forecast` would: same profile
    settings (benchmark runs, evaluation limit, fine-tuning epochs) and the *same trained model*: the
    recorded float metric of each model must equal ``baselines[model]`` (the metrics of the model in
    today's cache), so rows of an older model are ignored. Forecasters' INT8 W+A rows are never taken
    (notebooks 05 and 07 calibrate on the training weeks only, the evaluator on train + validation).
    KWS rows of notebook 07 have no total latency and time the interpreter call alone.
    Used by notebook 08 (through :func:`course_table`)."""
    from . import prune

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
            if task == "kws" and r["model"] == f"{model} · {COURSE_FEATURES}" \
                    and _close(r.get("keras_top1"), baselines[model].get("top1"), 1e-9):
                out[(model, mode)] = {"top1": r["top1"], **sizes}
            elif task == "forecast" and mode != "INT8 W+A" \
                    and _close(r.get("keras_T_mae"), baselines[model].get("T_mae"), 1e-4):
                out[(model, mode)] = {"T_mae": r["T_mae"], "RH_mae": r["RH_mae"], **sizes}
    if task != "kws" or cfg.eval_limit is not None:  # notebook 07 scores the whole test split
        return out
    settings = prune.sweep_settings(cfg)
    expected = {"features": COURSE_FEATURES, "norm": "l1", "dataset": dataset_name or None,
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
                 gather: bool = True, directory: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """The course's summary table of ``task``: one row per model and optimization (:data:`COURSE_MODELS`
    x :data:`COURSE_OPTIMIZATIONS`) with the metric of the .tflite, its raw and zlib size in kB and its
    latency, and where each number comes from (``Source``): a configuration measured in this process or
    found among ``trials`` (a search's trials), else a row notebook 05 or 07 recorded for the very same
    model (``gather=True``, see :func:`recorded_rows`), else it is measured now through the caches. A
    configuration that cannot be built (structured pruning of the LSTM) gets a note instead of numbers.
    Used by notebook 08."""
    from tqdm.auto import tqdm

    from . import train

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
        with _quiet_cache_hits():
            if task == "kws":
                base = {m: train.train_kws(m, dataset, COURSE_FEATURES, **train.kws_settings(cfg), seed=seed).metrics
                        for m in models}
            else:
                base = {m: train.train_forecaster(m, dataset, **train.forecast_settings(cfg), seed=seed).metrics
                        for m in models}
        recorded = recorded_rows(task, base, cfg, dataset_name=str(getattr(dataset, "name", "")), directory=directory)
    rows = []
    cells = [(m, o) for m in models for o in optimizations]
    for model, opt in tqdm(cells, desc=f"{task} summary table", disable=not progress, leave=False):
        p = course_params(task, model, opt)
        memo = _memo_key(task, dataset, cfg, seed, p)
        row: dict[str, Any] = {"Model": model, "Optimization": opt}
        if _key(p) in by_key:
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


# ------------------------------------------------------------------------------------- preset reports
def presets_table(task: str | None = None) -> pd.DataFrame:
    """The constraint presets (of one task, or all) as a table. Used by notebook 08."""
    chosen = presets_for(task) if task else list(PRESETS.values())
    return pd.DataFrame([{"preset": p.name, "task": p.task, "constraints": str(p).split(": ", 1)[1],
                          "description": p.description} for p in chosen]).set_index("preset")


def best_configs(trials: pd.DataFrame, task: str) -> pd.DataFrame:
    """:func:`best_per_preset` over the presets of ``task`` with the task's :data:`PRIMARY` metric,
    columns tidied: preset, constraints, status, trial, config, the objectives, then the rest.
    Used by notebook 08."""
    metric, sense = PRIMARY[_check_task(task)]
    best = best_per_preset(trials, presets_for(task), primary=metric, sense=sense)
    first = [c for c in ("preset", "constraints", "status", "trial", "config", *OBJECTIVES[task], "inference_ms",
                         "total_ms", "tflite_kb") if c in best.columns]
    first = list(dict.fromkeys(first))
    drop = {"pareto", "eval_s", "preprocessing_ms", "postprocessing_ms"}
    return best[first + [c for c in best.columns if c not in first and c not in drop]]


def preset_checks(best: pd.DataFrame) -> pd.DataFrame:
    """One row per preset and constraint for the configurations :func:`best_per_preset` picked: the
    measured value, the limit, pass/fail and the margin (positive = inside the bound, in the metric's
    unit). Used by notebook 08."""
    parts = []
    for r in best.to_dict("records"):
        if r.get("status") == "no trials":
            continue
        table = check(r, r["preset"])
        table.insert(1, "status", r["status"])
        table.insert(2, "config", r.get("config", ""))
        parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def preset_key(best: pd.DataFrame) -> dict[str, str]:
    """``{preset: "met by <config>: ..." | "not met; closest: <config> ..."}`` for the report's index page
    (every number in the text is a measured value). Used by notebook 08."""
    key = {}
    for r in best.to_dict("records"):
        if r.get("status") == "no trials":
            key[r["preset"]] = "no trials"
            continue
        values = ", ".join(f"{c.metric} {float(r[c.metric]):.4g}" for c in PRESETS[r["preset"]].constraints
                           if r.get(c.metric) is not None and not pd.isna(r.get(c.metric)))
        head = "met by" if r["status"] == "met" else "not met; closest:"
        key[r["preset"]] = f"{head} {r.get('config', '')} ({values})"
    return key


# ---------------------------------------------------------------------------------------------- figures
_PANELS: dict[str, list[tuple[str, str]]] = {
    "kws": [("size_kb", "top1"), ("inference_ms", "top1"), ("total_ms", "top1")],
    "forecast": [("size_kb", "T_mae"), ("size_kb", "RH_mae"), ("inference_ms", "T_mae")],
}
_LABELS = {"top1": "test top-1 (.tflite)", "T_mae": "test T MAE (°C)", "RH_mae": "test RH MAE (%RH)",
           "size_kb": "zlib-compressed .tflite (kB)", "inference_ms": "inference latency (ms, LiteRT)",
           "total_ms": "total latency (ms: features + inference + argmax)"}
_SENSE = {"top1": "max", "T_mae": "min", "RH_mae": "min", "size_kb": "min", "inference_ms": "min", "total_ms": "min"}


def _bounds(preset: ConstraintPreset, metric: str) -> tuple[float, float] | None:
    """The feasible interval of ``metric`` under ``preset`` (None if the preset does not constrain it)."""
    lo, hi, found = -math.inf, math.inf, False
    for c in preset.constraints:
        if c.metric == metric:
            found = True
            lo, hi = (lo, min(hi, c.limit)) if c.op == "<" else (max(lo, c.limit), hi)
    return (lo, hi) if found else None


def plot_fronts(trials: pd.DataFrame, task: str, *, panels: Sequence[tuple[str, str]] | None = None,
                presets: Iterable[ConstraintPreset] | None = None, title: str = "") -> Any:
    """Every trial (colour = model, marker = conversion mode), the Pareto front of each panel's two
    objectives (line) and each constraint preset's feasible region (shaded box; a preset that bounds
    only one of the two axes spans the other). Default panels: metric vs size and vs latency.
    Used by notebook 08."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    from . import convert

    _check_task(task)
    panels = list(panels or _PANELS[task])
    presets = list(presets if presets is not None else presets_for(task))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False)
    models = sorted(trials["model"].unique()) if len(trials) else []
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    marks = {"fp32": "o", "fp16": "D", "int8_w": "s", "int8_wa": "^"}
    box_colors = plt.get_cmap("Set2")
    for ax, (x, y) in zip(axes[0], panels):
        data = trials.dropna(subset=[x, y]) if len(trials) else trials
        for (m, mode), part in data.groupby(["model", "mode"]) if len(data) else []:
            ax.scatter(part[x], part[y], color=colors[m], marker=marks.get(mode, "o"), s=36, alpha=0.8,
                       edgecolor="white", linewidth=0.5, zorder=3)
        if len(data):
            front = data[pareto_mask(data, {x: "min", y: _SENSE[y]})].sort_values(x)
            ax.step(front[x], front[y], where="post", color="black", lw=1.2, zorder=2)
            ax.scatter(front[x], front[y], facecolor="none", edgecolor="black", s=90, lw=1.0, zorder=4)
            xs, ys = data[x].to_numpy(float), data[y].to_numpy(float)
            if x.endswith("_kb") and xs.min() > 0 and xs.max() / xs.min() > 20:
                ax.set_xscale("log")
        ax.set_xlabel(_LABELS.get(x, x))
        ax.set_ylabel(_LABELS.get(y, y))
        # make every preset's limits visible, then shade each feasible region
        limits_x = [v for p in presets for b in [_bounds(p, x)] if b for v in b if math.isfinite(v)]
        limits_y = [v for p in presets for b in [_bounds(p, y)] if b for v in b if math.isfinite(v)]
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        if ax.get_xscale() == "linear" and limits_x:  # sizes and latencies start at 0: show the whole box
            x0 = min(x0, 0.0)
        if _SENSE[y] == "min" and limits_y:  # errors start at 0 too
            y0 = min(y0, 0.0)
        if limits_x:
            x0, x1 = min(x0, min(limits_x) / (1.3 if ax.get_xscale() == "log" else 1)), max(x1, max(limits_x) * 1.1)
        if limits_y:
            span = (max(y1, max(limits_y)) - min(y0, min(limits_y))) or 1.0
            y0, y1 = min(y0, min(limits_y) - 0.05 * span), max(y1, max(limits_y) + 0.05 * span)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        drawn: list[tuple[float, float]] = []
        for i, p in enumerate(presets):
            bx, by = _bounds(p, x), _bounds(p, y)
            if bx is None and by is None:
                continue
            lx, hx = (max(bx[0], x0), min(bx[1], x1)) if bx else (x0, x1)
            ly, hy = (max(by[0], y0), min(by[1], y1)) if by else (y0, y1)
            color = box_colors(i % 8)
            ax.add_patch(Rectangle((lx, ly), hx - lx, hy - ly, facecolor=color, alpha=0.18, edgecolor=color,
                                   lw=1.5, zorder=1))
            corner = (hx, hy)
            stacked = sum(1 for q in drawn if q[1] == corner[1])  # boxes with the same top: stack the labels
            drawn.append(corner)
            ax.annotate(p.name, corner, xytext=(-3, -3 - 10 * stacked), textcoords="offset points", ha="right",
                        va="top", fontsize=8, color="dimgray", zorder=5)
        ax.xaxis.set_major_locator(MaxNLocator(5)) if ax.get_xscale() == "linear" else None
    handles = [Line2D([], [], color=colors[m], marker="o", ls="", label=m) for m in models]
    used = sorted(trials["mode"].unique()) if len(trials) else []
    handles += [Line2D([], [], color="gray", marker=marks.get(md, "o"), ls="", label=convert.MODE_LABELS.get(md, md))
                for md in used]
    handles += [Line2D([], [], color="black", lw=1.2, marker="o", mfc="none", label="Pareto front")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False,
               bbox_to_anchor=(0.5, -0.06))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
