"""Sweep files: parsing and checks (lib/models/sweeps.py), and sweep_sensor turning a landed
file into trained_models runs of the model spec it names, that land in the experiments table
under the sweep's id."""

import dagster as dg
import duckdb
import pytest

from snoiq_assets.defs.models.sensors import sweep_sensor
from snoiq_assets.settings import Settings
from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.lib.models.sweeps import MAX_RUNS, SweepError, parse_sweep
from snoiq_assets_tests.models.conftest import PORTLAND_SPEC, STATION_ASSETS, TABLE_UPSTREAM, land_spec

SWEEP = f"""
spec: {PORTLAND_SPEC}
tag: depth-rate
description: does tree depth matter more than the learning rate?
model_types: [xgboost, lightgbm]
parallel: 2
base:
  cv_folds: 0
  hyperparameters: {{n_estimators: 30}}
grid:
  max_depth: [2, 3]
  learning_rate: [0.05, 0.1]
"""


def test_parse_sweep_and_what_it_refuses():
    spec = parse_sweep(SWEEP, "s1", "raw/sweeps/s1.yaml", config_fields={"cv_folds", "hyperparameters", "tag",
                                                                         "description"})
    assert spec.spec_id == PORTLAND_SPEC and spec.model_types == ("xgboost", "lightgbm") and spec.parallel == 2 and spec.runs == 8
    assert spec.grid == {"max_depth": [2, 3], "learning_rate": [0.05, 0.1]}
    # The sweep's tag and description reach every run's config (and so its experiments row).
    assert spec.base["tag"] == "depth-rate" and spec.base["description"].startswith("does tree depth")
    bad = {
        "grid: [1, 2": "not valid YAML at line",
        "- a\n- b": "a sweep is a mapping",
        "grid: {a: [1]}": "a sweep names the model spec it trains",
        "spec: ../x\ngrid: {a: [1]}": "spec '../x' is not a safe identifier",
        "spec: p\ngrid: {a: [1]}\nextra: 1": "unknown key(s) ['extra']",
        "spec: p\ngrid: {}": "grid must be a non-empty mapping",
        "spec: p\ngrid: {a: 3}": "grid.a must be a non-empty list",
        "spec: p\ngrid: {a: [[1]]}": "values must be numbers",
        "spec: p\ngrid: {a: [1]}\nmodel_types: [svm]": "model_types must be a non-empty list",
        "spec: p\ngrid: {a: [1]}\nparallel: 0": "parallel must be a whole number",
        "spec: p\ngrid: {a: [1]}\nbase: {sweep_id: x}": "must not set sweep_id",
        "spec: p\ngrid: {a: [1]}\nbase: {nope: 1}": "base has key(s) ['nope']",
        f"spec: p\ngrid: {{a: {list(range(MAX_RUNS + 1))}}}": f"more than the {MAX_RUNS}",
        "spec: p\ngrid: {a: [1]}\ntag: two words": "tag 'two words' is not a safe identifier",
        "spec: p\ngrid: {a: [1]}\ntag: x\nbase: {tag: y}": "tag is given both at the top and in base",
        f"spec: p\ngrid: {{a: [1]}}\ntag: {'t' * 65}": "longer than 64 characters",
        "spec: p\ngrid: {a: [1]}\ndescription: [1]": "description must be text",
    }
    for text, message in bad.items():
        with pytest.raises(SweepError, match=None) as err:
            parse_sweep(text, "s1", "raw/sweeps/s1.yaml", config_fields={"target"})
        assert message in str(err.value) and "raw/sweeps/s1.yaml" in str(err.value), (text, str(err.value))


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_sensor_quarantines_a_sweep_of_an_unknown_spec_and_queues_nothing(settings_env, instance, store,
                                                                         model_resources):
    store.put("raw/sweeps/nowhere.yaml", b"spec: nowhere\ngrid: {max_depth: [2, 3]}\n")
    result = tick(instance, None, model_resources)
    assert not result.run_requests
    assert result.skip_reason.skip_message == "quarantined 1 sweep file(s) that cannot run: raw/sweeps/nowhere.yaml"
    reason = store.get_json("quarantine/raw/sweeps/nowhere.yaml.reason.json")["reason"]
    assert reason == ("raw/sweeps/nowhere.yaml: model spec 'nowhere' is not registered; "
                      "land raw/model_specs/nowhere.yaml first")


def tick(instance, cursor, resources):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": resources["store"]}) as ctx:
        return sweep_sensor(Settings())(ctx)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_sensor_starts_one_run_per_grid_point_and_quarantines_bad_files(settings_env, instance, model_resources,
                                                                        store, gsod_observations):
    land_spec(instance, store, PORTLAND_SPEC)
    store.put("raw/sweeps/depth-rate.yaml", SWEEP.encode())
    store.put("raw/sweeps/broken.yaml", b"grid: {max_depth: [2, 3]\n")
    store.put("raw/sweeps/wrong-type.yaml", f"spec: {PORTLAND_SPEC}\nbase: {{cv_folds: many}}\ngrid: {{max_depth: [2]}}\n".encode())
    result = tick(instance, None, model_resources)
    requests = result.run_requests
    assert len(requests) == 8 and len({r.run_key for r in requests}) == 8
    assert {r.partition_key for r in requests} == {PORTLAND_SPEC}
    types = [r.run_config["ops"]["trained_models"]["config"]["model_types"] for r in requests]
    assert sorted(map(tuple, types)) == [("lightgbm",)] * 4 + [("xgboost",)] * 4
    assert all(r.tags == {"snoiq/kind": "sweep", "snoiq/sweep_id": "depth-rate"} for r in requests)
    configs = [r.run_config["ops"]["trained_models"]["config"] for r in requests
               if r.run_config["ops"]["trained_models"]["config"]["model_types"] == ["xgboost"]]
    assert sorted((c["hyperparameters"]["max_depth"], c["hyperparameters"]["learning_rate"]) for c in configs) == [
        (2, 0.05), (2, 0.1), (3, 0.05), (3, 0.1)]
    assert all(c["hyperparameters"]["n_estimators"] == 30 and c["sweep_id"] == "depth-rate" for c in configs)
    # The two bad files are in quarantine with their reasons; the good one stays where it landed.
    assert not store.exists("raw/sweeps/broken.yaml") and store.exists("raw/sweeps/depth-rate.yaml")
    assert "not valid YAML" in store.get_json("quarantine/raw/sweeps/broken.yaml.reason.json")["reason"]
    reason = store.get_json("quarantine/raw/sweeps/wrong-type.yaml.reason.json")["reason"]
    assert "base is not a valid trained_models config" in reason and "cv_folds" in reason

    again = tick(instance, result.cursor, model_resources)
    assert not again.run_requests and "no new or changed files" in again.skip_reason.skip_message

    # Run two of the requested runs as the daemon would launch them: both land in experiments.
    assert dg.materialize([*STATION_ASSETS, *TABLE_UPSTREAM, training_table], selection=["training_table"], instance=instance,
                          resources=model_resources, partition_key=PORTLAND_SPEC).success
    for r in requests[:2]:
        assert dg.materialize([*STATION_ASSETS, *TABLE_UPSTREAM, training_table, trained_models], selection=["trained_models"],
                              instance=instance, resources=model_resources, run_config=r.run_config,
                              partition_key=r.partition_key, tags=r.tags).success
    with duckdb.connect(str(settings_env.duckdb_path), read_only=True) as con:
        rows = con.execute("select sweep_id, model_type, status, tag, description from experiments "
                           "order by started_at").fetchall()
    question = "does tree depth matter more than the learning rate?"
    assert rows == [("depth-rate", r.run_config["ops"]["trained_models"]["config"]["model_types"][0], "success",
                     "depth-rate", question) for r in requests[:2]]
