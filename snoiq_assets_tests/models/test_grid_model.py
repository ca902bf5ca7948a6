"""A model on grid-join features, end to end through Dagster on a real instance:

48 HRRR hours on the real HRRR grid (2023-01-01T01..2023-01-03T00, written with ecCodes from
the real APCP message) covering the real USCRN CO Nunn 7 NNE hourly file -> hrrr_raw ->
hrrr_fields -> grid_join_features (one single-run range) -> an hourly model spec's training
table -> trained_models (all three types in one run) -> champion_model.

The grid values are synthetic (smooth fields with a diurnal phase), so no skill is claimed:
what is checked is that every feature is the number it claims to be and that the models train
on grid features with time-ordered splits between hours. Such a model does not beat its
baselines (at lead 0 persistence, the observation at the cycle time, is the target itself), so
champion_model refuses it, saying why, and hourly_predictions and feature_predictions_sensor
keep waiting for a champion: the promotion rule has no switch. The road-weather case
(test_road_weather.py) is where a model earns promotion on real data.
"""

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
import pytest

from snoiq_assets.defs.models.sensors import feature_predictions_sensor
from snoiq_assets.defs.features.assets import grid_join_features, station_grid_index
from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw
from snoiq_assets.defs.hrrr.demo import seed_synthetic_hours
from snoiq_assets.lib.lake import partition_object_key, stored_metadata
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.predictions import hourly_predictions, predictions
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.defs.partitions import outcome_location_partitions
from snoiq_assets.defs.stations.assets import register_station_files
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, station_metadata
from snoiq_assets.defs.stations.demo import seed_demo as seed_stations
from snoiq_assets.lib.features.training import info_from_schema_metadata
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.hrrr.synth import demo_values
from snoiq_assets.lib.models.store import champion_key, read_metadata
from snoiq_assets.lib.models.train import MODEL_TYPES
from snoiq_assets.settings import Settings
from snoiq_assets_tests.helpers import failure_messages
from snoiq_assets_tests.models.conftest import land_spec

UTC = dt.timezone.utc
NUNN = "94074"  # USCRN CO Nunn 7 NNE: hourly rows 2023-01-01T01 .. 2023-01-03T00 UTC
FIRST, LAST = "2023-01-01T01", "2023-01-03T00"
HOURS = [(dt.datetime(2023, 1, 1, 1) + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(48)]
VARIABLES = ["tmp_2m_k", "dpt_2m_k", "apcp_kg_m2"]
SEL = {"leads": [0], "variables": VARIABLES}
ASSETS = [hrrr_raw, hrrr_grid, hrrr_fields, station_metadata, observations_raw, observations_clean, station_grid_index,
          grid_join_features, training_table, trained_models, champion_model, predictions, hourly_predictions,
          dg.AssetSpec("outcome_of_interest", partitions_def=outcome_location_partitions)]  # declared, none stored
HOUR_RANGE = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
SPEC_ID = "nunn_grid"
# 48 labelled hours: the last quarter (12 h) is held out; two rolling-origin folds in the 36
# training hours. The minimums are lowered knowingly: two days of hours is what is bundled.
SPEC = {"target": "air_temp_c", "locations": [NUNN], "resolution": "hourly", "leads": [0],
        "split": {"test_fraction": 0.25, "cv_folds": 2, "min_train_rows": 12, "min_test_rows": 8},
        "hyperparameters": {mt: {"n_estimators": 40, "max_depth": 3} for mt in MODEL_TYPES}}


def mat(resources, instance, selection, run_config=None, **kwargs):
    return dg.materialize(ASSETS, selection=selection, resources=resources, instance=instance,
                          run_config=run_config or {}, **kwargs)


def tick(instance, cursor, store_resource):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": store_resource}) as ctx:
        return feature_predictions_sensor(Settings())(ctx)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_hourly_grid_model_trains_promotes_and_predicts_each_feature_partition(
        settings_env, instance, model_resources, store, mlflow_res):
    resources = model_resources
    seed_stations(store)
    register_station_files(instance, store)
    seed_synthetic_hours(store, HOURS, columns=VARIABLES, packing="grid_ccsds")
    grid_cfg = {"ops": {"hrrr_grid": {"config": {"source_key": landing_key(dt.datetime(2023, 1, 1, 1, tzinfo=UTC), 0)}}}}
    assert mat(resources, instance, ["hrrr_grid"], grid_cfg).success
    assert mat(resources, instance, ["station_metadata"]).success
    assert mat(resources, instance, ["station_grid_index"]).success
    assert mat(resources, instance, ["observations_raw", "observations_clean", "observations_rejects"], partition_key=NUNN).success

    # The sensor starts at the newest grid_join_features materialisation (none yet).
    started = tick(instance, None, resources["store"])
    assert "from now on" in started.skip_reason.skip_message
    cursor0 = started.cursor

    sel = {"ops": {"hrrr_raw": {"config": dict(SEL)}, "hrrr_fields": {"config": dict(SEL)}}}
    assert mat(resources, instance, ["hrrr_raw", "hrrr_fields", "grid_join_features"], sel, tags=HOUR_RANGE).success

    # --- the hourly training table -----------------------------------------------------------
    land_spec(instance, store, SPEC_ID, text="{}", **SPEC)
    assert mat(resources, instance, ["training_table"], partition_key=SPEC_ID).success
    table = pl.read_parquet(store.get(partition_object_key(dg.AssetKey("training_table"), SPEC_ID)))
    info = info_from_schema_metadata(stored_metadata(resources["store"].get_store(), dg.AssetKey("training_table"), SPEC_ID))
    assert info["resolution"] == "hourly" and info["grid_partitions"]["count"] == 48
    assert table.height == 48 and table["location"].unique().to_list() == [NUNN]
    assert table["period_start"].dt.strftime("%Y-%m-%dT%H").to_list() == HOURS
    grid_feats = [f for f in info["feature_columns"] if f.startswith("grid_")]
    assert len(grid_feats) == 3 * 7 and "grid_tmp_2m_k__centre" in grid_feats
    # Each grid feature is the decoded field at the station's cell: the values ecCodes wrote.
    index = pl.read_parquet(store.get(partition_object_key(dg.AssetKey("station_grid_index"), None)))
    cell = index.filter(pl.col("station_id") == NUNN).row(0, named=True)
    for i in (0, 17, 47):
        hour = dt.datetime.strptime(HOURS[i], "%Y-%m-%dT%H")
        want = demo_values("tmp_2m_k", hour.hour).reshape(1059, 1799)[cell["grid_y"], cell["grid_x"]]
        assert table["grid_tmp_2m_k__centre"][i] == pytest.approx(want, abs=0.05)
    # The target is the real USCRN hourly temperature; its lags are earlier hours' observations.
    nunn = pl.read_parquet(store.get(partition_object_key(dg.AssetKey("observations_clean"), NUNN))).sort("timestamp_utc")
    assert table["target"].to_list() == pytest.approx(nunn["air_temp_c"].to_list())
    assert table["target__lag1h"][1:].to_list() == pytest.approx(nunn["air_temp_c"][:-1].to_list())
    assert table["target__lag1h"][0] is None

    # --- no champion yet: hourly_predictions says so, the sensor waits -----------------------
    res = mat(resources, instance, ["hourly_predictions"], partition_key=HOURS[0], raise_on_error=False)
    assert not res.success and "no hourly champion" in failure_messages(res)
    waiting = tick(instance, cursor0, resources["store"])
    assert "48 new grid_join_features partition(s), but no hourly champion" in waiting.skip_reason.skip_message

    # --- all three model types in one run, then the champion ---------------------------------
    res = mat(resources, instance, ["trained_models"], partition_key=SPEC_ID)
    assert res.success
    (m,) = res.asset_materializations_for_node("trained_models")
    stored = pl.read_parquet(store.get(partition_object_key(dg.AssetKey("trained_models"), SPEC_ID)))
    assert sorted(stored["model_type"]) == sorted(MODEL_TYPES)
    for mt, prefix in zip(stored["model_type"], stored["model_prefix"]):
        assert m.metadata[f"{mt}/train_window"].value == "2023-01-01T01:00..2023-01-02T12:00", mt
        assert m.metadata[f"{mt}/test_window"].value == "2023-01-02T13:00..2023-01-03T00:00", mt
        assert np.isfinite(m.metadata[f"{mt}/rmse"].value) and np.isfinite(m.metadata[f"{mt}/cv_rmse_mean"].value)
        meta = read_metadata(store, prefix)
        assert meta["resolution"] == "hourly" and meta["training_window"]["test_rows"] == 12
        assert set(grid_feats) <= set(meta["features"]) and "target__lag24h" in meta["features"]
        run = mlflow_res.client().get_run(m.metadata[f"{mt}/mlflow_run_id"].value)
        assert run.data.params["hourly"] == "True" and run.info.status == "FINISHED"

    res = mat(resources, instance, ["champion_model"], partition_key=SPEC_ID)
    assert res.success
    decision = res.asset_materializations_for_node("champion_model")[0].metadata
    assert decision["promoted"].value is False
    reason = decision["reason"].value
    assert reason.startswith("no candidate beats every baseline") and "lead 0: persistence RMSE 0.000" in reason
    assert all(mt in reason for mt in MODEL_TYPES)
    assert not store.exists(champion_key(NUNN, "air_temp_c"))
    res = mat(resources, instance, ["hourly_predictions"], partition_key=HOURS[0], raise_on_error=False)
    assert not res.success and "no hourly champion" in failure_messages(res)
    waiting = tick(instance, cursor0, resources["store"])
    assert "but no hourly champion" in waiting.skip_reason.skip_message
