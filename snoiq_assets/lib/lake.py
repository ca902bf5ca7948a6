"""The lake layout, in one place: where every asset output lives in the object store.

``lake/<asset path>/<partition key>.parquet`` for a partitioned asset,
``lake/<asset path>.parquet`` otherwise, on the local folder and on S3 alike.

Only the IO manager (defs/io_manager.py) uses this module: assets get their inputs from it
(frames, or a ``StoredParquet`` handle from lib/parquet.py when they need a partition subset or file footers), never
by building a lake key themselves. No Dagster here: an asset key is given as its path segments.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.lib.keys import check_key
from snoiq_assets.lib.parquet import ParquetError, StoredParquet, parquet_key_value_metadata
from snoiq_assets.lib.storage import ObjectStore

__all__ = ["LAKE_PREFIX", "LakeError", "StoredParquet", "asset_prefix", "partition_object_key", "stored_partition_keys",
           "as_frame", "write_parquet", "write_partition", "stored_metadata"]

LAKE_PREFIX = "lake"


class LakeError(ParquetError):
    """A lake object is missing or is not what the layout says it is."""


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


def stored_partition_keys(store: ObjectStore, asset_path: AssetPath) -> set[str]:
    """The partition keys of ``asset_path`` that have a stored file (one listing)."""
    prefix = asset_prefix(asset_path) + "/"
    out = set()
    for info in store.list(prefix):
        name = info.key[len(prefix):]
        if name.endswith(".parquet") and "/" not in name:
            out.add(name[: -len(".parquet")])
    return out


def as_frame(obj: Any) -> pl.DataFrame | pa.Table:
    """A Polars DataFrame or a pyarrow Table (kept as is: its schema metadata survives)."""
    if isinstance(obj, (pa.Table, pl.DataFrame)):
        return obj
    if isinstance(obj, pl.LazyFrame):
        return obj.collect()
    raise LakeError(
        f"cannot store a {type(obj).__name__} as Parquet; return a polars DataFrame/LazyFrame or a pyarrow Table"
    )


def write_parquet(frame: pl.DataFrame | pa.Table, path, compression: str) -> None:
    if isinstance(frame, pl.DataFrame):
        # Polars' own writer is multi-threaded; converting to Arrow first costs ~1.5x.
        frame.write_parquet(path, compression=compression)
        return
    # Wide float grids (hrrr_fields: ~2M cells x 10 variables): dictionary encoding never pays
    # off for continuous values, and byte-stream-split lets zstd compress floats; together
    # about twice as fast and half the size on HRRR fields.
    floats = [f.name for f in frame.schema if pa.types.is_floating(f.type)]
    others = [f.name for f in frame.schema if not pa.types.is_floating(f.type)]
    pq.write_table(frame, path, compression=compression, use_dictionary=others or False,
                   use_byte_stream_split=floats or False)


def write_partition(store: ObjectStore, asset_path: AssetPath, partition_key: str | None, frame: Any,
                    compression: str = "zstd") -> tuple[int, int, str]:
    """Write one partition's frame atomically where the layout keeps it; (rows, bytes, uri)."""
    table = as_frame(frame)
    key = partition_object_key(asset_path, partition_key)
    with store.atomic_local_file(key) as path:
        write_parquet(table, path, compression)
        size = path.stat().st_size
    # No stat of the stored object afterwards: once the block exits the partition is published,
    # and a store failing right then (an outage) must not make a written partition look unwritten.
    rows = table.num_rows if isinstance(table, pa.Table) else table.height
    return rows, size, store.uri(key)


def stored_metadata(store: ObjectStore, asset_path: AssetPath, partition_key: str | None = None) -> dict[str, str]:
    """Parquet key-value metadata of one stored partition (units, valid time, grid id ...)."""
    return parquet_key_value_metadata(store, partition_object_key(asset_path, partition_key))

