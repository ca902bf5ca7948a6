"""The experiments table: one file per run, parallel writers lose and duplicate nothing, the
DuckDB table is rebuilt from the files and waits for (or yields to) another writer's lock."""

import datetime as dt
import multiprocessing
import subprocess
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor

import duckdb
import pytest

from snoiq_assets.lib.models import experiments as X
from snoiq_assets.lib.storage import store_from_settings


def _write_runs(args):
    settings, n, sweep = args
    store = store_from_settings(settings)
    for i in range(n):
        row = X.make_row(run_id=uuid.uuid4().hex, started_at=dt.datetime.now(dt.timezone.utc), status="success",
                         model_type="xgboost", location="S1", target="precip_mm", resolution_days=1,
                         params={"i": i}, metrics={"rmse": float(i)}, git="abc", sweep_id=sweep)
        X.record(store, row)
        X.refresh_table(store, settings.duckdb_path)
    return n


def test_parallel_runs_land_once_each(settings):
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = list(pool.map(_write_runs, [(settings, 4, f"p{k}") for k in range(3)]))
    assert done == [4, 4, 4]
    store = store_from_settings(settings)
    assert X.refresh_table(store, settings.duckdb_path) == 12
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        n, distinct = con.execute("SELECT count(*), count(DISTINCT run_id) FROM experiments").fetchone()
        per = dict(con.execute("SELECT sweep_id, count(*) FROM experiments GROUP BY sweep_id").fetchall())
    assert (n, distinct) == (12, 12) and per == {"p0": 4, "p1": 4, "p2": 4}


def test_failed_row_and_locked_file(settings, tmp_path):
    store = store_from_settings(settings)
    row = X.make_row(run_id="r1", started_at=dt.datetime.now(dt.timezone.utc), status="failed", model_type="lightgbm",
                     location="S1", target="precip_mm", resolution_days=1, params={}, error="ModelError: too little data")
    X.record(store, row)
    X.record(store, row)  # a retry rewrites its own file: still one row
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(8)"),
        str(settings.duckdb_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert X.refresh_table(store, settings.duckdb_path, timeout_s=0.5) is None  # yields, run does not fail
    finally:
        holder.kill()
        holder.wait()
    assert X.refresh_table(store, settings.duckdb_path) == 1
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT status, error, git_commit FROM experiments").fetchone() == (
            "failed", "ModelError: too little data", row["git_commit"])


def _row(run_id, status="success", rmse=1.0, **kw):
    return X.make_row(run_id=run_id, started_at=dt.datetime.now(dt.timezone.utc), status=status, model_type="xgboost",
                      location="S1", target="precip_mm", resolution_days=1, params={}, metrics={"rmse": rmse}, git="abc", **kw)


def test_refresh_is_incremental_and_rebuild_recovers(settings):
    store = store_from_settings(settings)
    for rid in ("a", "b"):
        X.record(store, _row(rid))
    assert X.refresh_table(store, settings.duckdb_path) == 2
    # An old run file that is already in the table is not read again: even a corrupt one does not
    # stop the next run's refresh (a full rebuild would read it, and fails on it).
    store.put(X.experiment_key("a"), b"not parquet")
    X.record(store, _row("c"))
    assert X.refresh_table(store, settings.duckdb_path, run_ids=["c"]) == 3
    with pytest.raises(Exception, match=r"(?i)parquet|magic"):  # pyarrow's own error type
        X.rebuild_table(store, settings.duckdb_path)
    X.record(store, _row("a"))
    # A retried run rewrites its file; naming it in run_ids replaces its row (no duplicate).
    X.record(store, _row("c", status="failed", rmse=None, error="ModelError: retried"))
    assert X.refresh_table(store, settings.duckdb_path, run_ids=["c"]) == 3
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT status, error FROM experiments WHERE run_id = 'c'").fetchall() == [("failed", "ModelError: retried")]
    # Recovery: the files are the truth; a full rebuild drops rows whose file is gone.
    store.delete(X.experiment_key("b"))
    assert X.refresh_table(store, settings.duckdb_path) == 3  # incremental never deletes
    assert X.rebuild_table(store, settings.duckdb_path) == 2
    # A table with another shape (an older schema) is rebuilt from the files by the next refresh.
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("CREATE OR REPLACE TABLE experiments AS SELECT run_id FROM experiments")
    assert X.refresh_table(store, settings.duckdb_path) == 2
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        assert [c[0] for c in con.execute("DESCRIBE experiments").fetchall()] == X.SCHEMA.names


def test_git_commit_is_asked_once_per_process():
    X._git_commit.cache_clear()
    first = X.git_commit()
    assert first != "unknown" and X.git_commit() == first
    assert X._git_commit.cache_info().misses == 1 and X._git_commit.cache_info().hits == 1


def test_rows_written_before_new_columns_still_read(settings):
    """A run file from before tag/description/snapshot columns: those read as null, and the
    DuckDB table gets the new columns."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    store = store_from_settings(settings)
    new = _row("new", tag="t1", description="with columns", snapshot={"sha256": "a" * 64, "rows": 5},
               spec_id="s1_precip_daily")
    X.record(store, new)
    old = {k: v for k, v in _row("old").items() if k not in ("spec_key", "description", "tag", "snapshot_sha256",
                                                                "snapshot_rows", "model_prefix")}
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([old]), buf)
    store.put(X.experiment_key("old"), buf.getvalue())
    assert X.refresh_table(store, settings.duckdb_path) == 2
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        rows = con.execute("SELECT run_id, spec_key, tag, description, snapshot_sha256, snapshot_rows FROM experiments "
                           "ORDER BY run_id").fetchall()
    assert rows == [("new", "s1_precip_daily", "t1", "with columns", "a" * 64, 5), ("old", None, None, None, None, None)]
    assert X.read_row(store, "old")["rmse"] == 1.0 and X.read_row(store, "missing") is None
