"""Forecasting windows: a weather series cut into normalised input/label windows, split in time.

:func:`make_windows` turns a frame from :func:`labkit.data.load_weather` into :class:`Windows`
(train/val/test in time order, train-only normalisation, no window across a split boundary or a gap
in the series); the windows also give the real-unit targets, persistence and the int8 calibration
inputs every later notebook uses.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .weather import PRESSURE, RH, SPLITS, TEMP, WeatherDataError, _infer_step, _step_text, _timedelta_int

__all__ = ["Windows", "TIME_OF_DAY", "default_features", "add_time_of_day", "make_windows"]


@dataclasses.dataclass(repr=False)
class Windows:
    """Normalised input/label windows for forecasting, split in time order.

    ``x_<split>``: float32 ``(N, input_steps, F)``; ``y_<split>``: float32
    ``(N, output_steps, len(target_names))``, both normalised with train-only mean/std.
    ``index_<split>``: the time of each window's first input step. Used by notebooks 04-08.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    target_names: list[str]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray
    step: pd.Timedelta
    index_train: pd.DatetimeIndex
    index_val: pd.DatetimeIndex
    index_test: pd.DatetimeIndex
    input_steps: int
    output_steps: int
    info: dict = dataclasses.field(default_factory=dict)
    _target_values: np.ndarray = dataclasses.field(default=None)  # (rows, targets) real units, float64
    _positions: dict = dataclasses.field(default_factory=dict)    # split -> window start rows

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"`` (normalised). Used by notebooks 04-08."""
        name = _check_split(name)
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def index(self, name: str) -> pd.DatetimeIndex:
        """Start time (first input step) of every window of a split. Used by notebooks 04-08."""
        return getattr(self, f"index_{_check_split(name)}")

    def denormalize_targets(self, y: np.ndarray) -> np.ndarray:
        """Targets (or predictions) back in real units, float64 ``(..., n_targets)``. Used by notebooks 04-08."""
        y = np.asarray(y, dtype=np.float64)
        if y.shape[-1] != len(self.target_names):
            raise ValueError(f"last axis has {y.shape[-1]} values; expected {len(self.target_names)} targets "
                             f"{self.target_names}")
        return y * self.target_std + self.target_mean

    def normalize_targets(self, y: np.ndarray) -> np.ndarray:
        """Real-unit targets to the normalised scale the models see (float32). Used by notebooks 04-08."""
        return ((np.asarray(y, dtype=np.float64) - self.target_mean) / self.target_std).astype(np.float32)

    def calibration_inputs(self) -> np.ndarray:
        """The windows int8 calibration draws from: the train and validation windows, never the test ones.
        The rule and the subset are ``labkit.tasks.Task.calibration_inputs``'s (the one place that decides);
        test inputs outside their range are still clipped (notebook 05's ``input_clipped``). Used by
        notebooks 05-08 through ``Task``."""
        return np.concatenate([self.x_train, self.x_val]).astype(np.float32)

    def last_observed(self, name: str = "test") -> np.ndarray:
        """Targets at the last input step of each window, real units ``(N, n_targets)``: the persistence input.

        Used by notebooks 04-08.
        """
        positions = self._positions[_check_split(name)]
        return self._target_values[positions + self.input_steps - 1]

    def persistence(self, name: str = "test") -> np.ndarray:
        """Persistence forecast (repeat the last observed values), real units ``(N, output_steps, n_targets)``.

        Used by notebooks 04-08.
        """
        last = self.last_observed(name)
        return np.repeat(last[:, None, :], self.output_steps, axis=1)

    def y_true(self, name: str = "test") -> np.ndarray:
        """True targets of a split in real units (exact, float64) ``(N, output_steps, n_targets)``.

        Used by notebooks 04-08.
        """
        positions = self._positions[_check_split(name)]
        rows = positions[:, None] + self.input_steps + np.arange(self.output_steps)
        return self._target_values[rows]

    def summary(self) -> pd.DataFrame:
        """One row per split: series rows, windows, first and last window start. Used by notebooks 04-08."""
        rows = []
        for name in SPLITS:
            index = self.index(name)
            rows.append({
                "split": name,
                "rows": self.info.get("rows", {}).get(name),
                "windows": len(index),
                "first_start": index[0] if len(index) else pd.NaT,
                "last_start": index[-1] if len(index) else pd.NaT,
                "skipped_at_gaps": self.info.get("skipped_at_gaps", {}).get(name),
            })
        return pd.DataFrame(rows).set_index("split")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{s}={getattr(self, 'x_' + s).shape}->{getattr(self, 'y_' + s).shape}" for s in SPLITS)
        return (f"Windows({shapes}, features={self.feature_names}, targets={self.target_names}, "
                f"step={self.step})")


def _check_split(name: str) -> str:
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; choose one of {list(SPLITS)}")
    return name


def default_features(df: pd.DataFrame, targets: Sequence[str] = (TEMP, RH)) -> list[str]:
    """The default model inputs: the targets plus pressure (when present). Used by notebooks 04-08."""
    features = list(targets)
    if PRESSURE in df.columns and PRESSURE not in features:
        features.append(PRESSURE)
    return features


TIME_OF_DAY: tuple[str, ...] = ("day sin", "day cos")
"""Input columns encoding the time of day (``sin``/``cos`` of 2π·seconds/86,400), see :func:`add_time_of_day`."""


def add_time_of_day(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with ``"day sin"`` and ``"day cos"`` columns: the time of day of each row's
    timestamp as a point on the unit circle (23:59 sits next to 00:00). Used by ``make_windows``."""
    if not isinstance(df.index, pd.DatetimeIndex):
        raise TypeError("add_time_of_day needs a DataFrame with a DatetimeIndex (from load_weather)")
    seconds = (df.index - df.index.normalize()).total_seconds().to_numpy(dtype=np.float64)
    angle = 2 * np.pi * seconds / 86_400.0
    out = df.copy()
    out[TIME_OF_DAY[0]], out[TIME_OF_DAY[1]] = np.sin(angle), np.cos(angle)
    return out


def make_windows(
    df: pd.DataFrame,
    *,
    input_steps: int = 6,
    output_steps: int = 6,
    targets: Sequence[str] = (TEMP, RH),
    features: Sequence[str] | None = None,
    time_of_day: bool = True,
    split: Sequence[float] = (0.7, 0.2, 0.1),
    stride: int = 1,
) -> Windows:
    """Cut a weather series into normalised input/label windows, split in time without leakage.

    The rows are split FIRST into consecutive train/val/test parts (fractions ``split``), then
    windows of ``input_steps`` inputs followed by ``output_steps`` labels are cut inside each
    part, every ``stride`` rows, so no window straddles a split boundary. A window never spans
    a gap in the index either (rows ``load_weather`` dropped): its timestamps must be exactly
    ``step`` apart (the most common spacing of the index). Mean and standard deviation
    (population, ddof=0) come from the train rows only. ``features`` defaults to the targets
    plus ``"p (mbar)"`` (see :func:`default_features`); ``time_of_day=True`` appends the
    :data:`TIME_OF_DAY` inputs (the daily cycle drives temperature and humidity: with them the small
    models beat persistence by 15-30 % on Payerne instead of 10-20 %, measured in benchmarks/forecast.py).

    Used by notebooks 04-08.
    """
    where = f"make_windows({df.attrs.get('name', 'frame')!s})" if isinstance(df, pd.DataFrame) else "make_windows"
    if not isinstance(df, pd.DataFrame) or not isinstance(df.index, pd.DatetimeIndex):
        raise TypeError(f"{where}: expected a DataFrame with a DatetimeIndex (from load_weather)")
    for label, value, minimum in (("input_steps", input_steps, 1), ("output_steps", output_steps, 1),
                                  ("stride", stride, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{where}: {label} must be an integer >= {minimum}, got {value!r}")
    if isinstance(targets, str):
        targets = (targets,)
    targets = list(targets)
    features = default_features(df, targets) if features is None else (
        [features] if isinstance(features, str) else list(features))
    if not targets or not features:
        raise ValueError(f"{where}: targets and features must not be empty")
    if time_of_day:
        attrs = dict(df.attrs)
        df = add_time_of_day(df)
        df.attrs.update(attrs)
        features = features + [c for c in TIME_OF_DAY if c not in features]
    unknown = [c for c in dict.fromkeys(targets + features) if c not in df.columns]
    if unknown:
        raise WeatherDataError(f"{where}: no column(s) {unknown}; available: {list(df.columns)}")
    split = tuple(float(s) for s in split)
    if len(split) != 3 or min(split) < 0 or split[0] <= 0 or abs(sum(split) - 1.0) > 1e-6:
        raise ValueError(f"{where}: split must be 3 fractions (train, val, test) >= 0 summing to 1 with "
                         f"train > 0, got {split}")
    if not df.index.is_monotonic_increasing or df.index.has_duplicates:
        raise WeatherDataError(f"{where}: the index must be sorted with unique timestamps (use load_weather)")
    columns = list(dict.fromkeys(features + targets))
    try:
        values = df[columns].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise WeatherDataError(f"{where}: columns {columns} must be numeric ({exc})") from exc
    bad = ~np.isfinite(values)
    if bad.any():
        counts = {c: int(n) for c, n in zip(columns, bad.sum(axis=0)) if n}
        first = df.index[np.flatnonzero(bad.any(axis=1))[0]]
        raise WeatherDataError(
            f"{where}: missing or infinite values {counts} (first at {first}); drop or fill those rows "
            "first (load_weather does: short gaps interpolated, long gaps dropped)"
        )
    if len(df) < 2:
        raise WeatherDataError(f"{where}: {len(df)} row(s); need at least input_steps + output_steps")
    step = _infer_step(df.index)  # from the index, not attrs: a resampled copy keeps stale attrs

    n = len(df)
    length = input_steps + output_steps
    bounds = [0, int(n * split[0]), int(n * (split[0] + split[1])), n]
    feature_values = df[features].to_numpy(dtype=np.float64)
    target_values = df[targets].to_numpy(dtype=np.float64)
    train_rows = slice(bounds[0], bounds[1])
    feature_mean, feature_std = _mean_std(feature_values[train_rows], features, where)
    target_mean, target_std = _mean_std(target_values[train_rows], targets, where)
    x_all = ((feature_values - feature_mean) / feature_std).astype(np.float32)
    y_all = ((target_values - target_mean) / target_std).astype(np.float32)

    # breaks[k] = 1 when row k does not follow row k-1 by exactly one step (a gap).
    gaps = np.concatenate(([0], (np.diff(df.index.asi8) != _timedelta_int(step, df.index)).astype(np.int64)))
    gaps_before = np.cumsum(gaps)
    arrays: dict[str, Any] = {}
    positions: dict[str, np.ndarray] = {}
    skipped: dict[str, int] = {}
    for name, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:]):
        starts = np.arange(lo, max(hi - length + 1, lo), stride)
        contiguous = gaps_before[starts + length - 1] == gaps_before[starts]
        skipped[name] = int((~contiguous).sum())
        starts = starts[contiguous]
        positions[name] = starts
        steps = starts[:, None] + np.arange(length)
        arrays[f"x_{name}"] = x_all[steps[:, :input_steps]].reshape(len(starts), input_steps, len(features))
        arrays[f"y_{name}"] = y_all[steps[:, input_steps:]].reshape(len(starts), output_steps, len(targets))
        arrays[f"index_{name}"] = pd.DatetimeIndex(df.index[starts], name="window start")
    if len(positions["train"]) == 0:
        raise WeatherDataError(
            f"{where}: no train window: the train part has {bounds[1]} rows (with gaps) but a window needs "
            f"{length} consecutive steps; use more data or fewer input/output steps"
        )
    for name, fraction in zip(SPLITS[1:], split[1:]):
        if fraction > 0 and len(positions[name]) == 0:
            warnings.warn(f"{where}: the {name} part ({fraction:.0%} of {n} rows) holds no complete window",
                          RuntimeWarning, stacklevel=2)
    info = {
        "dataset": df.attrs.get("name"), "source": df.attrs.get("source"), "step": _step_text(step),
        "input_steps": int(input_steps), "output_steps": int(output_steps), "stride": int(stride),
        "split": split, "rows": {s: int(b - a) for s, a, b in zip(SPLITS, bounds[:-1], bounds[1:])},
        "skipped_at_gaps": skipped,
    }
    return Windows(
        **arrays, feature_names=features, target_names=targets,
        feature_mean=feature_mean, feature_std=feature_std, target_mean=target_mean, target_std=target_std,
        step=step, input_steps=int(input_steps), output_steps=int(output_steps), info=info,
        _target_values=target_values, _positions=positions,
    )


def _mean_std(values: np.ndarray, names: Iterable[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    mean, std = values.mean(axis=0), values.std(axis=0)
    constant = [name for name, s in zip(names, std) if not s > 0]
    if constant:
        warnings.warn(f"{where}: column(s) {constant} are constant over the train part; their std is set to 1",
                      RuntimeWarning, stacklevel=3)
        std = np.where(std > 0, std, 1.0)
    return mean, std
