"""Choosing each station's observation for a valid time: the report nearest it within 30
minutes (ties: the earlier), on the real IEM ASOS files (routine :53 METARs plus specials),
parsed by the stations parser; true duplicates (same station and timestamp) are an error."""

import datetime as dt

import polars as pl
import pytest

from snoiq_assets.lib.features.grid_join import (
    GridFeatureError,
    hour_observations,
    nearest_observations,
    run_observations,
)
from snoiq_assets.lib.stations import validate
from snoiq_assets.lib.stations.parsers import claimed_period, parse_native, to_clean
from snoiq_assets.lib.stations.schema import VARIABLES as OBS_VARIABLES

UTC = dt.timezone.utc
ASOS = ("CLE", "GRB", "MSP", "ORD")


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _native(sample_dir, station: str):
    path = sample_dir / "station_obs" / f"iem_asos_{station}_2010-10.csv"
    return parse_native(path.read_bytes(), str(path))


def _parsed(sample_dir, station: str) -> pl.DataFrame:
    """parse_native + to_clean: every source line, true duplicates included."""
    fmt, native = _native(sample_dir, station)
    return to_clean(native, fmt, station)


def _clean(sample_dir, station: str) -> pl.DataFrame:
    """What observations_clean stores: validated (true duplicates dropped)."""
    fmt, native = _native(sample_dir, station)
    clean, _ = validate.validate(to_clean(native, fmt, station), claimed_period=claimed_period(native, fmt))
    return clean


@pytest.fixture(scope="module")
def asos(sample_dir) -> pl.DataFrame:
    return pl.concat([_clean(sample_dir, s) for s in ASOS])


def _pick(obs: pl.DataFrame, valid: str, stations=ASOS) -> dict[str, dict]:
    out = hour_observations(obs.lazy(), _t(valid), list(stations))
    return {r["station_id"]: r for r in out.iter_rows(named=True)}


@pytest.mark.parametrize(
    ("valid", "expected_time", "expected_temp", "reports_in_hour"),
    [
        # 15:43, 15:53 (routine), 16:22, 16:28 all within 30 min of 16Z: the routine :53 is nearest
        ("2010-10-23T16:00", "2010-10-23T15:53", 10.6, 4),
        # 16:53 missing; specials at 17:01 and 17:09: the 17:01 special is nearest
        ("2010-10-23T17:00", "2010-10-23T17:01", 12.0, 2),
        # 11:33, 11:53 and 12:07 special: 11:53 and 12:07 are both 7 min away -> the earlier
        ("2010-10-24T12:00", "2010-10-24T11:53", 11.1, 3),
        # 08:38, 08:53, 09:17, 09:24
        ("2010-10-24T09:00", "2010-10-24T08:53", 10.6, 4),
    ],
)
def test_grb_specials_pick_the_nearest_report(asos, valid, expected_time, expected_temp, reports_in_hour):
    grb = asos.filter(pl.col("station_id") == "GRB")
    near = grb.filter(pl.col("timestamp_utc").is_between(_t(valid) - dt.timedelta(minutes=30),
                                                          _t(valid) + dt.timedelta(minutes=30)))
    assert near.height == reports_in_hour  # several reports in the window: formerly an error
    row = _pick(asos, valid)["GRB"]
    assert row["obs_timestamp_utc"] == _t(expected_time)
    assert row["obs_air_temp_c"] == expected_temp
    source = grb.filter(pl.col("timestamp_utc") == _t(expected_time)).row(0, named=True)
    for v in OBS_VARIABLES:
        assert row[f"obs_{v}"] == source[v], v


def test_every_asos_station_at_one_hour(asos):
    picked = _pick(asos, "2010-10-23T16:00")
    assert sorted(picked) == list(ASOS)  # CLE/ORD report at :51, MSP/GRB at :53 and specials
    for sid, row in picked.items():
        offset = abs(row["obs_timestamp_utc"] - _t("2010-10-23T16:00"))
        series = asos.filter(pl.col("station_id") == sid)["timestamp_utc"]
        assert offset == (series - _t("2010-10-23T16:00")).abs().min(), sid
    assert set(picked["CLE"]) == {"station_id", "obs_timestamp_utc", *(f"obs_{v}" for v in OBS_VARIABLES)}


def test_true_duplicates_in_the_real_file_raise(sample_dir):
    # GRB's file repeats the 2010-10-24 06:53 METAR three times (same station, same time)
    parsed = _parsed(sample_dir, "GRB")
    assert parsed.filter(pl.col("timestamp_utc") == _t("2010-10-24T06:53")).height == 3
    with pytest.raises(GridFeatureError) as err:
        hour_observations(parsed.lazy(), _t("2010-10-24T07:00"), ["GRB"])
    assert "duplicate rows for 1 station(s) near 2010-10-24T07Z" in str(err.value)
    assert "GRB 2010-10-24T06:53:00+00:00 (x3)" in str(err.value)
    # the duplicate outside the window does not matter; an hour without one joins
    row = hour_observations(parsed.lazy(), _t("2010-10-24T05:00"), ["GRB"]).row(0, named=True)
    assert row["obs_timestamp_utc"] == _t("2010-10-24T04:53")
    row = hour_observations(parsed.lazy(), _t("2010-10-24T06:00"), ["GRB"]).row(0, named=True)
    assert row["obs_timestamp_utc"] == _t("2010-10-24T06:04")


def test_validated_series_joins_where_the_duplicates_were(sample_dir):
    clean = _clean(sample_dir, "GRB")
    row = hour_observations(clean.lazy(), _t("2010-10-24T07:00"), ["GRB"]).row(0, named=True)
    assert row["obs_timestamp_utc"] == _t("2010-10-24T07:03")  # 3 min after beats the 06:53 (7 min before)


def test_window_edges_are_inclusive_and_ties_take_the_earlier(asos):
    base = asos.filter(pl.col("station_id") == "GRB").head(1)

    def at(*times):
        return pl.concat([base.with_columns(pl.lit(_t(t)).cast(pl.Datetime("us", "UTC")).alias("timestamp_utc"),
                                            pl.lit(float(i)).alias("air_temp_c")) for i, t in enumerate(times)])

    row = hour_observations(at("2010-10-23T11:30", "2010-10-23T12:30").lazy(), _t("2010-10-23T12:00"), ["GRB"])
    assert row["obs_timestamp_utc"].to_list() == [_t("2010-10-23T11:30")] and row["obs_air_temp_c"][0] == 0.0
    row = hour_observations(at("2010-10-23T12:30").lazy(), _t("2010-10-23T12:00"), ["GRB"])
    assert row["obs_timestamp_utc"].to_list() == [_t("2010-10-23T12:30")]
    out = hour_observations(at("2010-10-23T11:29", "2010-10-23T12:31").lazy(), _t("2010-10-23T12:00"), ["GRB"])
    assert out.height == 0


def test_run_observations_is_read_once_and_serves_every_hour(asos):
    hours = [_t("2010-10-23T16:00"), _t("2010-10-23T17:00"), _t("2010-10-24T12:00")]
    run = run_observations(asos.lazy(), hours, ["GRB", "MSP"])
    assert set(run["station_id"].unique()) == {"GRB", "MSP"}
    assert run["obs_timestamp_utc"].min() >= hours[0] - dt.timedelta(minutes=30)
    assert run["obs_timestamp_utc"].max() <= hours[-1] + dt.timedelta(minutes=30)
    for h in hours:
        assert nearest_observations(run, h).equals(hour_observations(asos.lazy(), h, ["GRB", "MSP"]))


def test_daily_rows_and_missing_columns(sample_dir, asos):
    # daily rows never join an hour; no observations at all gives the empty, typed frame
    daily = asos.filter(pl.col("station_id") == "GRB").with_columns(pl.lit("daily").alias("resolution"))
    assert hour_observations(daily.lazy(), _t("2010-10-23T16:00"), ["GRB"]).height == 0
    empty = hour_observations(pl.LazyFrame(), _t("2010-10-23T16:00"), ["GRB"])
    assert empty.height == 0 and empty.schema["obs_timestamp_utc"] == pl.Datetime("us", "UTC")
    only_temp = asos.select("station_id", "timestamp_utc", "air_temp_c")
    row = hour_observations(only_temp.lazy(), _t("2010-10-23T16:00"), ["GRB"]).row(0, named=True)
    assert row["obs_air_temp_c"] == 10.6 and row["obs_dew_point_c"] is None
