"""Read-only access to the platform's own tables for the analysis app (no Dagster).

A table is read from the DuckDB file when it has it (opened ``read_only``, one short connection
per read, so the app never holds the lock a materialisation needs), else from the lake
(``lake/<name>.parquet``, or every ``lake/<name>/<partition>.parquet``) through the ObjectStore:
the local folder or the bucket, with the same settings as the assets. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from snoiq_assets.lib.keys import safe_identifier
from snoiq_assets.lib.lake import LAKE_PREFIX, asset_prefix, partition_object_key, stored_partition_keys
from snoiq_assets.lib.storage import ObjectStore, store_from_settings
from snoiq_assets.settings import Settings


@dataclass
class Lookup:
    """A table, or why there is none (``frame`` is None then), and where it came from."""

    name: str
    frame: pl.DataFrame | None
    source: str

    @property
    def found(self) -> bool:
        return self.frame is not None


class Catalog:
    def __init__(self, settings: Settings, store: ObjectStore | None = None):
        self.settings = settings
        self.store = store or store_from_settings(settings)
        self.duckdb_path = Path(settings.duckdb_path)

    @classmethod
    def from_env(cls) -> "Catalog":
        return cls(Settings.from_env())

    def duckdb_tables(self) -> set[str]:
        if not self.duckdb_path.exists():
            return set()
        try:
            with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
                return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        except duckdb.Error:
            return set()

    def duckdb_table(self, name: str) -> Lookup:
        name = safe_identifier(name, "table name")
        if not self.duckdb_path.exists():
            return Lookup(name, None, f"no DuckDB file at {self.duckdb_path}")
        try:
            with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
                if name not in {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}:
                    return Lookup(name, None, f"table {name} does not exist yet in {self.duckdb_path}")
                return Lookup(name, pl.from_arrow(con.execute(f'select * from "{name}"').to_arrow_table()), f"DuckDB {self.duckdb_path}")
        except duckdb.Error as exc:  # e.g. a materialisation holds the write lock right now
            return Lookup(name, None, f"DuckDB {self.duckdb_path} could not be read: {str(exc).splitlines()[0][:200]}")

    def lake_table(self, name: str) -> Lookup:
        name = safe_identifier(name, "table name")
        key = partition_object_key(name, None)
        if self.store.exists(key):
            with self.store.local_path(key) as path:
                return Lookup(name, pl.read_parquet(path), self.store.uri(key))
        partitions = sorted(stored_partition_keys(self.store, name))
        if not partitions:
            return Lookup(name, None, f"no {key} or {asset_prefix(name)}/*.parquet in {self.store.uri(LAKE_PREFIX)}")
        frames = []
        for partition in partitions:
            with self.store.local_path(partition_object_key(name, partition)) as path:
                frames.append(pl.read_parquet(path))
        return Lookup(name, pl.concat(frames, how="diagonal_relaxed"),
                      f"{len(partitions)} file(s) under {self.store.uri(asset_prefix(name))}/")

    def table(self, name: str) -> Lookup:
        """DuckDB first, then the lake; the lookup says where it looked when neither has it."""
        db = self.duckdb_table(name)
        if db.found:
            return db
        lake = self.lake_table(name)
        return lake if lake.found else Lookup(name, None, f"{db.source}; {lake.source}")
