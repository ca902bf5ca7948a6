"""Stored Parquet files as handed to an asset: footers read without the data, partitions
scanned a few at a time. Knows nothing of where files live (that is lib/lake.py's job): it is
given object keys."""

from __future__ import annotations

from dataclasses import dataclass, field
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
