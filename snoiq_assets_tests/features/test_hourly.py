"""The hourly forecast table (lib/features/hourly.py): one row per station, cycle and lead, the
leads chosen, lags relative to the CYCLE (an observation planted after a cycle's start never
reaches that cycle's features), the baselines' columns, missing features, and bad input."""

import datetime as dt

import polars as pl
import pytest

from snoiq_assets.lib.features.hourly import build_hourly_table, hourly_feature_rows, lags_of
from snoiq_assets.lib.features.training import TrainingTableError

UTC = dt.timezone.utc
T0 = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)
PLANTED = 999.0


def grid_rows(cycles=4, leads=range(0, 4), stations=("S1", "S2")):
    """Cycles hourly from T0, each with the given leads; tmp_2m = 270 K + cycle + lead/10."""
    rows = []
    for c in range(cycles):
        run = T0 + dt.timedelta(hours=c)
        for lead in leads:
            for i, s in enumerate(stations):
                rows.append({
                    "station_id": s, "run_time": run, "forecast_hour": lead, "valid_time": run + dt.timedelta(hours=lead),
                    "grid_y": 10, "grid_x": 20 + i, "distance_m": 100.0,
                    "tmp_2m_k__centre": 270.0 + c + lead / 10, "tmp_2m_k__mean": 271.0 + c,
                    "obs_air_temp_c": None,
                })
    return pl.DataFrame(rows).with_columns(pl.col("forecast_hour").cast(pl.Int32), pl.col("obs_air_temp_c").cast(pl.Float64))


def observations(station="S1", planted_at=None):
    """10-minute reports from T0 - 26 h: value = minutes since T0 / 60 (so hours since T0)."""
    ts = [T0 + dt.timedelta(minutes=m) for m in range(-26 * 60, 10 * 60, 10)]
    vals = [(t - T0).total_seconds() / 3600 for t in ts]
    if planted_at is not None:
        ts.append(planted_at)
        vals.append(PLANTED)
    return pl.DataFrame({"station_id": [station] * len(ts), "timestamp_utc": ts, "resolution": ["subhourly"] * len(ts),
                         "air_temp_c": vals}).with_columns(pl.col("timestamp_utc").cast(pl.Datetime("us", "UTC")))


def test_one_row_per_station_cycle_and_lead_with_the_leads_chosen():
    rows, feats = hourly_feature_rows(grid_rows().lazy(), observations().lazy(), "air_temp_c", lags=(0, 1), leads=[1, 3])
    assert rows["location"].unique().to_list() == ["S1"]  # S2 has no observations
    assert rows.height == 4 * 2 and sorted(rows["forecast_hour"].unique().to_list()) == [1.0, 3.0]
    r = rows.filter((pl.col("cycle_time") == T0 + dt.timedelta(hours=2)) & (pl.col("forecast_hour") == 3)).row(0, named=True)
    assert r["period_start"] == T0 + dt.timedelta(hours=5)
    assert r["target"] == pytest.approx(5.0)  # the report at the valid time
    assert r["grid_tmp_2m_k__centre"] == pytest.approx(272.3)
    assert r["raw_forecast"] == pytest.approx(272.3 - 273.15)  # the NWP baseline in degC
    # The cycle's own analysis (f00) even though lead 0 is not among the rows.
    assert r["nwp_at_cycle"] == pytest.approx(272.0 - 273.15)
    assert r["obs_minus_nwp_at_cycle"] == pytest.approx(2.0 - (272.0 - 273.15))
    assert {"forecast_hour", "hour_sin", "target__lag0h", "target__lag1h", "nwp_at_cycle", "obs_minus_nwp_at_cycle"} <= set(feats)
    assert "persistence" not in feats and "raw_forecast" not in feats and "target" not in feats
    assert lags_of(feats) == [0, 1]


def test_lags_are_relative_to_the_cycle_and_a_later_observation_never_leaks():
    cycle = T0 + dt.timedelta(hours=2)
    planted = cycle + dt.timedelta(minutes=5)  # after the cycle's start, before its first valid hour
    rows, feats = hourly_feature_rows(grid_rows().lazy(), observations(planted_at=planted).lazy(), "air_temp_c",
                                      lags=(0, 1, 2, 24), leads=[1, 2, 3])
    of_cycle = rows.filter(pl.col("cycle_time") == cycle)
    assert of_cycle.height == 3
    for f in feats:
        assert PLANTED not in of_cycle[f].to_list(), f
    # Every lead of the cycle holds the same lags: reports at or before the cycle, minus k hours.
    assert of_cycle["target__lag0h"].to_list() == [2.0, 2.0, 2.0]  # persistence = the report at 02:00
    assert of_cycle["target__lag1h"].to_list() == [1.0, 1.0, 1.0]
    assert of_cycle["target__lag24h"].to_list() == [-22.0, -22.0, -22.0]
    assert of_cycle["persistence"].to_list() == [2.0, 2.0, 2.0]
    # The next cycle (03Z) may use it: it was observed before 03:00.
    nxt = rows.filter(pl.col("cycle_time") == cycle + dt.timedelta(hours=1))
    assert nxt["target__lag0h"].to_list() == [3.0, 3.0, 3.0]
    # A report at 02:05 is the target of no row (no valid time within 5 minutes other than 02:00,
    # which is lead 0 of cycle 02Z and lead 1 of cycle 01Z: nearest wins, 02:00 itself).
    assert rows.filter(pl.col("period_start") == cycle)["target"].to_list() == [2.0, 2.0]


def test_missing_features_drop_or_fill_rows_never_the_feature():
    grid = grid_rows().with_columns(
        pl.when(pl.col("run_time") == T0 + dt.timedelta(hours=1)).then(None).otherwise(pl.col("tmp_2m_k__mean")).alias("tmp_2m_k__mean"))
    dropped, info = build_hourly_table(grid.lazy(), observations().lazy(), "air_temp_c", lags=(0,), leads=[1, 2])
    assert "grid_tmp_2m_k__mean" in info["feature_columns"] and "grid_tmp_2m_k__mean" in dropped.columns
    assert info["missing_features"] == {"policy": "drop", "rows_affected": 2, "by_feature": {"grid_tmp_2m_k__mean": 2}}
    assert dropped.height == 6 and info["rows"] == 6
    filled, info = build_hourly_table(grid.lazy(), observations().lazy(), "air_temp_c", lags=(0,), leads=[1, 2], missing="fill")
    assert filled.height == 8 and info["missing_features"]["rows_affected"] == 2
    assert filled["grid_tmp_2m_k__mean"].null_count() == 2
    assert info["leads"] == [1, 2] and info["lags_relative_to"] == "cycle_time" and info["nwp_baseline"] == "tmp_2m_k__centre"


def test_build_info_and_bad_input():
    table, info = build_hourly_table(grid_rows().lazy(), observations().lazy(), "air_temp_c", lags=(1,))
    assert info["resolution"] == "hourly" and info["resolution_days"] == 0 and info["feature_set"] == "grid"
    assert info["rows"] == 16 and info["rows_with_target"] == 16 and info["locations"] == ["S1"]
    assert info["leads"] == [0, 1, 2, 3]
    with pytest.raises(TrainingTableError, match="not available hourly"):
        build_hourly_table(grid_rows().lazy(), None, "snow_depth_change_mm")
    with pytest.raises(TrainingTableError, match="unknown target"):
        build_hourly_table(grid_rows().lazy(), None, "nope")
    with pytest.raises(TrainingTableError, match="no neighbourhood feature columns"):
        build_hourly_table(grid_rows().drop("tmp_2m_k__centre", "tmp_2m_k__mean").lazy(), None, "air_temp_c")
    with pytest.raises(TrainingTableError, match="no station has an observation"):
        build_hourly_table(grid_rows().lazy(), None, "snow_depth_mm")
    with pytest.raises(TrainingTableError, match="no rows for locations"):
        build_hourly_table(grid_rows().lazy(), None, "air_temp_c", locations=["S9"])
    with pytest.raises(TrainingTableError, match=r"no rows at leads \[7\]"):
        build_hourly_table(grid_rows().lazy(), None, "air_temp_c", leads=[7])
    with pytest.raises(TrainingTableError, match="whole numbers of hours >= 0"):
        build_hourly_table(grid_rows().lazy(), None, "air_temp_c", lags=(-1,))
    with pytest.raises(TrainingTableError, match="leads must be whole numbers"):
        build_hourly_table(grid_rows().lazy(), None, "air_temp_c", leads=[1.5])
    with pytest.raises(TrainingTableError, match="lacks column"):
        build_hourly_table(grid_rows().drop("run_time").lazy(), None, "air_temp_c")
    with pytest.raises(TrainingTableError, match="missing must be one of"):
        build_hourly_table(grid_rows().lazy(), None, "air_temp_c", missing="zero")
