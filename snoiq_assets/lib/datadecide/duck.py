"""Write frames into DuckDB tables (and views) from memory; one transaction per call."""

from __future__ import annotations

import re

import polars as pl
import pyarrow as pa

from snoiq_assets.lib.keys import join_key

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a safe DuckDB table name")
    return name


def write_tables(conn, tables: dict[str, pl.DataFrame | pa.Table], views: dict[str, str] | None = None) -> dict[str, int]:
    """``CREATE OR REPLACE TABLE name AS SELECT * FROM frame`` for each; returns row counts."""
    counts = {}
    conn.execute("BEGIN TRANSACTION")
    try:
        for name, frame in tables.items():
            arrow = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
            tmp = f"__snoiq_src_{_check(name)}"
            conn.register(tmp, arrow)
            conn.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM "{tmp}"')
            conn.unregister(tmp)
            counts[name] = arrow.num_rows
        for name, sql in (views or {}).items():
            conn.execute(f'CREATE OR REPLACE VIEW "{_check(name)}" AS {sql}')
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return counts


SIDE_TABLES_PREFIX = "lake/datadecide"
"""Side tables (rejects, the wide history) beside the assets' own lake files; no asset reads them."""


def write_side_table(store, name: str, frame: pl.DataFrame | pa.Table) -> str:
    """Write ``<SIDE_TABLES_PREFIX>/<name>.parquet``; return its URI."""
    return write_parquet_table(store, join_key(SIDE_TABLES_PREFIX, f"{name}.parquet"), frame)


def write_parquet_table(store, key: str, frame: pl.DataFrame | pa.Table) -> str:
    """Write a side table as Parquet to ``key`` atomically; return its URI."""
    import pyarrow.parquet as pq

    arrow = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    with store.atomic_local_file(key) as path:
        pq.write_table(arrow, path, compression="zstd")
    return store.uri(key)
