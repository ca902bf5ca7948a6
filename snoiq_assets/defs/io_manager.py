"""A partition-aware Parquet IO manager over the object store: the only user of the lake
layout (``snoiq_assets.lib.lake``: ``lake/<asset path>/<partition key>.parquet`` for
partitioned assets, ``lake/<asset path>.parquet`` otherwise, on the local folder and on S3).

Why our own and not dagster-polars' ``PolarsParquetIOManager``: UPath-based managers refuse
an output that covers several partitions, so a single-run backfill could not write one file
per partition; and dagster-polars 0.27 breaks on Polars 2.x. Here an asset materialising a
range returns ``{partition_key: frame}`` and each partition lands in its own file.

Outputs may be a Polars DataFrame or LazyFrame, or a pyarrow Table (whose schema metadata,
e.g. units, is kept in the file), or an ``EncodedParquet`` (lib/parquet.py): a table the asset
already encoded into a local spill folder as it went (hrrr_fields, whose day of leads would not
fit in memory), stored by moving the file in (a rename on the local folder, an upload on S3);
whatever a failed write leaves of them is removed. Inputs arrive as a Polars ``LazyFrame`` scanning every
requested partition (one, a range, or all), as ``dict[str, LazyFrame]`` per partition when
the input is annotated as a dict, or as a ``StoredParquet`` (lib/lake.py) when the asset needs
a subset of the stored partitions or their Parquet footers (units, grid id, build info) without
reading the data. Writes are atomic (see ``ObjectStore.write_atomically``). An output returned
as ``Audited`` (defs/failures.py) is written to staging, audited, and published only if it
passes (write-audit-publish, lib/lake.py): a refused partition is never readable from the lake.
"""

from __future__ import annotations

import collections
import itertools
import os
import typing
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import polars as pl

from snoiq_assets.defs.failures import Audited, StoreGoodThenFail
from snoiq_assets.defs.metadata import changed_by_rounding
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib import columns
from snoiq_assets.lib.lake import (
    EncodedParquet,
    LakeError,
    LeadFrames,
    as_frame,
    lead_object_key,
    partition_object_key,
    encode_partition,
    stored_partition_files,
    staged_object_key,
    stored_files_of,
    write_leads,
    write_partition,
)
from snoiq_assets.lib.parquet import StoredParquet


class IOManagerError(LakeError):
    pass


def _schema_columns(frame, asset: str, as_landed: str | None = None) -> list[dg.TableColumn]:
    """The column schema the UI shows, each column described with its unit (lib/columns.py)."""
    if isinstance(frame, pl.DataFrame):
        fields = [(name, str(dtype)) for name, dtype in frame.schema.items()]
    else:
        fields = [(f.name, str(f.type)) for f in frame.schema]
    def text(name: str) -> str | None:
        known = columns.describe_for(asset, name)
        return known if known or not as_landed else columns.describe_raw(name, as_landed)
    return [dg.TableColumn(name, dtype, description=text(name)) for name, dtype in fields]


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
        # A generator, so that when only some partitions are stored (an asset's StoreGoodThenFail,
        # or an S3 outage mid-write) their materialisation events are emitted before the step
        # fails: events logged through the context would be dropped when handle_output raises,
        # and lake and catalogue must agree after any failure.
        # The asset's own metadata, floats rounded for display (defs/metadata.py): entries the
        # IO manager adds replace the output's entries of the same name.
        if rounded := changed_by_rounding(context.output_metadata or {}):
            context.add_output_metadata(rounded)
        if obj is None:
            # The asset wrote its own files (e.g. a GRIB landing) or has nothing to store.
            return
        try:
            yield from self._handle(context, obj)
        finally:
            _discard_encoded(obj)

    def _handle(self, context: dg.OutputContext, obj: Any):
        if isinstance(obj, StoreGoodThenFail):
            note = "stored although other partitions of the same run failed"
            yield from self._write_all(context, {pk: _as_stored(f) for pk, f in obj.frames.items()}, note)
            for asset_key, frames in obj.also.items():
                yield from self._write_all(context, {pk: _as_stored(f) for pk, f in frames.items()}, note,
                                           asset_key=asset_key)
            raise obj.failure
        audit = None
        if isinstance(obj, Audited):
            obj, audit = obj.frames, obj.audit
        frames = self._frames_by_partition(context, obj)
        # check all before writing any; a LeadFrames value is one file per lead of that cycle
        tables = {pk: _as_stored(frame) for pk, frame in frames.items()}
        written = yield from self._write_all(context, tables, None, audit)
        first = next(iter(tables.values()))
        if isinstance(first, LeadFrames):
            first = next(iter(next((t for t in tables.values() if t), first).values()))
        shared: dict[str, Any] = {
            "partitions_written": len(tables),
            "dagster/column_schema": dg.TableSchema(columns=_schema_columns(
                first, context.asset_key.to_user_string(), (context.definition_metadata or {}).get(columns.COLUMNS_AS_LANDED))),
        }
        lead_counts = [len(t) for t in tables.values() if isinstance(t, LeadFrames)]
        if lead_counts:
            shared["lead_files_written"] = sum(lead_counts)
        if len(tables) == 1:
            (pk, (rows, size, uri)), = written.items()
            if isinstance(tables[pk], LeadFrames):   # one cycle: each lead's file on its own row
                store = self.store.get_store()
                shared.update({f"lead f{fh:02d}": dg.MetadataValue.path(
                    store.uri(lead_object_key(context.asset_key.path, pk, fh))) for fh in sorted(tables[pk])})
            context.add_output_metadata({"uri": dg.MetadataValue.path(uri), "dagster/row_count": rows,
                                         "size_bytes": size, **shared})
            return
        # A single-run backfill: each partition's materialisation gets its own file, row count
        # and size (output metadata would repeat the range's totals on every partition).
        # The column schema, the same for every partition of the run, goes on the last one only:
        # Dagster records that one last, so it is the asset's latest materialisation, whose
        # schema the UI shows. On every partition the grid join's (31 KB: 300 columns) was most
        # of each event's size and a third of the time Dagster took recording the run's
        # materialisations (bench_backfill.py).
        schema = shared.pop("dagster/column_schema")
        context.add_output_metadata(shared)
        last = [pk for pk in context.asset_partition_keys if pk in written][-1]
        for pk, (rows, size, uri) in written.items():
            context.step_context.add_asset_metadata(
                {"uri": dg.MetadataValue.path(uri), "dagster/row_count": rows, "size_bytes": size,
                 **({"dagster/column_schema": schema} if pk == last else {})},
                asset_key=context.asset_key, partition_key=pk)

    def _write_all(self, context: dg.OutputContext, tables: dict, note: str | None, audit=None,
                   asset_key: dg.AssetKey | None = None):
        """Write every partition of the output's asset (or of ``asset_key``, another asset of the
        same step); with ``note``, emit a materialisation per partition written. If some cannot be
        written, emit one for each that was, then raise naming the others."""
        store = self.store.get_store()
        asset_key = asset_key or context.asset_key

        def write_one(pk) -> tuple[int, int, str]:
            table = tables[pk]
            if isinstance(table, LeadFrames):   # one file per lead; the cycle's folder as its uri
                files = write_leads(store, asset_key.path, pk, table, self.compression)
                return (sum(f[0] for f in files), sum(f[1] for f in files),
                        files[0][2].rsplit("/", 1)[0] if files else "")
            return write_partition(store, asset_key.path, pk, table, self.compression, audit)

        written: dict = {}
        failed: dict = {}
        if len(tables) == 1 or audit is not None:
            for pk in tables:
                try:
                    written[pk] = write_one(pk)
                except Exception as exc:  # noqa: BLE001 - reported below, with the others
                    if len(tables) == 1:
                        raise
                    failed[pk] = exc
        else:
            # A single-run backfill writes many partitions: the Parquet encoders release the GIL,
            # so a few threads encode them, while the files go into the store one at a time, in
            # partition order. Parallel uploads would leave a store failure (an outage) with
            # several in flight, and one whose upload completed but whose answer was lost is in
            # the lake yet not recorded; in order, what is recorded is exactly what was published.
            # At most `ahead` encoded partitions wait in memory.
            ahead = min(4, os.cpu_count() or 1)
            with ThreadPoolExecutor(max_workers=ahead) as pool:
                pending: collections.deque = collections.deque()
                keys = iter(tables)
                for pk in itertools.islice(keys, ahead):
                    pending.append((pk, pool.submit(encode_partition, asset_key.path, pk, tables[pk],
                                                    self.compression)))
                while pending:
                    pk, fut = pending.popleft()
                    try:
                        written[pk] = fut.result().publish(store)
                    except Exception as exc:  # noqa: BLE001 - reported below, with the others
                        failed[pk] = exc
                    del fut
                    for nxt in itertools.islice(keys, 1):
                        pending.append((nxt, pool.submit(encode_partition, asset_key.path, nxt, tables[nxt],
                                                         self.compression)))
        if failed or note:
            yield from _materialisation_events(
                context, written, note or "written before other partitions of the same output failed to write", asset_key)
        if failed:
            first = next(iter(failed.values()))
            raise IOManagerError(
                f"{asset_key.to_user_string()}: {len(failed)} of {len(tables)} partitions could not be "
                f"written ({', '.join(failed)}): {type(first).__name__}: {first}; the {len(written)} written "
                f"({', '.join(written) or 'none'}) are recorded as materialised"
            ) from first
        return written

    # ----- reading -------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> Any:
        store = self.store.get_store()
        asset_key = context.asset_key
        typing_type = context.dagster_type.typing_type
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions", False))

        if context.has_asset_partitions:
            few = _few_requested_partition_keys(context, allow_missing)
            whole, by_lead = (stored_files_of(store, asset_key.path, few) if few is not None
                              else stored_partition_files(store, asset_key.path))
            existing = set(whole) | set(by_lead)
            partition_keys = _requested_partition_keys(context, existing, allow_missing)
            missing = [pk for pk in partition_keys if pk not in existing]
            if missing and not allow_missing:
                refused = [pk for pk in missing[:3] if store.exists(staged_object_key(asset_key.path, pk))]
                raise IOManagerError(
                    f"{asset_key.to_user_string()} has no stored data for {len(missing)} of "
                    f"{len(partition_keys)} partitions (e.g. {missing[:3]}); materialise them first"
                    + (f" ({', '.join(refused)}: refused by its audit and never published; see the failed "
                       f"run and the staged data at {store.uri(staged_object_key(asset_key.path, refused[0]))})"
                       if refused else "")
                )
            keys = {pk: whole[pk] for pk in partition_keys if pk in whole}
            lead_keys = {pk: by_lead[pk] for pk in partition_keys if pk in by_lead}
        else:
            key = partition_object_key(asset_key.path, None)
            exists = store.exists(key)
            if not exists and not allow_missing:
                raise IOManagerError(f"{asset_key.to_user_string()} has not been materialised ({store.uri(key)})")
            keys = {None: key} if exists else {}   # missing but allowed: an empty StoredParquet
            lead_keys = {}

        stored = StoredParquet(asset_key.to_user_string(), store, keys, lead_keys)
        if typing_type is StoredParquet:
            return stored
        if typing_type is dict or typing.get_origin(typing_type) is dict:
            eager = _dict_value_is_eager(typing_type)
            pks = list(keys) + [pk for pk in lead_keys if pk not in keys]
            return {pk: (stored.read(pk) if eager else stored.scan([pk])) for pk in pks}
        wants_eager = typing_type is pl.DataFrame
        if not stored:
            return pl.DataFrame() if wants_eager else pl.LazyFrame()
        if lead_keys:   # every lead of every requested cycle
            lf = stored.scan()
        else:
            lf = pl.scan_parquet([store.uri(k) for k in keys.values()], storage_options=store.storage_options)
        return lf.collect() if wants_eager else lf


PER_PARTITION_LISTING_MAX = 48
"""An input asking for at most this many partitions looks at each one's files; more (a backfill
reading a long range, or every stored partition) list the asset's files once."""


def _few_requested_partition_keys(context: dg.InputContext, allow_missing: bool) -> list[str] | None:
    """The upstream partitions this input asks for, when few enough to look at one by one;
    else None. Without enumerating a long window: an input of every stored hourly partition
    spans the archive (108,000 keys)."""
    partitions_def = context.asset_partitions_def
    if allow_missing and not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return None   # e.g. every stored station file: only a listing knows them
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        window = context.asset_partitions_time_window
        one = partitions_def.time_window_for_partition_key(context.asset_partition_key_range.start)
        if (window.end - window.start) > (one.end - one.start) * PER_PARTITION_LISTING_MAX:
            return None
    keys = list(context.asset_partition_keys)
    return keys if len(keys) <= PER_PARTITION_LISTING_MAX else None


def _requested_partition_keys(context: dg.InputContext, existing: set[str], allow_missing: bool) -> list[str]:
    """The upstream partitions this input asks for. When missing ones are allowed and the input
    is time-partitioned, only the stored keys inside the requested window: an unpartitioned
    asset reading every hourly partition would otherwise enumerate every hour since the start of
    the archive (108,000 keys, over a second per read) to keep the few stored."""
    partitions_def = context.asset_partitions_def
    if allow_missing and isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        window = context.asset_partitions_time_window
        return sorted(pk for pk in existing if partitions_def.has_partition_key(pk)
                      and window.start <= partitions_def.time_window_for_partition_key(pk).start < window.end)
    return list(context.asset_partition_keys)


def _materialisation_events(context: dg.OutputContext, written: dict, note: str, asset_key: dg.AssetKey):
    """One materialisation event per written partition, as events the step emits at once."""
    from dagster._core.events import DagsterEvent

    for pk, (rows, size, uri) in written.items():
        yield DagsterEvent.asset_materialization(context.step_context, dg.AssetMaterialization(
            asset_key=asset_key, partition=pk,
            metadata={"uri": dg.MetadataValue.path(uri), "dagster/row_count": rows, "size_bytes": size,
                      "note": note}))


def _discard_encoded(obj: Any) -> None:
    """Remove what is left of files an asset encoded for this output (``EncodedParquet``):
    stored ones were moved already; those of a failed write would otherwise stay behind."""
    frames = obj.frames if isinstance(obj, (StoreGoodThenFail, Audited)) else obj
    values = list(frames.values()) if isinstance(frames, dict) else [frames]
    if isinstance(obj, StoreGoodThenFail):
        values += [f for also in obj.also.values() for f in also.values()]
    for value in values:
        for item in (value.values() if isinstance(value, LeadFrames) else [value]):
            if isinstance(item, EncodedParquet):
                item.discard()


def _as_stored(frame: Any):
    """The frame as written: a LeadFrames value keeps its leads, each checked on its own."""
    if isinstance(frame, LeadFrames):
        return LeadFrames({fh: as_frame(f) for fh, f in frame.items()})
    return as_frame(frame)


def _dict_value_is_eager(typing_type: Any) -> bool:
    args = typing.get_args(typing_type)
    return len(args) == 2 and args[1] is pl.DataFrame
