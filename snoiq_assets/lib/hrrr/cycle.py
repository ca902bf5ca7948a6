"""One run cycle, every lead: land the leads' files in the raw zone and decode them in lead order.

Each (cycle, lead) is its own unit: one landed GRIB (``raw/hrrr/<YYYYMMDD>/hrrr.t<HH>z.wrfsfcf<FF>.grib2``)
and one decoded table. A lead that fails (not published yet, short, a bad file) is reported with
its reason and never stops the others; a bad *landed* file is returned for quarantine. Decoding
goes in lead order so each accumulation's hourly amount can be taken from the previous lead
(``accum.add_hourly``), read back from the store when that lead was decoded in an earlier run.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa

from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.accum import check_accumulation_windows, finish_lead, with_buckets
from snoiq_assets.lib.checksums import sha256_file
from snoiq_assets.lib.hrrr.decode import find_messages, gunzip_grib, idx_text, parse_and_check_idx, scan_grib
from snoiq_assets.lib.hrrr.rawkeys import gzip_key, landing_key
from snoiq_assets.lib.hrrr.leads import Completeness, completeness, messages_present
from snoiq_assets.lib.hrrr.inventory import parse_idx
from snoiq_assets.lib.hrrr.multifetch import RetryPolicy, fetch_leads
from snoiq_assets.lib.hrrr.plausibility import check_plausible
from snoiq_assets.lib.hrrr.variables import Variable, search_pattern
from snoiq_assets.lib.storage import ObjectStore


@dataclass
class LeadOutcome:
    forecast_hour: int
    key: str                                   # raw-zone key of the lead's GRIB
    meta: dict | None = None                   # landed: source, size, sha256, ranges ...
    error: str | None = None                   # failed: why (names the file)
    bad_file: HrrrDataError | None = None      # a landed file that must be quarantined


@dataclass
class CycleLanding:
    run_time: dt.datetime
    leads: dict[int, LeadOutcome] = field(default_factory=dict)
    retries: list[str] = field(default_factory=list)

    @property
    def landed(self) -> list[int]:
        return sorted(fh for fh, o in self.leads.items() if o.meta is not None)

    @property
    def failed(self) -> list[int]:
        return sorted(fh for fh, o in self.leads.items() if o.meta is None)


def check_landed(path: Path, key: str, idx: str | None, variables: Sequence[Variable], forecast_hour: int,
                 run_time: dt.datetime):
    """A lead's GRIB (and its .idx, if any) against what it must be; the scanned messages."""
    messages = scan_grib(path, key)
    if idx is not None:
        parse_and_check_idx(idx, messages, key)
    find_messages(messages, list(variables), forecast_hour, key, run_time)
    check_accumulation_windows(messages, list(variables), forecast_hour, key)
    return messages


def land_cycle(store: ObjectStore, run_time: dt.datetime, leads: Sequence[int], variables: Sequence[Variable],
               sources: Callable[[], list], *, max_requests: int = 8, policy: RetryPolicy = RetryPolicy()) -> CycleLanding:
    """Land every lead of one cycle: a lead already in the raw zone is checked (and its .idx
    written if missing); the others are fetched together (``multifetch.fetch_leads``, its own
    .idx written beside each). ``sources()`` is called only if something must be fetched."""
    out = CycleLanding(run_time)
    to_fetch = []
    for fh in leads:
        key = landing_key(run_time, fh)
        gunzipped = {}
        try:
            if not store.exists(key) and store.exists(gzip_key(key)):   # landed gzip-compressed: decompress beside it
                with store.local_path(gzip_key(key)) as src, store.atomic_local_file(key) as dest:
                    gunzipped = {"decompressed_from": gzip_key(key), "compressed_bytes": src.stat().st_size,
                                 "decompressed_bytes": gunzip_grib(src, dest, gzip_key(key))}
        except HrrrDataError as exc:
            out.leads[fh] = LeadOutcome(fh, gzip_key(key), error=str(exc), bad_file=exc)
            continue
        if not store.exists(key):
            to_fetch.append(fh)
            continue
        try:
            idx = store.get(key + ".idx").decode() if store.exists(key + ".idx") else None
            with store.local_path(key) as path:
                messages = check_landed(path, key, idx, variables, fh, run_time)
                size, digest = path.stat().st_size, sha256_file(path)
            if idx is None:
                store.put(key + ".idx", idx_text(messages).encode())
            out.leads[fh] = LeadOutcome(fh, key, meta={"source": "landed", "byte_ranges": [], "size_bytes": size,
                                                       "sha256": digest, "idx_written": idx is None,
                                                       **gunzipped})
        except HrrrDataError as exc:
            out.leads[fh] = LeadOutcome(fh, key, error=str(exc), bad_file=exc)
    if not to_fetch:
        return out
    wanted = with_buckets(variables)
    with tempfile.TemporaryDirectory(prefix="hrrr-cycle-") as tmp:
        def validate(fh: int, path: Path, idx: str) -> None:
            check_landed(path, f"{landing_key(run_time, fh)} (fetched)", idx, variables, fh, run_time)

        fetched = fetch_leads(sources(), run_time, to_fetch, lambda fh: search_pattern(wanted, fh),
                              lambda fh: Path(tmp) / f"f{fh:02d}.grib2", max_requests=max_requests, policy=policy,
                              validate=validate)
        out.retries = fetched.retries
        for fh, res in fetched.landed.items():
            key = landing_key(run_time, fh)
            store.put_file(key, Path(tmp) / f"f{fh:02d}.grib2")   # the GRIB first: a .idx never announces a missing file
            store.put(key + ".idx", res.idx_text.encode())
            out.leads[fh] = LeadOutcome(fh, key, meta={
                "source": res.source, "source_url": res.url, "byte_ranges": res.range_headers,
                "range_requests": len(res.ranges), "size_bytes": res.size, "sha256": res.sha256,
                "fallback_errors": res.errors})
        for fh, failure in fetched.failed.items():
            out.leads[fh] = LeadOutcome(fh, landing_key(run_time, fh),
                                        error=f"no source could provide {failure.key}: {failure.error}")
    return out


def cycle_completeness(store: ObjectStore, run_time: dt.datetime, leads: Sequence[int],
                       variables: Sequence[Variable]) -> Completeness:
    """Expected messages x leads against the landed files' inventories (one small .idx read per lead)."""
    present: dict[int, set[str]] = {}
    for fh in leads:
        key = landing_key(run_time, fh)
        if store.exists(key) and store.exists(key + ".idx"):
            entries = parse_idx(store.get(key + ".idx").decode(), source=key + ".idx")
            present[fh] = messages_present(entries, list(variables), fh)
    return completeness(run_time, list(leads), list(variables), present)


@dataclass
class CycleDecode:
    tables: dict[int, pa.Table] = field(default_factory=dict)
    stats: dict[int, dict] = field(default_factory=dict)     # of each table as stored
    checked: dict[int, dict] = field(default_factory=dict)   # of the fields as decoded: what was found plausible
    errors: dict[int, HrrrDataError | str] = field(default_factory=dict)


def decode_cycle(store: ObjectStore, run_time: dt.datetime, leads: Sequence[int], variables: Sequence[Variable],
                 decoder, *, previous_lead: Callable[[int], pa.Table | None] = lambda fh: None,
                 keep: Callable[[pa.Table], Any] | None = None, **decode_kwargs) -> CycleDecode:
    """Decode every lead's landed GRIB, in lead order, each on its own: a lead that fails is in
    ``errors`` (a bad file: its ``HrrrDataError``, to be quarantined) and the others go on.

    ``decoder`` is an ``isolation.DecoderProcess``: the ecCodes part of each lead
    (``accum.decode_lead_fields``) runs in its child, so a file that crashes ecCodes fails only
    its lead. The decoded values must then be physically plausible (``plausibility``; checked on
    the fields as decoded, before the hourly amounts are derived from them). ``previous_lead(fh)``
    gives the decoded table of lead ``fh`` when it is not decoded in this call (for the first
    lead's hourly amounts); a lead whose previous lead failed here gets null hourly amounts.

    ``keep(table)``, when given, takes each finished lead's table and returns what ``tables``
    holds in its place (e.g. ``ParquetSpill.add``: its encoded file), so that a cycle's leads
    are not all held in memory; only the last lead's table is kept, for the next one's
    hourly amounts."""
    out = CycleDecode()
    last: dict[int, pa.Table] = {}   # the previous lead's decoded table, for its hourly amounts
    for fh in sorted(leads):
        key = landing_key(run_time, fh)
        if not store.exists(key):
            out.errors[fh] = f"{key} has not landed; materialise hrrr_raw for this lead first"
            continue
        idx = store.get(key + ".idx").decode() if store.exists(key + ".idx") else None
        if fh - 1 in out.tables or fh - 1 in out.errors or fh <= 1:
            previous = last.get(fh - 1)
        else:
            previous = previous_lead(fh - 1)
        try:
            with store.local_path(key) as path:
                table, stats = decoder.decode_lead_fields(path, list(variables), fh, name=key, idx=idx,
                                                          run_time=run_time, **decode_kwargs)
            check_plausible(stats, table.num_rows, fh, key)
        except HrrrDataError as exc:
            out.errors[fh] = exc
            continue
        out.checked[fh] = stats
        table, out.stats[fh] = finish_lead(table, stats, list(variables), fh, previous)
        previous = None
        last.clear()
        last[fh] = table
        out.tables[fh] = keep(table) if keep is not None else table
    return out


def leads_to_retry(store: ObjectStore, cycles: Sequence[dt.datetime], leads_for: Callable[[dt.datetime], list[int]],
                   variables: Sequence[Variable]) -> dict[dt.datetime, list[int]]:
    """For each cycle, the expected leads whose messages are not all landed yet (the archive
    publishes a cycle's leads over about an hour): what the next tick asks for again."""
    out = {}
    for run_time in cycles:
        report = cycle_completeness(store, run_time, leads_for(run_time), variables)
        missing = sorted(set(report.missing_leads) | set(report.missing_messages))
        if missing:
            out[run_time] = missing
    return out
