"""The road-weather spec through the assets on a real slice: two INDOT stations' observation
files and HRRR point-forecast files landed in the raw zone -> observations_clean ->
training_table (the road-weather spec's file: forecast_source point_forecasts, leads 1-18) ->
trained_models (per-lead skill as metadata and MLflow artifacts) -> champion_model (promoted
only when every baseline is beaten at every lead, the decision says why), all in the spec's
partition. A broken point-forecast file is quarantined with its reason and the others carry on."""

import datetime as dt
import gzip

import duckdb

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.lib.lake import partition_object_key
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.defs.partitions import hourly_partitions, outcome_location_partitions
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, register_station_files
from snoiq_assets.lib.models.store import champion_key, read_metadata
from snoiq_assets_tests.models.conftest import land_spec

SITES = ["fort_wayne", "gas_city"]
# grid_join_features and outcome_of_interest are declared inputs of training_table; none is stored.
ASSETS = [observations_raw, observations_clean, training_table, trained_models, champion_model,
          dg.AssetSpec("grid_join_features", partitions_def=hourly_partitions),
          dg.AssetSpec("outcome_of_interest", partitions_def=outcome_location_partitions)]
# Two weeks of February to train on, the first week of March to test on.
FIRST, SPLIT, LAST = dt.date(2019, 2, 15), "2019-03-01", dt.date(2019, 3, 7)
LEADS = list(range(1, 19))
SPEC = "rwis_air_temp"
# The demo's spec file, on two stations and three weeks.
OVER = {"location": "indot_two", "locations": SITES, "table": {"start_date": str(FIRST), "end_date": str(LAST)},
        "model_types": ["lightgbm"],
        "hyperparameters": {"lightgbm": {"n_estimators": 80, "learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20}}}


def _slice(sample_dir, site: str) -> bytes:
    """The site's real point-forecast file cut to the cycles of the test window (same text)."""
    lines = gzip.decompress((sample_dir / f"road_weather/hrrr_points_{site}_2018-12_2019-03.csv.gz").read_bytes()).decode().split("\n")
    keep = [ln for ln in lines[1:] if ln and str(FIRST - dt.timedelta(days=1)) <= ln.split(",")[1][:10] <= str(LAST)]
    return gzip.compress(("\n".join([lines[0], *keep]) + "\n").encode())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_road_weather_spec_through_the_assets(sample_dir, instance, model_resources, store, mlflow_res):
    for site in SITES:
        store.put_file(f"raw/observations/{site}.csv", sample_dir / f"road_weather/rwis_obs_{site}_2018-12_2019-03.csv")
        store.put(f"raw/point_forecasts/indot_rwis/{site}.csv.gz", _slice(sample_dir, site))
    store.put("raw/point_forecasts/indot_rwis/broken.csv", b"site,forecast_hour,valid_time_utc,tmp_2m_K\nx,1,2019-03-01T01:00Z,270\n")
    register_station_files(instance, store)
    for site in SITES:
        assert dg.materialize(ASSETS, selection=["observations_raw", "observations_clean", "observations_rejects"], partition_key=site,
                              resources=model_resources, instance=instance).success

    land_spec(instance, store, SPEC, **OVER)
    res = dg.materialize(ASSETS, selection=["training_table"], resources=model_resources, instance=instance,
                         partition_key=SPEC)
    assert res.success
    meta = res.asset_materializations_for_node("training_table")[0].metadata
    assert meta["point_forecast_files"].value == 2 and meta["leads"].value == ", ".join(map(str, LEADS))
    assert meta["missing_features"].value["rows_affected"] == 0
    reason = store.get_json("quarantine/raw/point_forecasts/indot_rwis/broken.csv.reason.json")
    assert "no cycle column" in reason["reason"] and not store.exists("raw/point_forecasts/indot_rwis/broken.csv")
    table = pl.read_parquet(store.get(partition_object_key(dg.AssetKey("training_table"), SPEC)))
    assert sorted(table["location"].unique().to_list()) == SITES
    assert sorted(table["forecast_hour"].unique().to_list()) == [float(k) for k in LEADS]

    res = dg.materialize(ASSETS, selection=["trained_models"], partition_key=SPEC, resources=model_resources,
                         instance=instance)
    assert res.success
    m = {k.removeprefix("lightgbm/"): v for k, v in res.asset_materializations_for_node("trained_models")[0].metadata.items()}
    table_md = m["rmse_by_lead"].value
    assert table_md.startswith("| lead_hour | lightgbm | persistence | climatology | raw_forecast |")
    assert table_md.count("\n") == 1 + 18
    failures = m["baseline_failures"].value
    assert m["beats_baselines_every_lead"].value == (failures == [])
    run = mlflow_res.client().get_run(m["mlflow_run_id"].value)
    artifacts = {a.path for a in mlflow_res.client().list_artifacts(run.info.run_id)}
    assert {"skill_by_lead.csv", "rmse_by_lead.png"} <= artifacts
    # The per-lead table in DuckDB, as the analysis app reads it: the model and its three baselines.
    with duckdb.connect(str(model_resources["duckdb"].database), read_only=True) as con:
        skill = con.execute("select model, count(*), min(lead_hour), max(lead_hour) from skill_by_lead "
                            f"where spec_id = '{SPEC}' group by model order by model").fetchall()
    assert skill == [(m, 18, 1, 18) for m in ("climatology", "lightgbm", "persistence", "raw_forecast")]
    prefix = pl.read_parquet(store.get(partition_object_key(dg.AssetKey("trained_models"), SPEC)))["model_prefix"][0]
    stored = read_metadata(store, prefix)
    assert stored["residual_of"] == "raw_forecast" and stored["training_window"]["test_cycles_from"] == SPLIT

    res = dg.materialize(ASSETS, selection=["champion_model"], resources=model_resources, instance=instance,
                         partition_key=SPEC)
    assert res.success
    decision = res.asset_materializations_for_node("champion_model")[0].metadata
    # Promoted exactly when the model beat every baseline at every lead; otherwise the reason names them.
    assert decision["promoted"].value == (failures == [])
    assert store.exists(champion_key("indot_two", "air_temp_c")) == (failures == [])
    if failures:
        assert decision["reason"].value.startswith("no candidate beats every baseline") and failures[0] in decision["reason"].value
