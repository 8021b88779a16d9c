"""Trade-off search under the course's constraints (notebook 08).

The course's homework question, "which model meets these constraints?", answered by search:
an Optuna multi-objective study over the optimisation space (model family, width multiplier
alpha, sparsity, quantization mode, feature preset) whose objectives are *measured* for every
trial (metric, zlib-compressed TFLite size, inference latency, total latency).

Storage is an Optuna RDB URL: SQLite by default (one machine; an interrupted study resumes
where it stopped and never loses finished trials); the same study runs from many worker
processes or machines against a shared database URL, e.g.::

    labkit search --task forecast --trials 100 --storage postgresql://user:pw@host/db --study fc

started in as many shells or machines as you like: Optuna hands each worker different trials.
"""
from __future__ import annotations

import dataclasses
import math
import operator
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import config

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


# --------------------------------------------------------------------------------------------- studies
def default_storage(name: str) -> str:
    """SQLite URL of a study database under ``reports/search/<name>.db``. Used by notebook 08."""
    path = config.reports_dir() / "search" / f"{name}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_study(name: str, directions: Sequence[str], *, storage: str | None = None, seed: int = 0,
               population_size: int = 8, heartbeat_s: int = 10):
    """Create or reopen (resume) an Optuna multi-objective study in ``storage`` (SQLite by default).

    Every running trial sends a heartbeat; trials whose worker died (no heartbeat for 3 intervals) are
    marked FAILED when the study is reopened, so a resumed run samples new trials instead of losing
    count. Finished trials are never lost. Used by notebook 08 and ``labkit search``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_storage(name)
    with warnings.catch_warnings():  # heartbeats are marked experimental, stable since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s)
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)
        study = optuna.create_study(study_name=name, storage=rdb, directions=list(directions),
                                    sampler=sampler, load_if_exists=True)
        optuna.storages.fail_stale_trials(study)
    return study


def run_study(
    study,
    objective: Callable[[Mapping[str, Any]], Mapping[str, float]],
    space: Mapping[str, Sequence[Any]],
    objectives: Sequence[str],
    *,
    n_trials: int,
    progress: bool = True,
) -> pd.DataFrame:
    """Run trials until the study holds ``n_trials`` finished ones (a resumed study only runs the rest).

    ``space`` maps a parameter to its categorical choices; ``objective(params)`` returns the measured
    metrics, of which ``objectives`` (in the study's direction order) are reported to Optuna and all
    are stored as trial attributes. Identical parameter sets are measured once. Used by notebook 08.
    """
    import optuna

    measured = {_key(t.params): dict(t.user_attrs)
                for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])}

    def _objective(trial: "optuna.Trial") -> tuple[float, ...]:
        params = {k: trial.suggest_categorical(k, list(v)) for k, v in space.items()}
        key = _key(params)
        if key not in measured:  # the sampler may propose a configuration again: measure it once
            measured[key] = {k: float(v) if isinstance(v, (int, float, np.floating)) else v
                             for k, v in dict(objective(params)).items()}
        metrics = measured[key]
        for k, v in metrics.items():
            trial.set_user_attr(k, v)
        return tuple(float(metrics[o]) for o in objectives)

    remaining = n_trials - len(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]))
    if remaining > 0:
        study.optimize(_objective, n_trials=remaining, show_progress_bar=progress, catch=())
    return trials_frame(study)


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


def trials_frame(study) -> pd.DataFrame:
    """Finished trials as a DataFrame: number, parameters and every measured metric. Used by notebook 08."""
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]):
        rows.append({"trial": t.number, **t.params, **t.user_attrs})
    return pd.DataFrame(rows)
