"""Stored Parquet files as handed to an asset: footers read without the data, partitions
scanned a few at a time. Knows nothing of where files live (that is lib/lake.py's job): it is
given object keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.lib.storage import ObjectStore


class ParquetError(ValueError):
    """A stored file is missing or is not Parquet."""


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


@dataclass(frozen=True)
class StoredParquet:
    """An asset's stored files as the IO manager hands them to a downstream asset that needs
    more than one frame: a subset of partitions, scanned a few at a time, or the footers
    (key-value metadata) without reading the data. ``None`` is the key of an unpartitioned asset.

    Only the partitions that exist are listed (the input decides whether missing ones are an
    error); ``partition_keys`` is sorted.
    """

    name: str
    store: ObjectStore
    keys: dict[str | None, str]

    @property
    def partition_keys(self) -> list[str]:
        return sorted(pk for pk in self.keys if pk is not None)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def _key(self, partition_key: str | None) -> str:
        if partition_key not in self.keys:
            shown = "the unpartitioned file" if partition_key is None else f"partition {partition_key}"
            raise ParquetError(f"{self.name} has no stored {shown}; materialise it first")
        return self.keys[partition_key]

    def scan(self, partition_keys: Iterable[str | None] | None = None) -> pl.LazyFrame:
        """One LazyFrame over the given partitions (default: all stored), concatenated by
        column name (partitions may differ in their columns)."""
        wanted = list(self.keys) if partition_keys is None else list(partition_keys)
        if not wanted:
            return pl.LazyFrame()
        opts = self.store.storage_options
        return pl.concat([pl.scan_parquet(self.store.uri(self._key(pk)), storage_options=opts) for pk in wanted],
                         how="diagonal_relaxed")

    def read(self, partition_key: str | None = None) -> pl.DataFrame:
        return self.scan([partition_key]).collect()

    def metadata(self, partition_key: str | None = None) -> dict[str, str]:
        """The Parquet key-value metadata of one stored partition (or of the unpartitioned file)."""
        return parquet_key_value_metadata(self.store, self._key(partition_key))
