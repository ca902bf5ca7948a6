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
from typing import Callable, Sequence

import pyarrow as pa

from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.accum import check_accumulation_windows, decode_lead, with_buckets
from snoiq_assets.lib.hrrr.decode import find_messages, idx_text, parse_and_check_idx, scan_grib
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.hrrr.leads import Completeness, completeness, messages_present
from snoiq_assets.lib.hrrr.inventory import parse_idx
from snoiq_assets.lib.hrrr.multifetch import RetryPolicy, fetch_leads
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
        if not store.exists(key):
            to_fetch.append(fh)
            continue
        try:
            idx = store.get(key + ".idx").decode() if store.exists(key + ".idx") else None
            with store.local_path(key) as path:
                messages = check_landed(path, key, idx, variables, fh, run_time)
                size = path.stat().st_size
            if idx is None:
                store.put(key + ".idx", idx_text(messages).encode())
            out.leads[fh] = LeadOutcome(fh, key, meta={"source": "landed", "size_bytes": size,
                                                       "idx_written": idx is None})
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
            out.leads[fh] = LeadOutcome(fh, landing_key(run_time, fh), error=f"{failure.key}: {failure.error}")
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
    stats: dict[int, dict] = field(default_factory=dict)
    errors: dict[int, HrrrDataError | str] = field(default_factory=dict)


def decode_cycle(store: ObjectStore, run_time: dt.datetime, leads: Sequence[int], variables: Sequence[Variable], *,
                 previous_lead: Callable[[int], pa.Table | None] = lambda fh: None, **decode_kwargs) -> CycleDecode:
    """Decode every lead's landed GRIB, in lead order. ``previous_lead(fh)`` gives the stored table
    of lead ``fh`` when it is not decoded in this call (for the first lead's hourly amounts)."""
    out = CycleDecode()
    for fh in sorted(leads):
        key = landing_key(run_time, fh)
        if not store.exists(key):
            out.errors[fh] = f"{key} has not landed; materialise hrrr_raw for this lead first"
            continue
        idx = store.get(key + ".idx").decode() if store.exists(key + ".idx") else None
        previous = out.tables.get(fh - 1) if fh - 1 in out.tables else (previous_lead(fh - 1) if fh > 1 else None)
        try:
            with store.local_path(key) as path:
                table, stats = decode_lead(path, list(variables), fh, previous=previous, name=key, idx=idx,
                                           run_time=run_time, **decode_kwargs)
        except HrrrDataError as exc:
            out.errors[fh] = exc
            continue
        out.tables[fh], out.stats[fh] = table, stats
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
