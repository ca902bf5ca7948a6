"""Reproducible experiments (issue 19): each training run keeps its exact rows as a
content-addressed snapshot; after the upstream tables are re-materialised with other data, the
earlier runs are reproduced from their snapshots with identical metrics (library, CLI and the
Dagster job), nothing of the original run is rewritten, and bad references are refused by name."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import dagster as dg
import duckdb
import polars as pl
import pytest

from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.defs.models.reproduce import reproduce_job
from snoiq_assets.lib.models.train import MODEL_TYPES
from snoiq_assets.lib.models.reproduce import RunNotFound, reproduce, resolve_run
from snoiq_assets.lib.models.snapshots import SnapshotCorrupt, snapshot_key
from snoiq_assets.lib.storage import store_from_settings
from snoiq_assets_tests.models.conftest import (
    GSOD, PORTLAND_SPEC as SPEC, STATION, STATION_ASSETS, TABLE_UPSTREAM, land_spec, train_run_config,
)

ASSETS = [*STATION_ASSETS, *TABLE_UPSTREAM, training_table, trained_models, champion_model]


def _materialize(instance, resources, select, run_config=None, **kw):
    res = dg.materialize(ASSETS, selection=select, instance=instance, resources=resources,
                         run_config=run_config or {}, **{"partition_key": SPEC, **kw})
    assert res.success
    return res


def _train_config():
    return train_run_config(tag="baseline-2016", description="all GSOD years; first look at daily precipitation")


def _experiments(settings, sql):
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snoiq_assets.reproduce", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow  # three model types trained once, then reproduced four times
def test_reproduce_from_snapshot_after_upstream_changes(settings_env, instance, model_resources, gsod_observations,
                                                        mlflow_res):
    store = store_from_settings(settings_env)
    land_spec(instance, store, SPEC)
    _materialize(instance, model_resources, ["training_table"])
    _materialize(instance, model_resources, ["trained_models"], _train_config())
    _materialize(instance, model_resources, ["champion_model"])
    table_before = pl.read_parquet(store.get(f"lake/training_table/{SPEC}.parquet"))

    runs = _experiments(settings_env, "SELECT run_id, model_type, mlflow_run_id, snapshot_sha256, snapshot_rows, tag, "
                                      "description, model_prefix, spec_key FROM experiments ORDER BY model_type")
    assert [r[1] for r in runs] == sorted(MODEL_TYPES)
    # One snapshot shared by the three model types (same rows), named by the hash of its bytes.
    (sha,) = {r[3] for r in runs}
    data = store.get(snapshot_key(sha))
    assert hashlib.sha256(data).hexdigest() == sha
    snap = pl.read_parquet(data)
    assert snap.height == runs[0][4] == table_before.filter(pl.col("location") == STATION).height
    assert snap.columns[:3] == ["location", "period_start", "target"]
    assert all(r[5] == "baseline-2016" and r[6].startswith("all GSOD years") for r in runs)
    assert {r[8] for r in runs} == {SPEC}
    # The hash is also in metadata.json, the manifest and the MLflow run's dataset input.
    client = mlflow_res.client()
    for run_id, _mt, mlflow_run_id, _sha, _rows, _tag, _desc, prefix, _spec in runs:
        meta = json.loads(store.get(f"{prefix}/metadata.json"))
        assert meta["snapshot"]["sha256"] == sha and meta["run_id"] == run_id
        assert store.get_json(f"{prefix}/manifest.json")["snapshot_sha256"] == sha
        (ds,) = client.get_run(mlflow_run_id).inputs.dataset_inputs
        assert ds.dataset.name == f"snapshot-{sha}" and ds.dataset.digest == sha[:32]
        assert json.loads(ds.dataset.source)["uri"].endswith(f"snapshots/{sha}.parquet")
        assert {t.key: t.value for t in ds.tags}["mlflow.data.context"] == "training+test"
    originals = {o.key: store.get(o.key) for o in store.list("models/")}
    originals.update({o.key: store.get(o.key) for o in store.list("experiments/")})

    # The upstream tables are re-materialised with other data: the station file loses 2016-2018.
    lines = GSOD.read_text().splitlines(keepends=True)
    store.put(f"raw/observations/{STATION}.csv",
              "".join([lines[0], *(ln for ln in lines[1:] if ln.split('","')[5] >= "2019-01-01")]).encode())
    _materialize(instance, model_resources, ["observations_raw", "observations_clean", "observations_rejects"],
                 partition_key=STATION)
    _materialize(instance, model_resources, ["training_table"])
    table_after = pl.read_parquet(store.get(f"lake/training_table/{SPEC}.parquet"))
    assert table_after["period_start"].min() > table_before["period_start"].min()
    assert table_after.height < table_before.height

    # Each earlier run, reproduced from its snapshot: identical metrics, same split, same commit.
    for run_id, model_type, *_ in runs:
        rep = reproduce(store, resolve_run(store, run_id))
        assert rep.verdict == "identical" and rep.ok and rep.window_matches, rep.summary()
        assert rep.max_relative_difference == 0.0 and rep.snapshot_rows == snap.height
        assert rep.metrics["rmse"]["recorded"] == rep.metrics["rmse"]["reproduced"] > 0
        assert rep.same_code == (not rep.current_commit.endswith("+dirty")), rep.summary()

    # The CLI, by MLflow run id: exit 0, says so.
    proc = _cli(runs[0][2])
    assert proc.returncode == 0, proc.stderr
    assert "metrics IDENTICAL" in proc.stdout and f"run {runs[0][0]}" in proc.stdout

    # The Dagster job, by the champion.
    champion = store.get_json(f"models/{STATION}/champion-precip_mm.json")
    res = reproduce_job.execute_in_process(
        run_config={"ops": {"reproduce_run": {"config": {"run": f"champion:{STATION}/precip_mm"}}}},
        resources={"store": model_resources["store"]}, instance=instance)
    assert res.success
    assert res.output_for_node("reproduce_run") == {"run_id": champion["run_id"], "verdict": "identical"}

    # Nothing of the original runs was rewritten; the reports are beside them.
    for key, before in originals.items():
        assert store.get(key) == before, key
    assert len([o for o in store.list("reproductions/")]) == len(runs) + 2

    # The champion's history: when, by how much, on which rows, with the run's tag.
    hist = _experiments(settings_env, "SELECT spec_key, run_id, snapshot_sha256, train_rows, tag, improvement "
                                      "FROM champion_history")
    assert hist == [(SPEC, champion["run_id"], sha, hist[0][3], "baseline-2016", None)]
    assert hist[0][3] > 0

    # Bad references: each refused by name, by the library and the CLI.
    with pytest.raises(RunNotFound, match="no run 'no-such-run'"):
        resolve_run(store, "no-such-run")
    proc = _cli("no-such-run")
    assert proc.returncode == 2 and "refused: no run 'no-such-run'" in proc.stderr
    proc = _cli("champion:nowhere/precip_mm")
    assert proc.returncode == 2 and "no champion for location 'nowhere'" in proc.stderr
    store.put(snapshot_key(sha), data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(SnapshotCorrupt, match=rf"snapshot snapshots/{sha}.parquet \(of run {runs[0][0]}\) does not match its hash"):
        reproduce(store, resolve_run(store, runs[0][0]))
    res = reproduce_job.execute_in_process(
        run_config={"ops": {"reproduce_run": {"config": {"run": runs[0][0]}}}},
        resources={"store": model_resources["store"]}, instance=instance, raise_on_error=False)
    assert not res.success
    assert "does not match its hash" in str(res.get_step_failure_events()[0].event_specific_data.error)
