"""training_table: aggregation, rolling windows without leakage, lags, station-only and grid
paths, outcome targets, bad input; and the asset through Dagster on both backends."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.partitions import outcome_location_partitions
from snoiq_assets.lib.hours import keys_between
from snoiq_assets.lib.lake import stored_metadata, stored_partition_keys
from snoiq_assets.lib.features.training import (
    TrainingTableError, TrainingTableSpec, build_training_table, daily_grid_features, info_from_schema_metadata,
)
from snoiq_assets_tests.helpers import failure_messages
from snoiq_assets_tests.models.conftest import STATION, STATION_ASSETS, gsod_clean, land_spec
from snoiq_assets_tests.models.conftest import gsod_observations, mlflow_res, model_resources  # noqa: F401 (fixtures)

UTC = pl.Datetime("us", "UTC")


def hourly_obs(days=40, station="S1"):
    ts = pl.datetime_range(dt.datetime(2021, 1, 1), dt.datetime(2021, 1, 1) + dt.timedelta(days=days) - dt.timedelta(hours=1),
                           "1h", eager=True, time_zone="UTC")
    n = len(ts)
    return pl.DataFrame({
        "station_id": [station] * n, "timestamp_utc": ts, "resolution": ["hourly"] * n,
        "air_temp_c": [float(i % 24) for i in range(n)], "precip_mm": [1.0 if i % 24 == 0 else 0.0 for i in range(n)],
        "snow_depth_mm": [float(i // 24) for i in range(n)],
    })


def test_daily_weekly_monthly_aggregation_of_real_gsod():
    obs = gsod_clean()
    daily, info = build_training_table(obs.lazy(), TrainingTableSpec(target="precip_mm", resolution_days=1))
    weekly, _ = build_training_table(obs.lazy(), TrainingTableSpec(target="precip_mm", resolution_days=7))
    monthly, _ = build_training_table(obs.lazy(), TrainingTableSpec(target="precip_mm", resolution_days=30))
    assert daily.height == 2923 and info["feature_set"] == "station"
    assert set(weekly["period_start"].dt.weekday().unique()) == {1}  # ISO weeks start Monday
    assert set(monthly["period_start"].dt.day().unique()) == {1}
    jan17 = obs.filter(pl.col("timestamp_utc").dt.strftime("%Y-%m") == "2017-01")["precip_mm"].sum()
    assert monthly.filter(pl.col("period_start") == dt.date(2017, 1, 1))["target"].item() == pytest.approx(jan17)
    wk = daily.filter(pl.col("period_start").is_between(dt.date(2017, 1, 9), dt.date(2017, 1, 15)))["target"].sum()
    assert weekly.filter(pl.col("period_start") == dt.date(2017, 1, 9))["target"].item() == pytest.approx(wk)
    # The target's own same-period value is never a feature; its lags and earlier rolls are.
    assert "precip_mm" not in info["feature_columns"] and "target__lag1" in info["feature_columns"]
    for w in (3, 7, 14, 30):
        assert f"air_temp_c__roll{w}d" in info["feature_columns"]


def test_rolling_means_use_only_days_before_the_period():
    t, _ = build_training_table(hourly_obs().lazy(), TrainingTableSpec(target="snow_depth_mm", resolution_days=1))
    # snow depth on day d is d: the 3-day roll at day 10 is mean(7, 8, 9) = 8, not including day 10.
    row = t.filter(pl.col("period_start") == dt.date(2021, 1, 11)).row(0, named=True)
    assert row["target"] == 10.0 and row["snow_depth_mm__roll3d"] == pytest.approx(8.0)
    assert row["target__lag1"] == 9.0 and row["target__lag2"] == 8.0
    assert row["precip_mm"] == 1.0 and row["air_temp_c"] == pytest.approx(11.5)  # hourly -> daily sum / mean


def test_snow_depth_change_target():
    t, _ = build_training_table(hourly_obs().lazy(), TrainingTableSpec(target="snow_depth_change_mm", resolution_days=7))
    assert t.filter(pl.col("period_start") == dt.date(2021, 1, 11))["target"].item() == pytest.approx(7.0)


def test_grid_features_are_read_in_chunks_and_joined():
    hours = pl.datetime_range(dt.datetime(2021, 1, 31, 22), dt.datetime(2021, 2, 1, 1), "1h", eager=True, time_zone="UTC")
    frames = [pl.DataFrame({"station_id": ["S1"], "valid_time": [h], "tmp2m__mean": [float(i)]}) for i, h in enumerate(hours)]
    # A day split across two chunks (two files each) still averages correctly.
    daily = daily_grid_features([pl.concat(frames[:1]).lazy(), pl.concat(frames[1:3]).lazy(), frames[3].lazy()])
    by_day = dict(zip(daily["date"].to_list(), daily["grid_tmp2m__mean"].to_list()))
    assert by_day[dt.date(2021, 1, 31)] == pytest.approx(0.5) and by_day[dt.date(2021, 2, 1)] == pytest.approx(2.5)
    t, info = build_training_table(hourly_obs().lazy(), TrainingTableSpec(target="precip_mm"), grid_daily=daily)
    assert info["feature_set"] == "station+grid" and "grid_tmp2m__mean" in info["feature_columns"]
    assert t.filter(pl.col("period_start") == dt.date(2021, 2, 1))["grid_tmp2m__mean"].item() == pytest.approx(2.5)
    assert t.filter(pl.col("period_start") == dt.date(2021, 1, 5))["grid_tmp2m__mean"].item() is None


def test_outcome_target():
    outcome = pl.DataFrame({"location": ["S1"] * 3, "date": [dt.date(2021, 1, d) for d in (5, 6, 7)], "value": [1.0, 2.0, 3.0]})
    t, info = build_training_table(hourly_obs().lazy(), TrainingTableSpec(target="outcome"), outcome=outcome.lazy())
    assert t.filter(pl.col("period_start") == dt.date(2021, 1, 6))["target"].item() == 2.0
    assert t["target"].is_not_null().sum() == 3 and info["target"] == "outcome"
    with pytest.raises(TrainingTableError, match="needs outcome_of_interest"):
        build_training_table(hourly_obs().lazy(), TrainingTableSpec(target="outcome"))


def test_bad_input_is_named():
    obs = hourly_obs()
    with pytest.raises(TrainingTableError, match=r"duplicate hours.*S1 at 2021-01-01T00:00Z \(2 rows\)"):
        build_training_table(pl.concat([obs, obs.head(1)]).lazy(), TrainingTableSpec())
    for bad in (0, -7, 1.5, float("nan"), "7", True):
        with pytest.raises(TrainingTableError, match="resolution_days must be a positive whole number"):
            TrainingTableSpec(resolution_days=bad)
    with pytest.raises(TrainingTableError, match="unknown target 'snow'.*snow_depth_mm"):
        TrainingTableSpec(target="snow")
    with pytest.raises(TrainingTableError, match="needs column 'snowfall_mm'"):
        build_training_table(obs.lazy(), TrainingTableSpec(target="snowfall_mm"))
    with pytest.raises(TrainingTableError, match="all null"):
        build_training_table(obs.with_columns(pl.lit(None, pl.Float64).alias("precip_mm")).lazy(), TrainingTableSpec())
    with pytest.raises(TrainingTableError, match="lacks column"):
        build_training_table(obs.drop("timestamp_utc").lazy(), TrainingTableSpec())
    with pytest.raises(TrainingTableError, match="no rows for locations"):
        build_training_table(obs.lazy(), TrainingTableSpec(locations=("OTHER",)))


OUTCOMES = dg.AssetSpec("outcome_of_interest", partitions_def=outcome_location_partitions)  # none stored here


@dg.asset(partitions_def=dg.HourlyPartitionsDefinition(start_date="2020-12-01T00", fmt="%Y-%m-%dT%H", timezone="UTC"),
          group_name="features")
def grid_join_features(context: dg.AssetExecutionContext) -> pl.DataFrame:
    """Test upstream with the grid contract: per station and valid_time, <var>__<stat> columns."""
    t = dt.datetime.strptime(context.partition_key, "%Y-%m-%dT%H").replace(tzinfo=dt.timezone.utc)
    return pl.DataFrame({"station_id": [STATION], "valid_time": [t], "tmp2m__mean": [float(t.hour)]},
                        schema_overrides={"valid_time": UTC})


def test_asset_station_only_then_with_grid(settings_env, instance, model_resources, gsod_observations):
    from snoiq_assets.lib.storage import store_from_settings

    assets = [*STATION_ASSETS, grid_join_features, OUTCOMES, training_table]
    store = store_from_settings(settings_env)
    spec = {"target": "precip_mm", "resolution": "daily", "resolution_days": 7, "locations": [STATION]}
    land_spec(instance, store, "weekly", text="{}", **spec)
    res = dg.materialize(assets, selection=["training_table"], instance=instance, resources=model_resources,
                         partition_key="weekly")
    md = res.asset_materializations_for_node("training_table")[0].metadata
    assert md["feature_set"].value == "station" and md["grid_hours_used"].value == 0 and md["spec"].value == "weekly"
    info = info_from_schema_metadata(stored_metadata(store, dg.AssetKey("training_table"), "weekly"))
    assert info["resolution_days"] == 7 and info["target"] == "precip_mm"

    for pk in ("2021-01-04T00", "2021-01-04T12", "2021-02-01T06"):
        assert dg.materialize(assets, selection=["grid_join_features"], instance=instance, resources=model_resources,
                              partition_key=pk).success
    stored = stored_partition_keys(store, "grid_join_features")
    assert keys_between(stored, dt.date(2021, 1, 1), dt.date(2021, 1, 31)) == ["2021-01-04T00", "2021-01-04T12"]
    assert "2021-02-01T06" in stored
    land_spec(instance, store, "weekly", text="{}", **spec, table={"start_date": "2020-06-01", "end_date": "2021-01-31"})
    res = dg.materialize(assets, selection=["training_table"], instance=instance, resources=model_resources,
                         partition_key="weekly")
    md = res.asset_materializations_for_node("training_table")[0].metadata
    assert md["feature_set"].value == "station+grid" and md["grid_hours_used"].value == 2
    assert md["period_start_max"].value <= "2021-01-31"

    # The spec file rewritten with a bad value after it was registered: the run names the file and the problem.
    store.put("raw/model_specs/weekly.yaml", b"target: precip_mm\nresolution: daily\nresolution_days: 0\nlocations: [x]\n")
    res = dg.materialize(assets, selection=["training_table"], instance=instance, resources=model_resources,
                         partition_key="weekly", raise_on_error=False)
    assert not res.success
    assert "raw/model_specs/weekly.yaml: resolution_days: Input should be greater than or equal to 1" in failure_messages(res)
