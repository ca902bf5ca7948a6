"""End to end through Dagster on the real GSOD Portland file and the demo's daily precipitation
spec: the real observations_clean (stations parser) -> training_table -> trained_models
(xgboost, lightgbm, random forest) -> champion_model -> predictions, all in the spec's partition,
on both backends, with a real MLflow (SQLite tracking, artifacts on the backend) and the DuckDB
experiments table."""

import datetime as dt

import duckdb
import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.predictions import predictions
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.lib.models.train import MODEL_TYPES
from snoiq_assets.lib.models.evaluate import feature_matrix
from snoiq_assets.lib.models.store import champion_key, load_bundle, predictions_key
from snoiq_assets.lib.models.mlflow_conventions import experiment_name
from snoiq_assets.lib.storage import store_from_settings
from snoiq_assets_tests.helpers import failure_messages
from snoiq_assets_tests.models.conftest import (
    FAST, PORTLAND_SPEC as SPEC, STATION, STATION_ASSETS, TABLE_UPSTREAM, land_spec, train_run_config as train_config,
)

ASSETS = [*STATION_ASSETS, *TABLE_UPSTREAM, training_table, trained_models, champion_model, predictions]
CHAIN = ["training_table", "trained_models", "champion_model", "predictions"]
DAILY_PRECIP = experiment_name(SPEC)
PREDICT_2023 = {"config": {"start_date": "2023-01-01", "end_date": "2023-12-31"}}


def run(instance, resources, select, run_config=None, partition_key=SPEC, raise_on_error=True, tags=None):
    return dg.materialize(ASSETS, selection=select, instance=instance, resources=resources, run_config=run_config or {},
                          partition_key=partition_key, raise_on_error=raise_on_error, tags=tags)


@pytest.fixture
def spec(instance, store, gsod_observations):
    """The demo's Portland daily precipitation spec, landed and registered."""
    return land_spec(instance, store, SPEC)


def experiments(settings, sql):
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_one_run_trains_all_types_promotes_and_predicts(settings_env, instance, model_resources, spec, mlflow_res,
                                                       monkeypatch):
    """The retraining job's shape: the spec's table, all three model types, champion and predictions in ONE run."""
    from snoiq_assets.lib.models import snapshots

    store = store_from_settings(settings_env)
    serialised = []   # the rows each snapshot serialisation was given
    real_snapshot_bytes = snapshots.snapshot_bytes
    monkeypatch.setattr(snapshots, "snapshot_bytes", lambda rows, *a: serialised.append(rows.height) or real_snapshot_bytes(rows, *a))
    cfg = train_config()
    cfg["ops"]["predictions"] = PREDICT_2023
    res = run(instance, model_resources, CHAIN, cfg)
    assert res.success
    (mat,) = res.asset_materializations_for_node("trained_models")
    assert mat.partition == SPEC
    for mt in MODEL_TYPES:
        # The real Portland daily precipitation: every model beats persistence and climatology.
        assert mat.metadata[f"{mt}/skill_persistence"].value > 0 and mat.metadata[f"{mt}/skill_climatology"].value > 0, mt
    # One file for the spec's partition, a row per model type.
    trained = pl.read_parquet(store.get(f"lake/trained_models/{SPEC}.parquet"))
    assert sorted(trained["model_type"]) == sorted(MODEL_TYPES) and trained["spec"].unique().to_list() == [SPEC]
    assert store.exists(f"lake/training_table/{SPEC}.parquet")

    # Model store convention, metadata and native formats.
    metas = [i.key for i in store.list(f"models/{STATION}/") if i.key.endswith("metadata.json")]
    assert sorted(k.split("/")[3] for k in metas) == ["model_type=lightgbm", "model_type=random_forest", "model_type=xgboost"]

    # MLflow: one run per model type in the experiment of daily precipitation models (tagged as
    # model training, not GenAI), with params, metrics, plots, the native model file, the commit.
    client = mlflow_res.client()
    experiment = client.get_experiment_by_name(DAILY_PRECIP)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert [e.name for e in client.search_experiments() if e.name.startswith("snoiq/")] == [DAILY_PRECIP]
    for r in runs:
        # The run spans the fit: opened before it, ended after the model was stored.
        meta = store.get_json(r.data.tags["model_prefix"] + "/metadata.json")
        stored_ms = dt.datetime.fromisoformat(meta["created_at"]).timestamp() * 1000
        assert r.info.start_time <= stored_ms <= r.info.end_time
        # Dagster links the run's page in the MLflow UI.
        assert mat.metadata[f"{r.data.tags['model_type']}/mlflow_run"].value == (
            f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/{r.info.run_id}")
    assert sorted(r.data.tags["model_type"] for r in runs) == sorted(MODEL_TYPES)
    # The three types trained on the same rows: one training-data snapshot, serialised once in the
    # run and named by all three runs.
    shas = {r.data.tags["snapshot_sha256"] for r in runs}
    assert len(shas) == 1 and len(serialised) == 1
    assert [o.key for o in store.list(snapshots.SNAPSHOTS_PREFIX + "/")] == [snapshots.snapshot_key(shas.pop())]
    for r in runs:
        assert "rmse" in r.data.metrics and "skill_climatology" in r.data.metrics and "git_commit" in r.data.tags
        arts = {a.path for a in client.list_artifacts(r.info.run_id)} | {a.path for a in client.list_artifacts(r.info.run_id, "model")}
        assert {"feature_importance.png", "predicted_vs_observed.png", "data.json"} <= arts
        assert any(p.startswith("model/model.") for p in arts)

    # Experiments table in the DuckDB file: one row per model type, all from this Dagster run.
    rows = experiments(settings_env, "SELECT model_type, status, rmse, git_commit, data_versions, dagster_run_id, mlflow_run_id "
                                     "FROM experiments ORDER BY model_type")
    assert [r[0] for r in rows] == ["lightgbm", "random_forest", "xgboost"] and all(r[1] == "success" for r in rows)
    assert all(r[2] > 0 and r[3] and "training_table" in r[4] and r[5] == res.run_id for r in rows)
    assert len({r[6] for r in rows}) == 3
    assert experiments(settings_env, "SELECT DISTINCT spec_key FROM experiments") == [(SPEC,)]

    # The champion in the same run saw all three new models and promoted the best.
    md = res.asset_materializations_for_node("champion_model")[0].metadata
    assert md["promoted"].value is True
    best = trained.sort("rmse")["model_type"][0]
    assert md["candidate"].value == store.get_json(champion_key(STATION, "precip_mm"))["model_prefix"]
    assert f"model_type={best}" in md["candidate"].value and md["spec"].value == SPEC
    assert mat.metadata["best_model_type"].value == best
    mv = client.get_model_version_by_alias(md["registered_model"].value, "champion")
    assert str(mv.version) == md["registered_version"].value

    # The champion is an MLflow model: pyfunc loads the registered version, its signature names
    # the features, and it predicts what the model store's copy predicts.
    champ = store.get_json(champion_key(STATION, "precip_mm"))
    stored_model, stored_meta = load_bundle(store, champ["model_prefix"])
    pyfunc = mlflow.pyfunc.load_model(f"models:/{md['registered_model'].value}@champion")
    assert pyfunc.metadata.get_input_schema().input_names() == stored_meta["features"]
    assert pyfunc.metadata.saved_input_example_info is not None
    with store.local_path(f"lake/training_table/{SPEC}.parquet") as path:
        rows = pl.read_parquet(path).filter(pl.col("location") == STATION).head(50)
    X = feature_matrix(rows, stored_meta["features"])
    assert np.allclose(pyfunc.predict(pd.DataFrame(X, columns=stored_meta["features"])), stored_model.predict(X))
    champion_run = client.get_run(champ["mlflow_run_id"])
    assert champion_run.info.end_time == next(r for r in runs if r.info.run_id == champ["mlflow_run_id"]).info.end_time

    # Predictions in the same run: the new champion's, version and run id on every row.
    champ = store.get_json(champion_key(STATION, "precip_mm"))
    key = predictions_key(champ["model_prefix"], dt.date(2023, 1, 1), dt.date(2023, 12, 31))
    with store.local_path(key) as path:
        table = pq.read_table(path)
    df = pl.from_arrow(table)
    assert df.height == 365 and df["model_version"].unique().to_list() == [champ["registered_version"]]
    assert df["mlflow_run_id"].unique().to_list() == [champ["mlflow_run_id"]]
    assert table.schema.metadata[b"snoiq.model_version"].decode() == champ["registered_version"]
    _model, meta = load_bundle(store, champ["model_prefix"])
    assert meta["metrics"]["rmse"] == pytest.approx(champ["rmse"])
    pmd = res.asset_materializations_for_node("predictions")[0].metadata
    assert pmd["spec"].value == SPEC and pmd["run_id"].value == champ["run_id"] and pmd["dagster/row_count"].value == 365

    # Champion again: kept, with a reason; the history has both decisions.
    res = run(instance, model_resources, ["champion_model"])
    md2 = res.asset_materializations_for_node("champion_model")[0].metadata
    assert md2["promoted"].value is False and "already the champion" in md2["reason"].value
    assert len(list(store.list(f"models/{STATION}/champion-history/"))) == 2


def test_a_run_may_train_some_of_the_specs_types(settings_env, instance, model_resources, spec):
    assert run(instance, model_resources, ["training_table"]).success
    res = run(instance, model_resources, ["trained_models"], train_config(n_jobs=1, model_types=["lightgbm"]))
    (m,) = res.asset_materializations_for_node("trained_models")
    assert m.partition == SPEC and m.metadata["lightgbm/n_jobs"].value == 1 and "xgboost/rmse" not in m.metadata
    assert m.metadata["lightgbm/skill_persistence"].value > 0 and m.metadata["lightgbm/skill_climatology"].value > 0
    assert experiments(settings_env, "SELECT model_type, status FROM experiments") == [("lightgbm", "success")]


def test_one_failing_type_is_recorded_and_the_others_still_train(settings_env, instance, model_resources,
                                                                 spec, mlflow_res):
    store = store_from_settings(settings_env)
    assert run(instance, model_resources, ["training_table"]).success
    # A boosting hyperparameter given to every type: the random forest refuses it.
    res = run(instance, model_resources, ["trained_models"], train_config(hyperparameters={**FAST, "colsample_bytree": 0.7}),
              raise_on_error=False)
    assert not res.success
    msg = failure_messages(res)
    assert "random_forest" in msg and "colsample_bytree" in msg and "trained, recorded and stored: lightgbm, xgboost" in msg
    rows = experiments(settings_env, "SELECT model_type, status, error, model_uri FROM experiments ORDER BY model_type")
    assert [(r[0], r[1]) for r in rows] == [("lightgbm", "success"), ("random_forest", "failed"), ("xgboost", "success")]
    assert "colsample_bytree" in rows[1][2] and rows[1][3] is None
    # The two good models are complete bundles; nothing half-written for the failed one.
    metas = sorted(i.key.split("/")[3] for i in store.list(f"models/{STATION}/") if i.key.endswith("metadata.json"))
    assert metas == ["model_type=lightgbm", "model_type=xgboost"]
    assert not [i for i in store.list(f"models/{STATION}/") if "random_forest" in i.key]
    # The step failed, but the two types that trained are stored (the spec's partition holds
    # their rows and is shown as materialised); the run's failure says which type to retry.
    assert instance.get_materialized_partitions(dg.AssetKey("trained_models")) == {SPEC}
    stored = pl.read_parquet(store.get(f"lake/trained_models/{SPEC}.parquet"))
    assert sorted(stored["model_type"]) == ["lightgbm", "xgboost"]
    assert set(stored["model_prefix"]) <= set(metas_prefixes(store)) and (stored["rmse"] > 0).all()
    # champion_model reads what is stored and picks between the two good models.
    res = run(instance, model_resources, ["champion_model"])
    assert res.success
    assert res.asset_materializations_for_node("champion_model")[0].metadata["candidate"].value in metas_prefixes(store)


def metas_prefixes(store) -> list[str]:
    return [i.key.rsplit("/", 1)[0] for i in store.list(f"models/{STATION}/") if i.key.endswith("metadata.json")]


def test_failed_training_is_recorded_and_leaves_nothing(settings_env, instance, model_resources, gsod_observations,
                                                       mlflow_res):
    store = store_from_settings(settings_env)
    # A spec splitting after the last observation: no test period.
    land_spec(instance, store, SPEC, split={"split_date": "2030-01-01"})
    assert run(instance, model_resources, ["training_table"]).success
    res = run(instance, model_resources, ["trained_models"], train_config(model_types=["xgboost"]), raise_on_error=False)
    assert not res.success
    assert "0 test rows (need at least 10)" in failure_messages(res)
    assert list(store.list("models/")) == []
    with duckdb.connect(str(settings_env.duckdb_path), read_only=True) as con:
        status, error = con.execute("SELECT status, error FROM experiments").fetchone()
    assert status == "failed" and "InsufficientDataError" in error
    # A spec asking for features the table does not have: clear error, also recorded.
    land_spec(instance, store, SPEC, features=["no_such_column"])
    res = run(instance, model_resources, ["trained_models"], train_config(model_types=["lightgbm"]), raise_on_error=False)
    assert not res.success and "no_such_column" in failure_messages(res)
    with duckdb.connect(str(settings_env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM experiments WHERE status = 'failed'").fetchone()[0] == 2
    # A failed MLflow run never exists half-finished: only failed runs were started, none FINISHED.
    assert all(r.info.status != "FINISHED" for r in mlflow_res.client().search_runs([mlflow_res.experiment_id(DAILY_PRECIP)]))
    assert list(store.list("models/")) == []
