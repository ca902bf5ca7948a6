"""A partition-aware Parquet IO manager over the object store.

Layout: ``lake/<asset path>/<partition key>.parquet`` for partitioned assets and
``lake/<asset path>.parquet`` otherwise, on the local folder and on S3 alike.

Why our own and not dagster-polars' ``PolarsParquetIOManager``: UPath-based managers refuse
an output that covers several partitions, so a single-run backfill could not write one file
per partition; and dagster-polars 0.27 breaks on Polars 2.x. Here an asset materialising a
range returns ``{partition_key: frame}`` and each partition lands in its own file.

Outputs may be a Polars DataFrame or LazyFrame, or a pyarrow Table (whose schema metadata,
e.g. units, is kept in the file). Inputs arrive as a Polars ``LazyFrame`` scanning every
requested partition (one, a range, or all), or as ``dict[str, LazyFrame]`` per partition when
the input is annotated as a dict. Writes are atomic (see ``ObjectStore.atomic_local_file``).
"""

from __future__ import annotations

import os
import typing
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.defs.resources import ObjectStoreResource
from snoiq_assets.lib.keys import check_key
from snoiq_assets.lib.storage import ObjectStore

LAKE_PREFIX = "lake"


class IOManagerError(ValueError):
    pass


def asset_prefix(asset_key: dg.AssetKey) -> str:
    return check_key("/".join([LAKE_PREFIX, *asset_key.path]))


def partition_object_key(asset_key: dg.AssetKey, partition_key: str | None) -> str:
    if partition_key is None:
        return check_key(asset_prefix(asset_key) + ".parquet")
    return check_key(f"{asset_prefix(asset_key)}/{partition_key}.parquet")


def as_frame(obj: Any) -> pl.DataFrame | pa.Table:
    """A Polars DataFrame or a pyarrow Table (kept as is: its schema metadata survives)."""
    if isinstance(obj, (pa.Table, pl.DataFrame)):
        return obj
    if isinstance(obj, pl.LazyFrame):
        return obj.collect()
    raise IOManagerError(
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


def _schema_columns(frame: pl.DataFrame | pa.Table) -> list[dg.TableColumn]:
    if isinstance(frame, pl.DataFrame):
        return [dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    return [dg.TableColumn(f.name, str(f.type)) for f in frame.schema]


def write_partition(store: ObjectStore, asset_key: dg.AssetKey, partition_key: str | None, frame: Any,
                    compression: str = "zstd") -> tuple[int, int, str]:
    """Write one partition's frame atomically where the IO manager keeps it; (rows, bytes, uri).
    Also used by an asset that must store the partitions that succeeded before failing the run."""
    table = as_frame(frame)
    key = partition_object_key(asset_key, partition_key)
    with store.atomic_local_file(key) as path:
        write_parquet(table, path, compression)
        size = path.stat().st_size
    # No stat of the stored object afterwards: once the block exits the partition is published,
    # and a store failing right then (an outage) must not make a written partition look unwritten.
    rows = table.num_rows if isinstance(table, pa.Table) else table.height
    return rows, size, store.uri(key)


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    store: ObjectStoreResource
    compression: str = "zstd"

    # ----- writing -------------------------------------------------------------------
    def _frames_by_partition(self, context: dg.OutputContext, obj: Any) -> dict[str | None, Any]:
        if not context.has_asset_partitions:
            if isinstance(obj, dict):
                raise IOManagerError(f"{context.asset_key.to_user_string()} is not partitioned but returned a dict")
            return {None: obj}
        keys = list(context.asset_partition_keys)
        if not isinstance(obj, dict):
            if len(keys) == 1:
                return {keys[0]: obj}
            raise IOManagerError(
                f"{context.asset_key.to_user_string()} materialised {len(keys)} partitions in one run; "
                "return a dict {partition_key: frame} so each partition is written to its own file"
            )
        missing = sorted(set(keys) - set(obj))
        extra = sorted(set(obj) - set(keys))
        if missing or extra:
            raise IOManagerError(
                f"{context.asset_key.to_user_string()}: the returned partitions do not match the run's "
                f"(missing {missing[:5]}, unexpected {extra[:5]})"
            )
        return {k: obj[k] for k in keys}

    def handle_output(self, context: dg.OutputContext, obj: Any):
        # A generator: when some partitions of a multi-partition output cannot be written (an S3
        # outage mid-write), the ones already in the lake are reported as materialised before
        # the step fails, so lake and catalogue agree after any failure.
        if obj is None:
            # The asset wrote its own files (e.g. a GRIB landing) or has nothing to store.
            return
        store = self.store.get_store()
        frames = self._frames_by_partition(context, obj)
        tables = {pk: as_frame(frame) for pk, frame in frames.items()}  # check all before writing any

        def write_one(pk) -> tuple[int, int, str]:
            return write_partition(store, context.asset_key, pk, tables[pk], self.compression)

        written: dict = {}
        failed: dict = {}
        if len(tables) == 1:
            written[next(iter(tables))] = write_one(next(iter(tables)))
        else:
            # A single-run backfill writes many partitions: the Parquet encoders and uploads
            # release the GIL, so a few threads overlap them.
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                futures = {pk: pool.submit(write_one, pk) for pk in tables}
                for pk, fut in futures.items():
                    try:
                        written[pk] = fut.result()
                    except Exception as exc:  # noqa: BLE001 - reported below, with the others
                        failed[pk] = exc
        if failed:
            yield from self._partial_write_events(context, written)
            first = next(iter(failed.values()))
            raise IOManagerError(
                f"{context.asset_key.to_user_string()}: {len(failed)} of {len(tables)} partitions could not be "
                f"written ({', '.join(failed)}): {type(first).__name__}: {first}; the {len(written)} written "
                f"({', '.join(written) or 'none'}) are recorded as materialised"
            ) from first
        total_rows = sum(w[0] for w in written.values())
        total_bytes = sum(w[1] for w in written.values())
        uris = [w[2] for w in written.values()]
        first_table = next(iter(tables.values()))
        meta: dict[str, Any] = {
            "uri": dg.MetadataValue.path(uris[0] if len(uris) == 1 else uris[0].rsplit("/", 1)[0]),
            "dagster/row_count": total_rows,
            "size_bytes": total_bytes,
            "partitions_written": len(tables),
            "dagster/column_schema": dg.TableSchema(columns=_schema_columns(first_table)),
        }
        context.add_output_metadata(meta)

    @staticmethod
    def _partial_write_events(context: dg.OutputContext, written: dict):
        """One materialisation event per partition written before the failure, emitted at once
        (events logged through the context would be dropped when handle_output raises)."""
        from dagster._core.events import DagsterEvent

        for pk, (rows, size, uri) in written.items():
            yield DagsterEvent.asset_materialization(context.step_context, dg.AssetMaterialization(
                asset_key=context.asset_key, partition=pk,
                metadata={"uri": dg.MetadataValue.path(uri), "dagster/row_count": rows, "size_bytes": size,
                          "note": "written before other partitions of the same output failed to write"}))

    # ----- reading -------------------------------------------------------------------
    def _existing(self, asset_key: dg.AssetKey) -> set[str]:
        store = self.store.get_store()
        prefix = asset_prefix(asset_key) + "/"
        return {info.key for info in store.list(prefix)}

    def load_input(self, context: dg.InputContext) -> Any:
        store = self.store.get_store()
        asset_key = context.asset_key
        typing_type = context.dagster_type.typing_type
        wants_dict = typing_type is dict or typing.get_origin(typing_type) is dict
        wants_eager = typing_type is pl.DataFrame
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions", False))

        if context.has_asset_partitions:
            partition_keys = list(context.asset_partition_keys)
            existing = self._existing(asset_key)
            keys = {pk: partition_object_key(asset_key, pk) for pk in partition_keys}
            missing = [pk for pk, key in keys.items() if key not in existing]
            if missing and not allow_missing:
                raise IOManagerError(
                    f"{asset_key.to_user_string()} has no stored data for {len(missing)} of "
                    f"{len(partition_keys)} partitions (e.g. {missing[:3]}); materialise them first"
                )
            keys = {pk: key for pk, key in keys.items() if key in existing}
        else:
            key = partition_object_key(asset_key, None)
            if not store.exists(key):
                raise IOManagerError(f"{asset_key.to_user_string()} has not been materialised ({store.uri(key)})")
            keys = {None: key}

        opts = store.storage_options
        if wants_dict:
            frames = {pk: pl.scan_parquet(store.uri(k), storage_options=opts) for pk, k in keys.items()}
            return {pk: f.collect() for pk, f in frames.items()} if _dict_value_is_eager(typing_type) else frames
        if not keys:
            return pl.DataFrame() if wants_eager else pl.LazyFrame()
        lf = pl.scan_parquet([store.uri(k) for k in keys.values()], storage_options=opts)
        return lf.collect() if wants_eager else lf


def _dict_value_is_eager(typing_type: Any) -> bool:
    args = typing.get_args(typing_type)
    return len(args) == 2 and args[1] is pl.DataFrame


def parquet_key_value_metadata(store: ObjectStore, key: str) -> dict[str, str]:
    """A stored Parquet file's key-value metadata (units, grid id, valid time ...), read from its
    footer with two ranged reads: on S3 a 76 MB field file is not downloaded for a few bytes."""
    info = store.stat(key)
    if info is None:
        raise IOManagerError(f"{store.uri(key)} does not exist; materialise it first")
    if info.size < 12:
        raise IOManagerError(f"{store.uri(key)} is not a Parquet file ({info.size} bytes)")
    tail = store.get_range(key, info.size - 8, info.size - 1)
    footer_len = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or footer_len + 12 > info.size:
        raise IOManagerError(f"{store.uri(key)} is not a Parquet file (bad footer)")
    footer = store.get_range(key, info.size - 8 - footer_len, info.size - 1)
    md = pq.read_schema(pa.BufferReader(b"PAR1" + footer)).metadata or {}
    return {k.decode(): v.decode() for k, v in md.items()}


def read_schema_metadata(store_resource: ObjectStoreResource, asset_key: dg.AssetKey, partition_key: str | None) -> dict[str, str]:
    """Parquet key-value metadata of one stored partition (units, valid time, grid id ...)."""
    return parquet_key_value_metadata(store_resource.get_store(), partition_object_key(asset_key, partition_key))
