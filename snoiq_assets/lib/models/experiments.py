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

What the team's git tags carried is in the row: ``description`` (free text) and ``tag`` (short),
set in the run config or the sweep file; ``snapshot_sha256`` names the exact rows the run
trained and tested on (``snapshots/<sha256>.parquet``); ``spec_key`` says which model the run
is a candidate for (its model spec's id). The ``champion_history`` view lists every promotion
per spec: when, over which champion, by how much, and on which rows.
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
from snoiq_assets.lib.parquet import read_parquet_bytes
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
    ("spec_key", pa.string()),
    ("description", pa.string()),
    ("tag", pa.string()),
    ("snapshot_sha256", pa.string()),
    ("snapshot_rows", pa.int64()),
    ("model_prefix", pa.string()),
])
MAX_TAG = 64
MAX_DESCRIPTION = 2000


def check_tag(tag: str | None, description: str | None) -> tuple[str | None, str | None]:
    """A tag is a short identifier (``[A-Za-z0-9_.-]``, at most 64); a description free text up to 2000."""
    if tag is not None:
        safe_identifier(tag, "tag")
        if len(tag) > MAX_TAG:
            raise ValueError(f"tag {tag[:20]!r}... is longer than {MAX_TAG} characters; put the detail in description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise ValueError(f"description is longer than {MAX_DESCRIPTION} characters")
    return tag, description


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
             model_uri: str | None = None, finished_at: dt.datetime | None = None, description: str | None = None,
             tag: str | None = None, snapshot: dict | None = None, model_prefix: str | None = None,
             spec_id: str | None = None) -> dict:
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
        "spec_key": spec_id,
        "description": description, "tag": tag,
        "snapshot_sha256": (snapshot or {}).get("sha256"), "snapshot_rows": (snapshot or {}).get("rows"),
        "model_prefix": model_prefix,
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
    # From an Arrow buffer, not a Python file object: Arrow's I/O threads reading through a
    # Python object can abort the interpreter at exit (apache/arrow#34314; lib/parquet.py).
    table = read_parquet_bytes(store.get(key))
    # A file written before a column existed: that column is null for it.
    for f in SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    return table.select(SCHEMA.names).cast(SCHEMA)


def read_row(store: ObjectStore, run_id: str) -> dict | None:
    """One run's row, or None when there is no such run."""
    key = experiment_key(run_id)
    if not store.exists(key):
        return None
    return _read_file(store, key).to_pylist()[0]


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


# Champion decisions: models/<location>/champion-history/<decided_at>.json, one per decision.
DECISIONS_TABLE = "champion_decisions"
DECISION_SCHEMA = pa.schema([
    ("decided_at", pa.timestamp("us", tz="UTC")),
    ("spec_key", pa.string()),
    ("promoted", pa.bool_()),
    ("reason", pa.string()),
    ("metric", pa.string()),
    ("candidate_prefix", pa.string()),
    ("candidate_model_type", pa.string()),
    ("candidate_run_id", pa.string()),
    ("candidate_value", pa.float64()),
    ("current_prefix", pa.string()),
    ("current_value", pa.float64()),
    ("snapshot_sha256", pa.string()),
    ("train_start", pa.string()),
    ("train_end", pa.string()),
    ("train_rows", pa.int64()),
    ("test_start", pa.string()),
    ("test_end", pa.string()),
    ("test_rows", pa.int64()),
    ("registered_model", pa.string()),
    ("registered_version", pa.string()),
    ("source_key", pa.string()),
])

CHAMPION_HISTORY_VIEW = f"""
CREATE OR REPLACE VIEW champion_history AS
SELECT d.spec_key, d.decided_at AS promoted_at, d.candidate_model_type AS model_type, d.metric,
       d.candidate_value AS value, d.current_value AS previous_value,
       d.current_value - d.candidate_value AS improvement,
       (d.current_value - d.candidate_value) / nullif(d.current_value, 0) AS improvement_relative,
       d.candidate_prefix AS model_prefix, d.current_prefix AS previous_prefix,
       coalesce(d.candidate_run_id, e.run_id) AS run_id,
       coalesce(d.snapshot_sha256, e.snapshot_sha256) AS snapshot_sha256,
       d.train_start, d.train_end, d.train_rows, d.test_start, d.test_end, d.test_rows,
       e.tag, e.description, e.git_commit, d.registered_model, d.registered_version, d.reason
FROM {DECISIONS_TABLE} d LEFT JOIN {TABLE} e ON e.model_prefix = d.candidate_prefix
WHERE d.promoted
ORDER BY d.spec_key, d.decided_at
"""


def _decision_row(doc: dict, key: str) -> dict:
    metric = doc.get("metric") or "rmse"
    num = lambda v: float(v) if isinstance(v, (int, float)) else None  # noqa: E731
    whole = lambda v: int(v) if isinstance(v, (int, float)) else None  # noqa: E731
    window = doc.get("training_window") or {}
    return {
        "decided_at": dt.datetime.fromisoformat(doc["decided_at"]), "spec_key": doc.get("spec_key"),
        "promoted": bool(doc.get("promoted")), "reason": doc.get("reason"), "metric": metric,
        "candidate_prefix": doc.get("candidate_prefix"), "candidate_model_type": doc.get("candidate_model_type"),
        "candidate_run_id": doc.get("candidate_run_id"), "candidate_value": num(doc.get("candidate_" + metric)),
        "current_prefix": doc.get("current_prefix"), "current_value": num(doc.get("current_" + metric)),
        "snapshot_sha256": doc.get("snapshot_sha256"),
        "train_start": window.get("train_start"), "train_end": window.get("train_end"),
        "train_rows": whole(window.get("train_rows")), "test_start": window.get("test_start"),
        "test_end": window.get("test_end"), "test_rows": whole(window.get("test_rows")),
        "registered_model": doc.get("registered_model"),
        "registered_version": None if doc.get("registered_version") is None else str(doc.get("registered_version")),
        "source_key": key,
    }


def read_decisions(store: ObjectStore) -> pa.Table:
    rows = []
    for info in store.list("models/"):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[2] == "champion-history" and parts[3].endswith(".json"):
            rows.append(_decision_row(store.get_json(info.key), info.key))
    rows.sort(key=lambda r: r["decided_at"])
    return pa.Table.from_pylist(rows, schema=DECISION_SCHEMA)


def refresh_champion_history(store: ObjectStore, duckdb_path: str | Path, timeout_s: float = 60.0) -> int | None:
    """Rebuild ``champion_decisions`` from the decision files and (re)create the
    ``champion_history`` view; return the number of promotions, or None if the file stayed locked."""
    if refresh_table(store, duckdb_path, timeout_s) is None:  # the view joins experiments
        return None
    rows = read_decisions(store)
    con = _connect(duckdb_path, timeout_s)
    if con is None:
        return None
    try:
        con.execute("BEGIN TRANSACTION")
        con.register("_decisions", rows)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {DECISIONS_TABLE} AS SELECT * FROM _decisions")
        finally:
            con.unregister("_decisions")
        con.execute(CHAMPION_HISTORY_VIEW)
        con.execute("COMMIT")
        return con.execute("SELECT count(*) FROM champion_history").fetchone()[0]
    finally:
        con.close()
