"""The lake layout, in one place: where every asset output lives in the object store.

``lake/<asset path>/<partition key>.parquet`` for a partitioned asset,
``lake/<asset path>/<partition key>/f<FF>.parquet`` for one forecast hour (lead) of a run-cycle
partition (``hrrr_fields``, ``grid_join_features``: each (cycle, lead) its own file),
``lake/<asset path>.parquet`` otherwise, on the local folder and on S3 alike.

Write-audit-publish: an output with an audit (``write_partition(..., audit=...)``) is written
to ``staging/<asset path>/<partition key>.parquet`` first, audited on what was written, and
moved into the lake only when the audit passes; a refused partition stays in staging for
inspection (replaced by the partition's next run) and is never under ``lake/``.

Only the IO manager (defs/io_manager.py) uses this module: assets get their inputs from it
(frames, or a ``StoredParquet`` handle from lib/parquet.py when they need a partition subset or file footers), never
by building a lake key themselves. No Dagster here: an asset key is given as its path segments.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, Union

import polars as pl
import pyarrow as pa

from snoiq_assets.lib.keys import check_key
from snoiq_assets.lib.parquet import (
    EncodedParquet,
    LeadFrames,
    ParquetError,
    StoredParquet,
    parquet_key_value_metadata,
    write_parquet,
)
from snoiq_assets.lib.storage import ObjectStore

__all__ = ["LAKE_PREFIX", "STAGING_PREFIX", "LakeError", "LeadFrames", "PublishRefused", "StoredParquet",
           "asset_prefix", "partition_object_key", "lead_object_key", "staged_object_key", "stored_partition_keys",
           "stored_partition_files", "as_frame", "EncodedParquet", "write_parquet", "write_partition", "write_leads", "encode_partition",
           "EncodedPartition", "stored_metadata", "lead_file_moves"]

LAKE_PREFIX = "lake"
STAGING_PREFIX = "staging"

Audit = Callable[[pl.DataFrame], Union[str, None]]
"""Judges a staged partition (read back from staging): a reason to refuse it, or None to publish."""


class LakeError(ParquetError):
    """A lake object is missing or is not what the layout says it is."""


class PublishRefused(LakeError):
    """A staged partition failed its audit: it was not published."""


AssetPath = Union[str, Sequence[str]]
"""An asset's name (``"hrrr_fields"``) or path segments; anything with a ``.path`` (an asset key) too."""


def _segments(asset_path: AssetPath) -> list[str]:
    if isinstance(asset_path, str):
        return [asset_path]
    return list(getattr(asset_path, "path", asset_path))


def asset_prefix(asset_path: AssetPath) -> str:
    return check_key("/".join([LAKE_PREFIX, *_segments(asset_path)]))


def partition_object_key(asset_path: AssetPath, partition_key: str | None) -> str:
    if partition_key is None:
        return check_key(asset_prefix(asset_path) + ".parquet")
    return check_key(f"{asset_prefix(asset_path)}/{partition_key}.parquet")


def staged_object_key(asset_path: AssetPath, partition_key: str | None) -> str:
    """Where a partition waits for its audit: outside ``lake/``, so no reader ever lists it."""
    published = partition_object_key(asset_path, partition_key)
    return check_key(STAGING_PREFIX + published[len(LAKE_PREFIX):])


_LEAD_FILE = re.compile(r"f(\d{2,3})\.parquet")


def lead_object_key(asset_path: AssetPath, partition_key: str, forecast_hour: int) -> str:
    return check_key(f"{asset_prefix(asset_path)}/{partition_key}/f{forecast_hour:02d}.parquet")


def stored_partition_files(store: ObjectStore, asset_path: AssetPath) -> tuple[dict[str, str], dict[str, dict[int, str]]]:
    """One listing: ``({partition: whole-partition file}, {partition: {lead: lead file}})``. A
    partition may have both while a one-off migration (``lead_file_moves``) is pending."""
    prefix = asset_prefix(asset_path) + "/"
    whole: dict[str, str] = {}
    leads: dict[str, dict[int, str]] = {}
    for info in store.list(prefix):
        name = info.key[len(prefix):]
        if name.endswith(".parquet") and "/" not in name:
            whole[name[: -len(".parquet")]] = info.key
            continue
        pk, _, leaf = name.partition("/")
        m = _LEAD_FILE.fullmatch(leaf)
        if m:
            leads.setdefault(pk, {})[int(m.group(1))] = info.key
    return whole, leads


def stored_files_of(store: ObjectStore, asset_path: AssetPath, partition_keys: Iterable[str]
                    ) -> tuple[dict[str, str], dict[str, dict[int, str]]]:
    """``stored_partition_files`` for the given partitions only: a look at each partition's file
    and one listing of its lead folder, instead of a listing of the whole asset. A run reading
    one cycle of a year-long lake lists 19 files, not 166,000 (on S3: 167 list requests)."""
    prefix = asset_prefix(asset_path) + "/"
    whole: dict[str, str] = {}
    leads: dict[str, dict[int, str]] = {}
    for pk in partition_keys:
        key = partition_object_key(asset_path, pk)
        if store.stat(key) is not None:
            whole[pk] = key
        folder = check_key(prefix + pk) + "/"
        for info in store.list(folder):
            m = _LEAD_FILE.fullmatch(info.key[len(folder):])
            if m:
                leads.setdefault(pk, {})[int(m.group(1))] = info.key
    return whole, leads


def stored_partition_keys(store: ObjectStore, asset_path: AssetPath) -> set[str]:
    """The partition keys of ``asset_path`` that have a stored file or lead file (one listing)."""
    whole, leads = stored_partition_files(store, asset_path)
    return set(whole) | set(leads)


def lead_file_moves(store: ObjectStore, asset_path: AssetPath, forecast_hour_of) -> list[tuple[str, str]]:
    """The one-off migration of whole-partition files written before leads had their own files:
    ``(old key, new key)`` for each ``lake/<asset>/<pk>.parquet``, its lead read by
    ``forecast_hour_of(store, key)``. The caller moves them (see ``snoiq_assets.migrate``)."""
    whole, _ = stored_partition_files(store, asset_path)
    return [(key, lead_object_key(asset_path, pk, forecast_hour_of(store, key))) for pk, key in sorted(whole.items())]


def as_frame(obj: Any) -> pl.DataFrame | pa.Table | EncodedParquet:
    """A Polars DataFrame or a pyarrow Table (kept as is: its schema metadata survives), or a
    table an asset already encoded (``EncodedParquet``: stored as its file is)."""
    if isinstance(obj, (pa.Table, pl.DataFrame, EncodedParquet)):
        return obj
    if isinstance(obj, pl.LazyFrame):
        return obj.collect()
    raise LakeError(
        f"cannot store a {type(obj).__name__} as Parquet; return a polars DataFrame/LazyFrame or a pyarrow Table"
    )


def write_partition(store: ObjectStore, asset_path: AssetPath, partition_key: str | None, frame: Any,
                    compression: str = "zstd", audit: Audit | None = None) -> tuple[int, int, str]:
    """Write one partition's frame atomically where the layout keeps it; (rows, bytes, uri).

    With ``audit``: written to staging, audited on the staged file, published (moved into the
    lake) only if the audit passes, else ``PublishRefused`` naming the reason and the staged file.
    """
    table = as_frame(frame)
    key = partition_object_key(asset_path, partition_key)
    rows = table.height if isinstance(table, pl.DataFrame) else table.num_rows
    if audit is not None:
        staged = staged_object_key(asset_path, partition_key)
        size = _store_table(store, staged, table, compression)
        problem = audit(pl.read_parquet(store.get(staged)))
        if problem:
            what = "/".join(_segments(asset_path)) + (f" partition {partition_key}" if partition_key else "")
            raise PublishRefused(f"{what} not published: {problem}; the refused data is kept at {store.uri(staged)}")
        store.move(staged, key)
        return rows, size, store.uri(key)
    size = _store_table(store, key, table, compression)
    # No stat of the stored object afterwards: once it is stored it is published, and a store
    # failing right then (an outage) must not make a written partition look unwritten.
    return rows, size, store.uri(key)


def _store_table(store: ObjectStore, key: str, table: pl.DataFrame | pa.Table | EncodedParquet, compression: str) -> int:
    """Store one table as Parquet at ``key`` atomically (an encoded one as its file); its size."""
    if isinstance(table, EncodedParquet):
        return store.adopt_file(key, table.path).size
    return store.write_atomically(key, lambda sink: write_parquet(table, sink, compression))


def write_leads(store: ObjectStore, asset_path: AssetPath, partition_key: str, frames: LeadFrames,
                compression: str = "zstd") -> list[tuple[int, int, str]]:
    """Write each lead of one cycle partition to its own file; [(rows, bytes, uri)] in lead order."""
    out = []
    for fh in sorted(frames):
        table = as_frame(frames[fh])
        key = lead_object_key(asset_path, partition_key, fh)
        size = _store_table(store, key, table, compression)
        out.append((table.height if isinstance(table, pl.DataFrame) else table.num_rows, size, store.uri(key)))
    return out


@dataclass(frozen=True)
class EncodedPartition:
    """One partition's files encoded as Parquet in memory, not yet in the store: the encoding
    (the CPU part) can run on threads while ``publish`` puts them in one at a time."""
    files: tuple[tuple[str, bytes | EncodedParquet, int], ...]   # (object key, Parquet bytes or file, rows)
    uri_key: str                                # the file, or for lead files their cycle's folder

    def publish(self, store: ObjectStore) -> tuple[int, int, str]:
        """Put each file (atomically, as ``ObjectStore.put`` does); (rows, bytes, uri)."""
        size = 0
        for key, data, _rows in self.files:
            size += store.adopt_file(key, data.path).size if isinstance(data, EncodedParquet) else store.put(key, data).size
        return sum(f[2] for f in self.files), size, store.uri(self.uri_key)


def encode_partition(asset_path: AssetPath, partition_key: str, frame: Any, compression: str = "zstd") -> EncodedPartition:
    """A partition's Parquet bytes where the layout keeps them: one file, or one per lead for a
    ``LeadFrames`` value."""
    if isinstance(frame, LeadFrames):
        items = [(lead_object_key(asset_path, partition_key, fh), frame[fh]) for fh in sorted(frame)]
        uri_key = check_key(f"{asset_prefix(asset_path)}/{partition_key}")
    else:
        uri_key = partition_object_key(asset_path, partition_key)
        items = [(uri_key, frame)]
    files = []
    for key, f in items:
        table = as_frame(f)
        if isinstance(table, EncodedParquet):   # encoded already: stored as it is
            files.append((key, table, table.num_rows))
            continue
        sink = io.BytesIO()
        write_parquet(table, sink, compression)
        files.append((key, sink.getvalue(), table.num_rows if isinstance(table, pa.Table) else table.height))
    return EncodedPartition(tuple(files), uri_key)


def stored_metadata(store: ObjectStore, asset_path: AssetPath, partition_key: str | None = None) -> dict[str, str]:
    """Parquet key-value metadata of one stored partition (units, valid time, grid id ...)."""
    return parquet_key_value_metadata(store, partition_object_key(asset_path, partition_key))

