"""The hourly grid-join training table (lib/features/hourly.py): features, lags without
leakage, the freshest forecast per valid hour, stations chosen, and bad input."""

import datetime as dt

import polars as pl
import pytest

from snoiq_assets.lib.features.hourly import build_hourly_table, hourly_feature_rows, lags_of
from snoiq_assets.lib.features.training import TrainingTableError

UTC = dt.timezone.utc
T0 = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)


def grid_rows(hours=6, stations=("S1", "S2"), forecast_hour=0, offset=0.0):
    rows = []
    for h in range(hours):
        vt = T0 + dt.timedelta(hours=h)
        for i, s in enumerate(stations):
            rows.append({
                "station_id": s, "valid_time": vt, "run_time": vt - dt.timedelta(hours=forecast_hour),
                "forecast_hour": forecast_hour, "grid_y": 10, "grid_x": 20 + i, "distance_m": 100.0,
                "tmp_2m_k__centre": 270.0 + h + offset, "tmp_2m_k__mean": 271.0 + h + offset,
                "obs_timestamp_utc": vt if s == "S1" else None,
                "obs_air_temp_c": float(h) if s == "S1" else None, "obs_precip_mm": 0.5 if s == "S1" else None,
            })
    return pl.DataFrame(rows).with_columns(pl.col("forecast_hour").cast(pl.Int32))


def observations(hours=6, station="S1"):
    # Reports at :55 (rounded to the next hour) and one extra special at :10 in hour 2.
    ts = [T0 + dt.timedelta(hours=h) - dt.timedelta(minutes=5) for h in range(-3, hours)]
    vals = [float(h) for h in range(-3, hours)]
    ts.append(T0 + dt.timedelta(hours=2, minutes=10))
    vals.append(100.0)
    return pl.DataFrame({"station_id": [station] * len(ts), "timestamp_utc": ts, "resolution": ["hourly"] * len(ts),
                         "air_temp_c": vals}).with_columns(pl.col("timestamp_utc").cast(pl.Datetime("us", "UTC")))


def test_rows_features_and_lags_use_only_earlier_hours():
    rows, feats = hourly_feature_rows(grid_rows().lazy(), observations().lazy(), "air_temp_c", lags=(1, 2))
    # Only S1 has an observed target; S2 is dropped when no locations are named.
    assert rows["location"].unique().to_list() == ["S1"] and rows.height == 6
    assert feats[:2] == ["grid_tmp_2m_k__centre", "grid_tmp_2m_k__mean"]
    assert {"forecast_hour", "hour_sin", "hour_cos", "season_sin", "season_cos", "target__lag1h", "target__lag2h"} <= set(feats)
    assert "grid_grid_y" not in feats and not any(f.startswith("grid_obs_") for f in feats)
    r4 = rows.filter(pl.col("period_start") == T0 + dt.timedelta(hours=4)).row(0, named=True)
    assert r4["target"] == 4.0 and r4["grid_tmp_2m_k__centre"] == 274.0
    assert r4["target__lag1h"] == 3.0 and r4["target__lag2h"] == pytest.approx(51.0)
    # Hour 3's lag-1 is hour 2: the :55 report (2.0) and the 02:10 special (100.0) are averaged.
    r3 = rows.filter(pl.col("period_start") == T0 + dt.timedelta(hours=3)).row(0, named=True)
    assert r3["target__lag1h"] == pytest.approx(51.0)
    assert rows["hour_sin"][0] == pytest.approx(0.0) and rows["hour_cos"][0] == pytest.approx(1.0)
    assert lags_of(feats) == [1, 2]


def test_named_locations_keep_stations_without_observations_for_prediction():
    rows, _ = hourly_feature_rows(grid_rows().lazy(), None, "air_temp_c", lags=(1,), locations=["S2"])
    assert rows["location"].unique().to_list() == ["S2"] and rows["target"].null_count() == 6
    assert rows["target__lag1h"].null_count() == 6  # no observations given: lags unknown, not zero


def test_the_freshest_forecast_of_a_valid_hour_wins():
    f00 = grid_rows(forecast_hour=0)
    f12 = grid_rows(forecast_hour=12, offset=50.0)
    rows, _ = hourly_feature_rows(pl.concat([f12, f00]).lazy(), None, "air_temp_c", lags=())
    assert rows.height == 6 and rows["forecast_hour"].unique().to_list() == [0.0]
    assert rows["grid_tmp_2m_k__centre"][0] == 270.0


def test_build_info_and_bad_input():
    table, info = build_hourly_table(grid_rows().lazy(), observations().lazy(), "air_temp_c", lags=(1,))
    assert info["resolution"] == "hourly" and info["resolution_days"] == 0 and info["feature_set"] == "grid"
    assert info["rows"] == 6 and info["rows_with_target"] == 6 and info["locations"] == ["S1"]
    assert info["period_start_min"].startswith("2023-01-01T00:00")
    with pytest.raises(TrainingTableError, match="not available hourly"):
        build_hourly_table(grid_rows().lazy(), None, "snow_depth_change_mm")
    with pytest.raises(TrainingTableError, match="unknown target"):
        build_hourly_table(grid_rows().lazy(), None, "nope")
    with pytest.raises(TrainingTableError, match="no neighbourhood feature columns"):
        build_hourly_table(grid_rows().drop("tmp_2m_k__centre", "tmp_2m_k__mean").lazy(), None, "air_temp_c")
    with pytest.raises(TrainingTableError, match="obs_snow_depth_mm is all null|no station has an observation"):
        build_hourly_table(grid_rows().lazy(), None, "snow_depth_mm")
    with pytest.raises(TrainingTableError, match="no rows for locations"):
        build_hourly_table(grid_rows().lazy(), None, "air_temp_c", locations=["S9"])
    with pytest.raises(TrainingTableError, match="positive whole numbers of hours"):
        build_hourly_table(grid_rows().lazy(), None, "air_temp_c", lags=(0,))
    with pytest.raises(TrainingTableError, match="lacks column"):
        build_hourly_table(grid_rows().drop("forecast_hour").lazy(), None, "air_temp_c")


def test_grid_features_missing_from_some_hours_are_dropped():
    full = grid_rows(hours=6).with_columns(pl.col("tmp_2m_k__mean").alias("dpt_2m_k__mean"))
    # dpt_2m_k was decoded only for the first two hours.
    mixed = pl.concat([full.filter(pl.col("valid_time") < T0 + dt.timedelta(hours=2)),
                       full.filter(pl.col("valid_time") >= T0 + dt.timedelta(hours=2)).drop("dpt_2m_k__mean")],
                      how="diagonal_relaxed")
    table, info = build_hourly_table(mixed.lazy(), None, "air_temp_c", lags=())
    assert "grid_dpt_2m_k__mean" not in table.columns and "grid_dpt_2m_k__mean" not in info["feature_columns"]
    assert info["dropped_grid_features"] == {"grid_dpt_2m_k__mean": 4}
    assert "grid_tmp_2m_k__mean" in info["feature_columns"]
    only = mixed.drop("tmp_2m_k__centre", "tmp_2m_k__mean")
    with pytest.raises(TrainingTableError, match="no grid variable is present in every hour"):
        build_hourly_table(only.lazy(), None, "air_temp_c", lags=())
