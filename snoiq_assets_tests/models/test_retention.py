"""Snapshot retention: a dry run first, then only snapshots that no champion, no registered
MLflow version and none of the last N runs of a spec needs are pruned; a pruned snapshot's run
is refused by name when reproduced, as is a run that does not exist."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import polars as pl
import pytest

from snoiq_assets.lib.models import experiments as X
from snoiq_assets.lib.models import retention
from snoiq_assets.lib.models.reproduce import NotReproducible, RunNotFound, reproduce, resolve_run
from snoiq_assets.lib.models.snapshots import SnapshotMissing, SnapshotPruned, read_snapshot, snapshot_key, tombstone_key, write_snapshot

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
INFO = {"target": "precip_mm", "resolution": "daily", "resolution_days": 1}


def _snapshot(store, seed: int):
    rows = pl.DataFrame({"location": ["S1"] * 5, "period_start": [dt.date(2024, 1, d) for d in range(1, 6)],
                         "target": [float(seed + d) for d in range(5)], "air_temp_c": [1.0, 2.0, None, 4.0, 5.0]})
    return write_snapshot(store, rows, ["air_temp_c"], INFO)


def _run(store, run_id, location, hours, snap, mlflow_run_id=None, status="success"):
    X.record(store, X.make_row(
        run_id=run_id, started_at=T0 + dt.timedelta(hours=hours), status=status, model_type="xgboost",
        location=location, target="precip_mm", resolution_days=1, params={"target": "precip_mm"},
        metrics={"rmse": 1.0}, git="abc", mlflow_run_id=mlflow_run_id, snapshot=snap.describe(),
        spec_id=f"{location.lower()}_precip_daily",
        model_prefix=f"models/{location}/{run_id}/model_type=xgboost", error=None if status == "success" else "boom"))


def test_prune_keeps_champions_registered_and_recent_runs(settings_env, store):
    a, b, c, d, f, orphan = (_snapshot(store, k) for k in (0, 10, 20, 30, 40, 50))
    assert len({s.sha256 for s in (a, b, c, d, f, orphan)}) == 6
    assert _snapshot(store, 0) == a  # same rows, same object
    _run(store, "r1", "S1", 1, a)  # spec S1: r1 (champion), r2, r3 (newest)
    _run(store, "r2", "S1", 2, b)
    _run(store, "r3", "S1", 3, c)
    _run(store, "r4", "S2", 1, d, mlflow_run_id="m4")  # spec S2: r4 (registered), r5 (newest)
    _run(store, "r5", "S2", 2, f)
    _run(store, "r6", "S2", 3, f, status="failed")  # failed runs are never "the last N"
    store.put_json("models/S1/champion-precip_mm.json", {"model_prefix": "models/S1/r1/model_type=xgboost", "run_id": "r1"})

    plan = retention.plan(store, keep_last=1, registered_mlflow_run_ids={"m4"})
    assert set(plan.prune) == {b.sha256, orphan.sha256}
    assert plan.prune[b.sha256] == ["r2"] and plan.prune[orphan.sha256] == []
    assert any("champion" in why for why in plan.kept[a.sha256])
    assert any("registered MLflow run m4" in why for why in plan.kept[d.sha256])
    assert plan.kept[c.sha256] == ["last 1 of s1_precip_daily"] and plan.kept[f.sha256] == ["last 1 of s2_precip_daily"]
    assert plan.bytes_freed == b.bytes + orphan.bytes

    # The command: a dry run lists and deletes nothing; --apply prunes and says how much.
    cmd = [sys.executable, "-m", "snoiq_assets.snapshots", "prune", "--keep", "1"]
    dry = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert f"prune {b.sha256[:16]}" in dry.stdout and "dry run: nothing deleted" in dry.stdout
    assert store.exists(snapshot_key(b.sha256)) and store.exists(snapshot_key(orphan.sha256))
    # (No MLflow registry in this home: the command would prune r4's snapshot too; the library
    # call with the registered run decides here.)
    assert retention.apply(store, plan) == sorted([b.sha256, orphan.sha256])
    for snap in (a, c, d, f):
        assert store.exists(snapshot_key(snap.sha256))
    assert not store.exists(snapshot_key(b.sha256)) and store.exists(tombstone_key(b.sha256))
    assert store.get_json(tombstone_key(b.sha256))["runs"] == ["r2"]
    assert retention.plan(store, keep_last=1, registered_mlflow_run_ids={"m4"}).prune == {}

    # Reproducing a run whose snapshot was pruned: refused, saying so.
    with pytest.raises(SnapshotPruned, match=rf"snapshot {b.sha256} \(of run r2\) was pruned at .*retention"):
        reproduce(store, resolve_run(store, "r2"))
    with pytest.raises(SnapshotPruned):
        read_snapshot(store, b.sha256)
    with pytest.raises(NotReproducible, match="run r6 failed"):
        reproduce(store, resolve_run(store, "r6"))
    with pytest.raises(RunNotFound, match="no run 'r9'"):
        resolve_run(store, "r9")
    with pytest.raises(RunNotFound, match="not a run id"):
        resolve_run(store, "../r1")
    # Deleted by hand (no prune note), or a run from before snapshots: refused, saying which.
    store.delete(snapshot_key(c.sha256))
    with pytest.raises(SnapshotMissing, match=rf"snapshots/{c.sha256}.parquet \(of run r3\) does not exist"):
        reproduce(store, resolve_run(store, "r3"))
    X.record(store, X.make_row(run_id="old", started_at=T0, status="success", model_type="xgboost", location="S1",
                               target="precip_mm", resolution_days=1, params={}, metrics={"rmse": 1.0}, git="abc"))
    with pytest.raises(NotReproducible, match="run old was trained before snapshots were kept"):
        reproduce(store, resolve_run(store, "old"))
    # The same rows written again (a new run on them) bring the snapshot back to life.
    assert _snapshot(store, 10) == b and not store.exists(tombstone_key(b.sha256))
    assert read_snapshot(store, b.sha256)[0]["target"].to_list() == [10.0, 11.0, 12.0, 13.0, 14.0]
