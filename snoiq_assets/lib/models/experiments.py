"""The experiments table (what the team used xetrack for), queryable from the DuckDB CLI.

Design: every training run, successful or failed, writes ONE small Parquet object
``experiments/<run_id>.parquet`` through the ObjectStore (atomic on both backends). That file
is the record; writing it needs no lock, so parallel runs (a sweep) never block each other and
never lose a row, and a retried run rewrites its own file instead of adding a duplicate.
``refresh_table`` then rebuilds the DuckDB table ``experiments`` from all the files in one
transaction (``CREATE OR REPLACE TABLE``). DuckDB allows one writing process per file, so a
refresh that finds the file locked retries with back-off; if it still cannot get the lock the
run does not fail: its row is safe in its file and the next refresh includes it. A table (not
a view over ``s3://``) is used so the DuckDB CLI can query it with no S3 credentials.

    duckdb .snoiq/snoiq.duckdb -c "SELECT model_type, status, rmse FROM experiments ORDER BY started_at"
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.lib.keys import join_key, safe_identifier
from snoiq_assets.lib.storage import ObjectStore

EXPERIMENTS_PREFIX = "experiments"
TABLE = "experiments"
METRIC_COLUMNS = ("rmse", "mae", "r2", "bias", "skill_persistence", "skill_climatology", "cv_rmse_mean")

SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("status", pa.string()),  # success | failed
    ("error", pa.string()),
    ("git_commit", pa.string()),
    ("model_type", pa.string()),
    ("location", pa.string()),
    ("target", pa.string()),
    ("resolution_days", pa.int64()),
    ("sweep_id", pa.string()),
    ("dagster_run_id", pa.string()),
    ("mlflow_run_id", pa.string()),
    ("model_uri", pa.string()),
    *[(m, pa.float64()) for m in METRIC_COLUMNS],
    ("params", pa.string()),  # JSON
    ("metrics", pa.string()),  # JSON, every metric
    ("data_versions", pa.string()),  # JSON
])


def git_commit(repo: Path | None = None) -> str:
    """The commit of the code that ran ("unknown" outside a git checkout; "+dirty" if modified)."""
    cwd = str(repo or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def experiment_key(run_id: str) -> str:
    return join_key(EXPERIMENTS_PREFIX, safe_identifier(run_id, "run id") + ".parquet")


def make_row(*, run_id: str, started_at: dt.datetime, status: str, model_type: str | None, location: str | None,
             target: str | None, resolution_days: int | None, params: dict, metrics: dict | None = None,
             data_versions: dict | None = None, error: str | None = None, git: str | None = None,
             sweep_id: str | None = None, dagster_run_id: str | None = None, mlflow_run_id: str | None = None,
             model_uri: str | None = None, finished_at: dt.datetime | None = None) -> dict:
    if status not in ("success", "failed"):
        raise ValueError(f"status must be success or failed; got {status!r}")
    metrics = metrics or {}
    return {
        "run_id": run_id, "started_at": started_at, "finished_at": finished_at or dt.datetime.now(dt.timezone.utc),
        "status": status, "error": error, "git_commit": git or git_commit(), "model_type": model_type,
        "location": location, "target": target, "resolution_days": resolution_days, "sweep_id": sweep_id,
        "dagster_run_id": dagster_run_id, "mlflow_run_id": mlflow_run_id, "model_uri": model_uri,
        **{m: (float(metrics[m]) if metrics.get(m) is not None else None) for m in METRIC_COLUMNS},
        "params": json.dumps(params, sort_keys=True, default=str),
        "metrics": json.dumps(metrics, sort_keys=True, default=str),
        "data_versions": json.dumps(data_versions or {}, sort_keys=True, default=str),
    }


def record(store: ObjectStore, row: dict) -> str:
    """Write one run's row as its own Parquet object; return the key."""
    table = pa.Table.from_pylist([row], schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    key = experiment_key(row["run_id"])
    store.put(key, buf.getvalue())
    return key


def read_all(store: ObjectStore) -> pa.Table:
    tables = []
    for info in store.list(EXPERIMENTS_PREFIX + "/"):
        if info.key.endswith(".parquet"):
            tables.append(pq.read_table(io.BytesIO(store.get(info.key))).cast(SCHEMA))
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by([("started_at", "ascending"), ("run_id", "ascending")])


def refresh_table(store: ObjectStore, duckdb_path: str | Path, timeout_s: float = 60.0) -> int | None:
    """Rebuild the ``experiments`` table from every run file; return its row count, or None if
    the DuckDB file stayed locked by another writer for ``timeout_s`` (rows are safe in files)."""
    import duckdb

    rows = read_all(store)
    Path(duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(duckdb_path))
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                if "lock" in str(exc).lower():
                    return None
                raise
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 1.0)
    try:
        con.register("_exp_rows", rows)
        con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM _exp_rows")
        con.unregister("_exp_rows")
        return con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    finally:
        con.close()
