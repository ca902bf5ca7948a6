"""The experiments table (what the team used xetrack for), queryable from the DuckDB CLI.

Design: every training run, successful or failed, writes ONE small Parquet object
``experiments/<run_id>.parquet`` through the ObjectStore (atomic on both backends). Those files
are the record (the source of truth); writing one needs no lock, so parallel runs (a sweep)
never block each other and never lose a row, and a retried run rewrites its own file instead of
adding a duplicate.

The DuckDB table ``experiments`` is kept in step incrementally: ``refresh_table`` lists the
file keys (names only), reads just the files whose run is not in the table yet plus the ones
the caller names (its own, possibly rewritten, rows), and replaces those rows in one
transaction. So a run costs one small file read, not a read of every run ever made, and a row
that an earlier refresh missed (the DuckDB file was locked) is picked up by the next refresh.
``rebuild_table`` rebuilds the whole table from all the files (recovery, or a schema change).
DuckDB allows one writing process per file, so a refresh that finds the file locked retries
with back-off; if it still cannot get the lock the run does not fail: its row is safe in its
file and the next refresh includes it. A table (not a view over ``s3://``) is used so the
DuckDB CLI can query it with no S3 credentials.

    duckdb -readonly .snoiq/snoiq.duckdb "SELECT model_type, status, rmse FROM experiments ORDER BY started_at"
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import random
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.lib import duckfile
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
    """The commit of the code that ran ("unknown" outside a git checkout; "+dirty" if modified).

    Asked of git once per process (and folder): the code a process runs does not change under it.
    """
    return _git_commit(str(Path(repo).resolve() if repo else Path(__file__).resolve().parent))


@functools.lru_cache(maxsize=8)
def _git_commit(cwd: str) -> str:
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


def _run_id_of(key: str) -> str | None:
    name = key.rsplit("/", 1)[-1]
    return name[: -len(".parquet")] if name.endswith(".parquet") else None


def _read_file(store: ObjectStore, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(store.get(key))).cast(SCHEMA)


def _concat(tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by([("started_at", "ascending"), ("run_id", "ascending")])


def run_file_keys(store: ObjectStore) -> dict[str, str]:
    """run_id -> key of every run file (a listing of names; nothing is read)."""
    out = {}
    for info in store.list(EXPERIMENTS_PREFIX + "/"):
        rid = _run_id_of(info.key)
        if rid is not None:
            out[rid] = info.key
    return out


def read_all(store: ObjectStore) -> pa.Table:
    return _concat([_read_file(store, key) for key in run_file_keys(store).values()])


def _connect(duckdb_path: str | Path, timeout_s: float):
    """A read-write connection, waiting with back-off while another process holds the lock;
    None if it is still locked after ``timeout_s``."""
    import duckdb

    Path(duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return duckfile.connect(duckdb_path)
        except duckdb.IOException as exc:
            locked = "lock" in str(exc).lower()
            if not locked:
                raise
            if time.monotonic() > deadline:
                return None
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 1.0)


def _table_columns(con) -> list[str] | None:
    """The table's column names, or None if it does not exist. Asked with an empty SELECT: the
    catalog views (information_schema, duckdb_columns()) cost ~17 ms on a fresh connection,
    this ~0.5 ms. Called outside a transaction: a failed statement would abort one."""
    import duckdb

    try:
        return [d[0] for d in con.execute(f"SELECT * FROM {TABLE} LIMIT 0").description]
    except duckdb.CatalogException:
        return None


def _replace_all(con, rows: pa.Table) -> None:
    con.register("_exp_rows", rows)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM _exp_rows")
    finally:
        con.unregister("_exp_rows")


def rebuild_table(store: ObjectStore, duckdb_path: str | Path, timeout_s: float = 60.0) -> int | None:
    """Rebuild ``experiments`` from every run file (recovery); return its row count, or None if
    the DuckDB file stayed locked for ``timeout_s``."""
    rows = read_all(store)
    con = _connect(duckdb_path, timeout_s)
    if con is None:
        return None
    try:
        con.execute("BEGIN TRANSACTION")
        _replace_all(con, rows)
        con.execute("COMMIT")
        return con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    finally:
        con.close()


def refresh_table(store: ObjectStore, duckdb_path: str | Path, timeout_s: float = 60.0,
                  run_ids: list[str] | tuple[str, ...] = ()) -> int | None:
    """Bring ``experiments`` up to date with the run files, incrementally: add every run whose
    file is not in the table yet and replace the rows of ``run_ids`` (the caller's own runs,
    whose files may have been rewritten by a retry). Return the table's row count, or None if
    the DuckDB file stayed locked by another writer for ``timeout_s`` (rows are safe in files).
    A missing table, or one with other columns than ``SCHEMA``, is rebuilt from all the files."""
    files = run_file_keys(store)
    con = _connect(duckdb_path, timeout_s)
    if con is None:
        return None
    try:
        # Checked before the transaction; no other process can change the table meanwhile (this
        # connection holds DuckDB's write lock on the file).
        rebuild = _table_columns(con) != SCHEMA.names
        con.execute("BEGIN TRANSACTION")
        if rebuild:
            _replace_all(con, _concat([_read_file(store, key) for key in files.values()]))
        else:
            present = {r[0] for r in con.execute(f"SELECT run_id FROM {TABLE}").fetchall()}
            wanted = [rid for rid in files if rid not in present or rid in set(run_ids)]
            if wanted:
                new = _concat([_read_file(store, files[rid]) for rid in wanted])
                con.register("_exp_new", new)
                try:
                    con.execute(f"DELETE FROM {TABLE} WHERE run_id IN (SELECT run_id FROM _exp_new)")
                    con.execute(f"INSERT INTO {TABLE} SELECT * FROM _exp_new")
                finally:
                    con.unregister("_exp_new")
        con.execute("COMMIT")
        return con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    finally:
        con.close()
