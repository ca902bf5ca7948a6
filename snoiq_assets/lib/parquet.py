"""Stored Parquet files as handed to an asset: footers read without the data, partitions
scanned a few at a time. Knows nothing of where files live (that is lib/lake.py's job): it is
given object keys."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.lib.storage import ObjectStore


class ParquetError(ValueError):
    """A stored file is missing or is not Parquet."""


def read_parquet_bytes(data: bytes) -> pa.Table:
    """A Parquet file held in memory, as a table, read from a copy in Arrow's own memory.

    Not from the Python object itself (``io.BytesIO``, or ``pa.BufferReader(bytes)``, which
    wraps it): ``pq.read_table``'s scanner can release its last reference to the source on one
    of Arrow's pool threads after returning, and releasing a Python-owned buffer takes the GIL;
    if the interpreter is exiting by then, Python ends that thread inside a C++ destructor and
    the process aborts ("terminate called without an active exception", exit 134; gdb:
    ``arrow::py::PyBuffer::~PyBuffer`` -> ``PyGILState_Ensure`` -> ``pthread_exit``;
    apache/arrow#34314). A CLI then reported failure for work that had succeeded."""
    buf = pa.allocate_buffer(len(data))
    np.frombuffer(buf, dtype=np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
    return pq.read_table(pa.BufferReader(buf))


def parquet_key_value_metadata(store: ObjectStore, key: str) -> dict[str, str]:
    """A stored Parquet file's key-value metadata (units, grid id, valid time ...), read from its
    footer with two ranged reads: on S3 a 76 MB field file is not downloaded for a few bytes."""
    info = store.stat(key)
    if info is None:
        raise ParquetError(f"{store.uri(key)} does not exist; materialise it first")
    if info.size < 12:
        raise ParquetError(f"{store.uri(key)} is not a Parquet file ({info.size} bytes)")
    tail = store.get_range(key, info.size - 8, info.size - 1)
    footer_len = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or footer_len + 12 > info.size:
        raise ParquetError(f"{store.uri(key)} is not a Parquet file (bad footer)")
    footer = store.get_range(key, info.size - 8 - footer_len, info.size - 1)
    md = pq.read_schema(pa.BufferReader(b"PAR1" + footer)).metadata or {}
    return {k.decode(): v.decode() for k, v in md.items()}


def write_parquet(frame: pl.DataFrame | pa.Table, sink, compression: str) -> None:
    """``frame`` as Parquet into ``sink``: a local path or a binary stream."""
    if isinstance(frame, pl.DataFrame):
        # Polars' own writer is multi-threaded; converting to Arrow first costs ~1.5x.
        frame.write_parquet(sink, compression=compression)
        return
    # Wide float grids (hrrr_fields: ~2M cells x 10 variables): dictionary encoding never pays
    # off for continuous values, and byte-stream-split lets zstd compress floats; together
    # about twice as fast and half the size on HRRR fields.
    floats = [f.name for f in frame.schema if pa.types.is_floating(f.type)]
    others = [f.name for f in frame.schema if not pa.types.is_floating(f.type)]
    pq.write_table(frame, sink, compression=compression, use_dictionary=others or False,
                   use_byte_stream_split=floats or False)


class EncodedParquet:
    """A table already encoded as a Parquet file on local disk, not yet stored: what an asset
    that produces more than fits in memory (a day of HRRR leads) hands the IO manager in place
    of the table. Rows and schema (with its key-value metadata) are known at once; the file is
    complete once ``path`` returns (the encoding may still run on a ``ParquetSpill`` thread)."""

    def __init__(self, future: Future, num_rows: int, schema: pa.Schema):
        self._future = future
        self.num_rows = num_rows
        self.schema = schema

    @property
    def path(self) -> Path:
        """The finished file (waits for its encoding; re-raises the encoder's error)."""
        return self._future.result()

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def discard(self) -> None:
        """Remove the file if it was not stored, and its spill folder once that is empty: the
        IO manager calls this for every handle when it is done, stored or not, so that a run
        that fails mid-write leaves nothing behind."""
        if self._future.exception() is not None:
            return
        path = self._future.result()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):   # not empty yet: other handles' files remain
            path.parent.rmdir()

    def __repr__(self) -> str:
        state = self._future.result() if self._future.done() and not self._future.exception() else "encoding"
        return f"EncodedParquet({state}, {self.num_rows} rows)"


class ParquetSpill:
    """Encode tables to Parquet files in ``folder`` as they are produced, on background
    threads (the encoders release the GIL, so encoding overlaps producing the next table), so
    that a run's output never has to be held in memory whole. At most ``ahead`` tables wait to
    be encoded: ``add`` blocks on the oldest beyond that, which bounds memory to a few tables.
    The caller owns ``folder`` (and removes it, with whatever was not stored).

    Two threads by default: one lead of HRRR fields takes one thread ~0.25 s to encode alone
    and ~0.4 s beside the decoder child's two threads, longer than its decode, so with one
    thread ``hrrr_fields`` waited on its encoder (bench_leadtimes.py: its step 0.46 -> 0.42 s per
    cycle-lead in alternating 6-cycle runs, 0.51 -> 0.39 s over 24 cycles; the wait for the
    encoder 0.10 -> 0.02 s). Files are numbered in the order tables are added, whichever thread
    finishes first.

    ``sync``: flush each file to disk on its thread once encoded (``os.fsync``), for files that
    will be stored by a rename (``ObjectStore.adopts_by_rename``): the store's own flush before
    the rename, on the run's critical path, then finds nothing left to write (7.8 ms -> 0.1 ms
    for a 10 MB lead on this machine's disk)."""

    def __init__(self, folder: str | os.PathLike, compression: str = "zstd", ahead: int = 2, threads: int = 2,
                 sync: bool = False, name_prefix: str = ""):
        self.folder = Path(folder)
        self.name_prefix = name_prefix   # two spills may share a folder (the last file out removes it)
        self.compression = compression
        self.sync = sync
        self.ahead = ahead
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="parquet-spill")
        self._lock = threading.Lock()
        self._pending: collections.deque[Future] = collections.deque()
        self._count = 0
        self.encode_s = 0.0   # time spent encoding, summed over the spill's threads
        self.wait_s = 0.0     # time the producer waited for it (what the encoding added to its run)

    def add(self, table: pa.Table | pl.DataFrame) -> EncodedParquet:
        """Start encoding ``table``; its handle (the table itself is released once encoded)."""
        t0 = time.perf_counter()
        while len(self._pending) >= self.ahead:
            self._pending.popleft().exception()   # wait; an error is raised from the handle
        self.wait_s += time.perf_counter() - t0
        self._count += 1
        path = self.folder / f"{self.name_prefix}{self._count:06d}.parquet"
        compression = self.compression

        def encode(table=table) -> Path:
            t0 = time.perf_counter()
            try:
                write_parquet(table, path, compression)
                if self.sync:
                    with open(path, "rb") as fh:
                        os.fsync(fh.fileno())
            finally:
                with self._lock:
                    self.encode_s += time.perf_counter() - t0
            return path

        arrow_schema = table.schema if isinstance(table, pa.Table) else table.head(0).to_arrow().schema
        rows = table.num_rows if isinstance(table, pa.Table) else table.height
        future = self._pool.submit(encode)
        self._pending.append(future)
        return EncodedParquet(future, rows, arrow_schema)

    def close(self) -> None:
        """Wait for every encoding to finish (their errors stay with their handles)."""
        t0 = time.perf_counter()
        self._pool.shutdown(wait=True)
        self.wait_s += time.perf_counter() - t0

    def __enter__(self) -> "ParquetSpill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LeadFrames(dict):
    """One run-cycle partition's output as ``{forecast_hour: frame}``, what an asset hands the IO
    manager: each lead is stored as its own unit (lib/lake.py says where), so two leads of one
    cycle never overwrite each other."""


@dataclass(frozen=True)
class StoredParquet:
    """An asset's stored files as the IO manager hands them to a downstream asset that needs
    more than one frame: a subset of partitions, scanned a few at a time, or the footers
    (key-value metadata) without reading the data. ``None`` is the key of an unpartitioned asset.

    Only the partitions that exist are listed (the input decides whether missing ones are an
    error); ``partition_keys`` is sorted.

    A run-cycle partition may be stored as one file per forecast hour (``lead_keys``); a
    whole-partition file written before leads had their own files counts as the one lead its
    footer names (``forecast_hour``), so stored data stays readable before its migration.
    """

    name: str
    store: ObjectStore
    keys: dict[str | None, str]
    lead_keys: dict[str, dict[int, str]] = field(default_factory=dict)

    @property
    def partition_keys(self) -> list[str]:
        return sorted({pk for pk in self.keys if pk is not None} | set(self.lead_keys))

    def __bool__(self) -> bool:
        return bool(self.keys) or bool(self.lead_keys)

    def _missing(self, partition_key: str | None) -> ParquetError:
        shown = "the unpartitioned file" if partition_key is None else f"partition {partition_key}"
        return ParquetError(f"{self.name} has no stored {shown}; materialise it first")

    def _key(self, partition_key: str | None) -> str:
        if partition_key in self.keys:
            return self.keys[partition_key]
        if partition_key in self.lead_keys:   # a cycle stored by lead: its first lead's file
            leads = self.lead_keys[partition_key]
            return leads[min(leads)]
        raise self._missing(partition_key)

    def _files(self, partition_key: str | None) -> list[str]:
        if partition_key in self.lead_keys:
            return list(self.leads(partition_key).values())
        return [self._key(partition_key)]

    def leads(self, partition_key: str) -> dict[int, str]:
        """``{forecast hour: file}`` of one cycle partition, in lead order."""
        out = dict(self.lead_keys.get(partition_key, {}))
        if partition_key in self.keys:
            out.setdefault(int(parquet_key_value_metadata(self.store, self.keys[partition_key])
                               .get("forecast_hour", 0)), self.keys[partition_key])
        if not out:
            raise self._missing(partition_key)
        return dict(sorted(out.items()))

    def scan(self, partition_keys: Iterable[str | None] | None = None) -> pl.LazyFrame:
        """One LazyFrame over the given partitions (default: all stored; every lead of a cycle
        stored by lead), concatenated by column name (partitions may differ in their columns)."""
        wanted = self.partition_keys + ([None] if None in self.keys else []) if partition_keys is None \
            else list(partition_keys)
        files = [f for pk in wanted for f in self._files(pk)]
        if not files:
            return pl.LazyFrame()
        opts = self.store.storage_options
        return pl.concat([pl.scan_parquet(self.store.uri(f), storage_options=opts) for f in files],
                         how="diagonal_relaxed")

    def scan_lead(self, partition_key: str, forecast_hour: int) -> pl.LazyFrame:
        key = self.leads(partition_key).get(forecast_hour)
        if key is None:
            raise ParquetError(f"{self.name} has no stored lead f{forecast_hour:02d} of partition {partition_key}")
        return pl.scan_parquet(self.store.uri(key), storage_options=self.store.storage_options)

    def lead_table(self, partition_key: str, forecast_hour: int, columns: list[str] | None = None) -> pa.Table:
        """One lead's file read whole (or ``columns``) as an Arrow table, schema metadata kept:
        pyarrow decodes these wide float files about 2.5x faster than Polars."""
        key = self.leads(partition_key).get(forecast_hour)
        if key is None:
            raise ParquetError(f"{self.name} has no stored lead f{forecast_hour:02d} of partition {partition_key}")
        with self.store.local_path(key) as path:   # the file itself locally; a temporary copy from S3
            return pq.read_table(path, columns=columns)

    def lead_metadata(self, partition_key: str, forecast_hour: int) -> dict[str, str]:
        key = self.leads(partition_key).get(forecast_hour)
        if key is None:
            raise ParquetError(f"{self.name} has no stored lead f{forecast_hour:02d} of partition {partition_key}")
        return parquet_key_value_metadata(self.store, key)

    def read(self, partition_key: str | None = None) -> pl.DataFrame:
        return self.scan([partition_key]).collect()

    def metadata(self, partition_key: str | None = None) -> dict[str, str]:
        """The Parquet key-value metadata of one stored partition (or of the unpartitioned file;
        of a cycle stored by lead: its first lead's)."""
        return parquet_key_value_metadata(self.store, self._key(partition_key))
