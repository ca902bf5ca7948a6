"""Model specs (lib/models/specs.py, defs/models/specs.py): the demo's spec files parse; a bad
spec is refused naming the file, what is wrong and the number needed; the spec sensor registers
valid files as model_specs partitions and quarantines the others; and two specs on one station
keep their own table, models, MLflow experiment and champion, neither overwriting the other."""

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest

from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.demo import DEMO_SPECS, spec_text
from snoiq_assets.defs.models.schedules import retrain_job
from snoiq_assets.defs.models.specs import model_spec_sensor
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.defs.partitions import model_spec_partitions
from snoiq_assets.lib.models.mlflow_conventions import experiment_name
from snoiq_assets.lib.models.specs import SpecError, check_table, parse_spec
from snoiq_assets.lib.models.store import champion_key
from snoiq_assets.lib.keys import safe_stand_in
from snoiq_assets.settings import Settings
from snoiq_assets_tests.automation.test_sensors import put_unchecked
from snoiq_assets_tests.helpers import failure_messages
from snoiq_assets_tests.models.conftest import (
    PORTLAND_SPEC, STATION, STATION_ASSETS, TABLE_UPSTREAM, land_spec, train_run_config,
)

WHERE = "raw/model_specs/s.yaml"
HOURLY = "target: air_temp_c\nlocations: [a]\nresolution: hourly\nleads: [1, 2]\n"


def test_the_demo_specs_parse_into_their_assets_configs():
    specs = {sid: parse_spec(spec_text(sid), sid, f"{sid}.yaml") for sid in DEMO_SPECS}
    portland = specs[PORTLAND_SPEC]
    assert (portland.target, portland.store_location, portland.hourly) == ("precip_mm", STATION, False)
    assert portland.table_config()["locations"] == [STATION] and portland.train_config("xgboost")["split_date"] == "2022-06-01"
    air, pavement = specs["rwis_air_temp"], specs["rwis_pavement_temp"]
    assert air.leads == pavement.leads == list(range(1, 19))
    assert (air.store_location, air.target, pavement.target) == ("indot_rwis", "air_temp_c", "surface_temp_c")
    train = air.train_config("lightgbm")
    assert train["residual_of"] == "raw_forecast" and train["hourly"] and train["hyperparameters"]["num_leaves"] == 31
    assert air.table_config()["forecast_source"] == "point_forecasts" and air.min_retrain_interval_minutes == 360


def test_bad_specs_are_refused_with_the_reason():
    bad = {
        "target: [1": "not valid YAML at line",
        "- a": "a model spec is a mapping",
        "target: snow_cover\nlocations: [a]\nresolution: daily": "unknown target 'snow_cover'; known targets:",
        "target: precip_mm\nlocations: [a]\nresolution: daily\nfeatures: [grid_TMP__median]":
            "unknown feature(s) ['grid_TMP__median']",
        HOURLY + "features: [rolling_7]": "unknown feature(s) ['rolling_7']",
        HOURLY.replace("[1, 2]", "[1, 49]"): "leads must be distinct whole hours 0..48; got [49]",
        HOURLY.replace("leads: [1, 2]\n", ""): "an hourly spec lists its lead hours",
        "target: precip_mm\nlocations: [a]\nresolution: daily\nleads: [1]": "leads are for hourly specs",
        "target: precip_mm\nlocations: [a]\nresolution: daily\ntransform: residual": "only hourly tables have",
        "target: precip_mm\nlocations: [a, b]\nresolution: daily": "2 locations need `location`",
        "target: precip_mm\nlocations: ['../etc']\nresolution: daily": "location '../etc' is not a safe identifier",
        "target: precip_mm\nlocations: [a]\nresolution: weekly": "resolution: Input should be 'daily' or 'hourly'",
        "target: precip_mm\nlocations: [a]\nresolution: daily\nsplit: {min_test_rows: 1}": "split.min_test_rows",
        "target: precip_mm\nlocations: [a]\nresolution: daily\nmodel_types: [svm]": "unknown model type(s) ['svm']",
        "target: precip_mm\nlocations: [a]\nresolution: daily\nextra: 1": "extra: Extra inputs are not permitted",
        "target: precip_mm\nlocations: [a]\nresolution: daily\nspec_id: other": "differs from the file name's 's'",
        "target: snow_depth_change_mm\nlocations: [a]\nresolution: hourly\nleads: [1]": "is not available hourly",
    }
    for text, message in bad.items():
        with pytest.raises(SpecError) as err:
            parse_spec(text, "s", WHERE)
        assert str(err.value).startswith(f"{WHERE}: ") and message in str(err.value), (text, str(err.value))
    with pytest.raises(SpecError, match="spec id 'a b' is not a safe identifier"):
        parse_spec("target: precip_mm", "a b", "raw/model_specs/a b.yaml")


def _forecast_table(leads_rows: dict[int, tuple[int, int]]) -> pl.DataFrame:
    """A forecast table with, per lead, (rows before 2019-03-01, rows from it) labelled."""
    rows = []
    for lead, (train, test) in leads_rows.items():
        for i in range(train + test):
            cycle = dt.datetime(2019, 2, 1) + dt.timedelta(hours=i) if i < train else \
                dt.datetime(2019, 3, 1) + dt.timedelta(hours=i - train)
            rows.append({"location": "a", "cycle_time": cycle, "forecast_hour": float(lead),
                         "period_start": cycle + dt.timedelta(hours=lead), "target": 1.0})
    return pl.DataFrame(rows).with_columns(pl.col("cycle_time", "period_start").dt.replace_time_zone("UTC"))


def test_a_spec_is_refused_when_the_data_lacks_its_leads_or_its_split_leaves_a_lead_too_few_rows():
    spec = parse_spec(HOURLY + "split: {split_date: '2019-03-01', min_train_rows: 20, min_test_rows: 10}", "s", WHERE)
    assert check_table(spec, _forecast_table({1: (30, 12), 2: (25, 10)})) == {
        "rows": 77, "leads": [1, 2], "train_rows": 55, "test_rows": 22}
    with pytest.raises(SpecError, match=r"lead\(s\) \[2\] are not in the data \(labelled rows have leads \[1\]\)"):
        check_table(spec, _forecast_table({1: (30, 12)}))
    with pytest.raises(SpecError) as err:
        check_table(spec, _forecast_table({1: (30, 12), 2: (25, 4)}))
    assert str(err.value) == ("spec s: split 2019-03-01 leaves too few rows (lead 2: 25 train / 4 test); each lead "
                              "needs at least 20 training and 10 test rows")


def spec_tick(instance, cursor, resources):
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": resources["store"]}) as ctx:
            return model_spec_sensor(Settings(), retrain_job)(ctx)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_spec_sensor_registers_valid_specs_and_quarantines_the_others(instance, store, resources):
    store.put(f"raw/model_specs/{PORTLAND_SPEC}.yaml", spec_text(PORTLAND_SPEC))
    store.put("raw/model_specs/typo.yaml", b"target: precip\nlocations: [a]\nresolution: daily\n")
    put_unchecked(store, "raw/model_specs/bad id.yaml", spec_text(PORTLAND_SPEC))
    result = spec_tick(instance, None, resources)
    (request,) = result.run_requests
    assert request.partition_key == PORTLAND_SPEC and request.tags["snoiq/spec"] == PORTLAND_SPEC
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == model_spec_partitions.name and list(add.partition_keys) == [PORTLAND_SPEC]
    assert "unknown target 'precip'" in store.get_json("quarantine/raw/model_specs/typo.yaml.reason.json")["reason"]
    reason = store.get_json("quarantine/unsafe/" + safe_stand_in("raw/model_specs/bad id.yaml") + ".reason.json")
    assert reason["original_key"] == "raw/model_specs/bad id.yaml"
    assert "raw/model_specs/bad id.yaml: the file name is not a spec id" in reason["reason"]
    assert [o.key for o in store.list("raw/model_specs/")] == [f"raw/model_specs/{PORTLAND_SPEC}.yaml"]
    instance.add_dynamic_partitions(model_spec_partitions.name, [PORTLAND_SPEC])   # as the daemon does with the request

    # A later spec claiming Portland's location and target (its champion would be overwritten): refused.
    store.put("raw/model_specs/portland_again.yaml", spec_text(PORTLAND_SPEC))
    again = spec_tick(instance, result.cursor, resources)
    assert not again.run_requests and again.skip_reason.skip_message.startswith("quarantined 1 spec file(s)")
    reason = store.get_json("quarantine/raw/model_specs/portland_again.yaml.reason.json")["reason"]
    assert reason == ("raw/model_specs/portland_again.yaml: location '72698024229' and target 'precip_mm' are spec "
                      "'portland_precip_daily''s (its models and champion live there); set another `location`")
    assert instance.get_dynamic_partitions(model_spec_partitions.name) == [PORTLAND_SPEC]


ASSETS = [*STATION_ASSETS, *TABLE_UPSTREAM, training_table, trained_models, champion_model]
AIR_TEMP_SPEC = "portland_air_temp_daily"


def _chain(instance, resources, spec_id):
    for name, cfg in (("training_table", {}), ("trained_models", train_run_config(model_types=["lightgbm", "xgboost"])),
                      ("champion_model", {})):
        res = dg.materialize(ASSETS, selection=[name], partition_key=spec_id, instance=instance, resources=resources,
                             run_config=cfg, raise_on_error=False)
        assert res.success, failure_messages(res)


def test_two_specs_on_one_station_keep_their_own_outputs(settings_env, instance, store, model_resources,
                                                         gsod_observations, mlflow_res):
    land_spec(instance, store, PORTLAND_SPEC)
    land_spec(instance, store, AIR_TEMP_SPEC, text=spec_text(PORTLAND_SPEC), target="air_temp_c",
              description="Daily mean air temperature at Portland")
    _chain(instance, model_resources, PORTLAND_SPEC)
    first = {key: store.get(key) for key in (f"lake/training_table/{PORTLAND_SPEC}.parquet",
                                             f"lake/trained_models/{PORTLAND_SPEC}.parquet",
                                             f"lake/champion_model/{PORTLAND_SPEC}.parquet",
                                             champion_key(STATION, "precip_mm"))}
    _chain(instance, model_resources, AIR_TEMP_SPEC)
    # The second spec wrote its own files; the first spec's are byte for byte as they were.
    for key, data in first.items():
        assert store.get(key) == data, key
    assert instance.get_materialized_partitions(dg.AssetKey("trained_models")) == {PORTLAND_SPEC, AIR_TEMP_SPEC}
    tables = {sid: pl.read_parquet(store.get(f"lake/training_table/{sid}.parquet")) for sid in (PORTLAND_SPEC, AIR_TEMP_SPEC)}
    assert tables[PORTLAND_SPEC]["target"].max() > 20 and tables[AIR_TEMP_SPEC]["target"].max() < 40  # mm/day vs degC
    for sid, target in ((PORTLAND_SPEC, "precip_mm"), (AIR_TEMP_SPEC, "air_temp_c")):
        trained = pl.read_parquet(store.get(f"lake/trained_models/{sid}.parquet"))
        assert trained["spec"].unique().to_list() == [sid] and trained["target"].unique().to_list() == [target]
        assert store.get_json(champion_key(STATION, target))["spec"] == sid
        # One MLflow experiment per spec, holding only that spec's runs.
        client = mlflow_res.client()
        experiment = client.get_experiment_by_name(experiment_name(sid)).experiment_id
        runs = client.search_runs([experiment])
        assert sorted(r.data.tags["model_type"] for r in runs) == ["lightgbm", "xgboost"]
        assert {r.data.tags["spec"] for r in runs} == {sid}
        # Each spec's partition page links its experiment and its champion.
        for asset in ("trained_models", "champion_model"):
            (record,) = instance.fetch_materializations(dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(asset), asset_partitions=[sid]), limit=1).records
            md = record.asset_materialization.metadata
            assert md["mlflow_experiment"].value == f"http://127.0.0.1:5000/#/experiments/{experiment}", asset
        assert md["spec"].value == sid and md["champion"].value.endswith(champion_key(STATION, target))
    with duckdb.connect(str(settings_env.duckdb_path), read_only=True) as con:
        rows = con.execute("SELECT spec_key, target, count(*) FROM experiments GROUP BY ALL ORDER BY 1").fetchall()
    assert rows == [(AIR_TEMP_SPEC, "air_temp_c", 2), (PORTLAND_SPEC, "precip_mm", 2)]
