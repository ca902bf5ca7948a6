"""End to end through Dagster on the real GSOD Portland file: training_table -> trained_models
(xgboost, lightgbm, random forest) -> champion_model -> predictions, on both backends, with a
real MLflow (SQLite tracking, artifacts on the backend) and the DuckDB experiments table."""

import duckdb
import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest

from snoiq_assets.defs.features.training import training_table
from snoiq_assets.defs.models.assets import champion_model, predictions, trained_models
from snoiq_assets.defs.models.demo import demo_run_config
from snoiq_assets.lib.models.store import champion_key, load_bundle, predictions_key
from snoiq_assets.lib.storage import store_from_settings
from snoiq_assets_tests.helpers import failure_messages
from snoiq_assets_tests.models.conftest import FAST, observations_clean
from snoiq_assets_tests.models.gsod import STATION

ASSETS = [observations_clean, training_table, trained_models, champion_model, predictions]


def run(instance, resources, select, run_config, partition_key=None, raise_on_error=True):
    return dg.materialize(ASSETS, selection=select, instance=instance, resources=resources, run_config=run_config,
                          partition_key=partition_key, raise_on_error=raise_on_error)


def train_config(**over):
    cfg = demo_run_config("train", fast=True)
    cfg["ops"]["trained_models"]["config"]["hyperparameters"] = dict(FAST)
    cfg["ops"]["trained_models"]["config"]["cv_folds"] = 2
    cfg["ops"]["trained_models"]["config"].update(over)
    return cfg


def test_train_promote_predict_end_to_end(settings_env, instance, model_resources, gsod_observations, mlflow_res):
    store = store_from_settings(settings_env)
    assert run(instance, model_resources, ["training_table"], demo_run_config("table")).success
    for mt in ("xgboost", "lightgbm", "random_forest"):
        res = run(instance, model_resources, ["trained_models"], train_config(), partition_key=mt)
        md = res.asset_materializations_for_node("trained_models")[0].metadata
        # The real Portland daily precipitation: every model beats persistence and climatology.
        assert md["skill_persistence"].value > 0 and md["skill_climatology"].value > 0, (mt, md)

    # Model store convention, metadata and native formats.
    metas = [i.key for i in store.list(f"models/{STATION}/") if i.key.endswith("metadata.json")]
    assert len(metas) == 3
    types = sorted(k.split("/")[3] for k in metas)
    assert types == ["model_type=lightgbm", "model_type=random_forest", "model_type=xgboost"]

    # MLflow: params, metrics, plots, the native model file, the git commit.
    client = mlflow_res.client()
    runs = client.search_runs([mlflow_res.experiment_id()])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    r0 = runs[0]
    assert "rmse" in r0.data.metrics and "skill_climatology" in r0.data.metrics and "git_commit" in r0.data.tags
    arts = {a.path for a in client.list_artifacts(r0.info.run_id)} | {a.path for a in client.list_artifacts(r0.info.run_id, "model")}
    assert {"feature_importance.png", "predicted_vs_observed.png", "data.json"} <= arts
    assert any(p.startswith("model/model.") for p in arts)

    # Experiments table in the DuckDB file, queryable with plain SQL.
    with duckdb.connect(str(settings_env.duckdb_path), read_only=True) as con:
        rows = con.execute("SELECT model_type, status, rmse, git_commit, data_versions FROM experiments ORDER BY model_type").fetchall()
    assert [r[0] for r in rows] == ["lightgbm", "random_forest", "xgboost"] and all(r[1] == "success" for r in rows)
    assert all(r[2] > 0 and r[3] and "training_table" in r[4] for r in rows)

    # Champion: promoted once, then kept with a reason.
    res = run(instance, model_resources, ["champion_model"], demo_run_config("champion"))
    md = res.asset_materializations_for_node("champion_model")[0].metadata
    assert md["promoted"].value is True
    mv = client.get_model_version_by_alias(md["registered_model"].value, "champion")
    assert str(mv.version) == md["registered_version"].value
    res = run(instance, model_resources, ["champion_model"], demo_run_config("champion"))
    md2 = res.asset_materializations_for_node("champion_model")[0].metadata
    assert md2["promoted"].value is False and "already the champion" in md2["reason"].value
    champ = store.get_json(champion_key(STATION, "precip_mm"))
    assert len(list(store.list(f"models/{STATION}/champion-history/"))) == 2

    # Predictions under the champion's folder, version and run id on every row.
    assert run(instance, model_resources, ["predictions"], demo_run_config("predict")).success
    import datetime as dt

    key = predictions_key(champ["model_prefix"], dt.date(2023, 1, 1), dt.date(2023, 12, 31))
    with store.local_path(key) as path:
        table = pq.read_table(path)
    df = pl.from_arrow(table)
    assert df.height == 365 and df["model_version"].unique().to_list() == [champ["registered_version"]]
    assert df["mlflow_run_id"].unique().to_list() == [champ["mlflow_run_id"]]
    assert table.schema.metadata[b"snoiq.model_version"].decode() == champ["registered_version"]
    model, meta = load_bundle(store, champ["model_prefix"])
    assert meta["metrics"]["rmse"] == pytest.approx(champ["rmse"])


def test_failed_training_is_recorded_and_leaves_nothing(settings_env, instance, model_resources, gsod_observations, mlflow_res):
    store = store_from_settings(settings_env)
    assert run(instance, model_resources, ["training_table"], demo_run_config("table")).success
    # Split after the last observation: no test period.
    res = run(instance, model_resources, ["trained_models"], train_config(split_date="2030-01-01"),
              partition_key="xgboost", raise_on_error=False)
    assert not res.success
    assert "0 test rows (need at least 10)" in failure_messages(res)
    assert list(store.list("models/")) == []
    with duckdb.connect(str(settings_env.duckdb_path), read_only=True) as con:
        status, error = con.execute("SELECT status, error FROM experiments").fetchone()
    assert status == "failed" and "InsufficientDataError" in error
    # Asking for features the table does not have: clear error, also recorded.
    res = run(instance, model_resources, ["trained_models"], train_config(features=["no_such_column"]),
              partition_key="lightgbm", raise_on_error=False)
    assert not res.success and "no_such_column" in failure_messages(res)
    with duckdb.connect(str(settings_env.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM experiments WHERE status = 'failed'").fetchone()[0] == 2
    # A failed MLflow run never exists half-finished: only failed runs were started, none FINISHED.
    assert all(r.info.status != "FINISHED" for r in mlflow_res.client().search_runs([mlflow_res.experiment_id()]))
    assert list(store.list("models/")) == []
