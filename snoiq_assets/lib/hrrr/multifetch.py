"""Fetch many forecast hours of a cycle at once, FastHerbie-style, never leaving a silent hole.

For each lead file: read its ``.idx`` (the first source that has it), plan the byte ranges of
the selected messages (adjacent messages coalesced into one range, ``inventory.group_ranges``),
then fetch every range of every file through one bounded pool of parallel requests. Each
request is retried with exponential backoff on transient failures (timeouts, connection
errors, 5xx, a short body); a missing object is not retried at that source, the next source is
asked instead. A lead whose file is missing or shorter than its ``.idx`` says is a
``LeadFailure`` naming the file and the range; the other leads still land (Herbie loses 1-2% of
files silently in bulk downloads, Herbie #551: here every hole is reported).

The request timeout is the source's own (``S3Source.anonymous_boto3(timeout_s=...)``,
``HttpSource(timeout_s=...)``, or ``SourceSpec.timeout_s``): a stuck connection becomes a
timeout error, which is retried like any transient failure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import socket
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from snoiq_assets.lib.hrrr.fetch import FetchError, FetchResult, hrrr_key
from snoiq_assets.lib.hrrr.inventory import (
    ByteRange,
    IdxEntry,
    IdxError,
    group_ranges,
    parse_idx,
    select,
    subset_idx,
    whole_messages,
)


class MissingObject(FetchError):
    """The source answered, and the object is not there (never retried at that source)."""


def is_missing(exc: BaseException) -> bool:
    """True if ``exc`` says the object does not exist (S3 NoSuchKey/404, HTTP 404)."""
    if isinstance(exc, MissingObject):
        return True
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 404
    code = getattr(exc, "code", None)                          # minio S3Error
    if code in ("NoSuchKey", "NoSuchBucket"):
        return True
    response = getattr(exc, "response", None)                  # botocore ClientError
    if isinstance(response, dict):
        err = response.get("Error", {}).get("Code")
        return err in ("NoSuchKey", "NoSuchBucket", "404")
    return False


def is_transient(exc: BaseException) -> bool:
    """Worth asking the same source again: timeouts, dropped connections, 5xx, throttling, short bodies."""
    if isinstance(exc, ShortRead | TimeoutError | socket.timeout | ConnectionError):
        return True
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    if isinstance(exc, urllib.error.URLError):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or status == 429 or response.get("Error", {}).get("Code") in ("SlowDown", "RequestTimeout")
    name = type(exc).__name__
    return name in ("ReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError", "ConnectionClosedError",
                    "ProtocolError", "IncompleteRead", "MaxRetryError", "ResponseStreamingError")


class ShortRead(FetchError):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4            # per request and source, the first try included
    backoff_s: float = 0.25      # sleep before retry n: backoff_s * 2**(n-1), +-25% jitter
    max_backoff_s: float = 8.0

    def delay(self, retry: int) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1))
        return base * random.uniform(0.75, 1.25)


def with_retries(call, policy: RetryPolicy, what: str, log):
    """``call()`` retried on transient errors, each retry reported to ``log(text)``; the last error
    is raised (a missing object at once)."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified below
            if is_missing(exc) or not is_transient(exc) or attempt == policy.attempts:
                raise
            log(f"{what}: attempt {attempt} failed ({type(exc).__name__}: {exc}); retrying")
            time.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class LeadPlan:
    """What one lead's file contributes: the ranges to fetch from ``source``."""

    forecast_hour: int
    key: str                 # archive key of the GRIB (its .idx is key + ".idx")
    source_index: int        # index into the sources list
    entries: tuple[IdxEntry, ...]
    ranges: tuple[ByteRange, ...]


@dataclass
class LeadFailure:
    forecast_hour: int
    key: str
    error: str


@dataclass
class MultiLeadResult:
    run_time: dt.datetime
    landed: dict[int, FetchResult] = field(default_factory=dict)
    failed: dict[int, LeadFailure] = field(default_factory=dict)
    retries: list[str] = field(default_factory=list)       # every retried request, for the log
    requests: int = 0                                     # range requests sent (retries excluded)

    def raise_for_failures(self) -> None:
        if self.failed:
            raise FetchError(f"{len(self.failed)} of {len(self.failed) + len(self.landed)} leads of cycle "
                             f"{self.run_time:%Y-%m-%dT%H} failed: "
                             + "; ".join(f"f{f.forecast_hour:02d} {f.key}: {f.error}"
                                         for f in sorted(self.failed.values(), key=lambda f: f.forecast_hour)))


def check_idx_lead(entries: list[IdxEntry], forecast_hour: int, source: str) -> None:
    """Every selected inventory line must be for ``forecast_hour``: ``anl``/``F hour fcst`` or an
    ``A-F hour acc`` window ending at F (an .idx listing another lead is the wrong inventory)."""
    for e in entries:
        end = forecast_end_hour(e.forecast)
        if end is not None and end != forecast_hour:
            raise IdxError(f"{source} message {e.msg} ({e.variable}:{e.level}:{e.forecast}) is for f{end:02d}, "
                           f"not the file's lead f{forecast_hour:02d}")


def forecast_end_hour(forecast: str) -> int | None:
    """The hour a wgrib2 forecast text ends at (``anl`` 0, ``6 hour fcst`` 6, ``5-6 hour acc fcst`` 6,
    ``0-0 day acc fcst`` 0); None for texts this does not know."""
    text = forecast.strip()
    if text == "anl":
        return 0
    head = text.split(" ")
    if len(head) >= 2 and head[1] in ("hour", "day"):
        last = head[0].rpartition("-")[2]
        if last.isdigit():
            return int(last) * (24 if head[1] == "day" else 1)
    return None


def plan_lead(sources: list, run_time: dt.datetime, forecast_hour: int, pattern: str, policy: RetryPolicy,
              log, *, product: str = "wrfsfc", domain: str = "conus") -> LeadPlan:
    """Read the lead's ``.idx`` from the first source that has it and plan its ranges."""
    key = hrrr_key(run_time, forecast_hour, product, domain)
    errors = []
    for i, source in enumerate(sources):
        where = source.describe(key + ".idx")
        try:
            text = with_retries(lambda: source.get_text(key + ".idx"), policy, where, log)
            entries = parse_idx(text, source=where)
            chosen = select(entries, pattern)
            if not chosen:
                raise FetchError(f"no message of {where} matches {pattern!r}")
            check_idx_lead(chosen, forecast_hour, where)
            chosen = whole_messages(entries, chosen)   # a range brings every field of its message (U with V)
            return LeadPlan(forecast_hour, key, i, tuple(chosen), tuple(group_ranges(chosen)))
        except Exception as exc:  # noqa: BLE001 - any failure: the next source
            errors.append(f"{where}: {'missing' if is_missing(exc) else type(exc).__name__}: {exc}")
    raise FetchError(f"no source has a usable {key}.idx: " + "; ".join(errors))


def fetch_leads(sources: list, run_time: dt.datetime, forecast_hours: list[int], pattern_for, dest_for, *,
                max_requests: int = 8, policy: RetryPolicy = RetryPolicy(), validate=None) -> MultiLeadResult:
    """Fetch the selected messages of every lead of one cycle; ``dest_for(fh)`` is the local path
    to write lead ``fh``'s subset to and ``pattern_for(fh)`` its ``.idx`` regex.

    Sources are tried in order per lead: a lead's ranges come from the source that served its
    ``.idx``; if anything fails there (missing, short, retries exhausted, validation) the lead is
    planned and fetched again from the next source. At most ``max_requests`` range requests are
    in flight at once over all leads. ``validate(fh, path, idx_text)``, if given, checks a landed file (raising
    fails that lead only). Never raises for one lead: see ``result.failed``.
    """
    result = MultiLeadResult(run_time)
    lock = threading.Lock()

    def log(msg: str) -> None:
        with lock:
            result.retries.append(msg)

    def land(fh: int) -> None:
        dest = Path(dest_for(fh))
        errors: list[str] = []
        for source in sources:
            try:
                plan = plan_lead([source], run_time, fh, pattern_for(fh), policy, log)
                fetched = _fetch_plan(requests, source, plan, policy, log)
                with lock:
                    result.requests += len(plan.ranges)
                sizes = [len(b) for b in fetched]
                idx = subset_idx(list(plan.ranges), sizes)
                digest = hashlib.sha256()
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "wb") as out:
                    for chunk in fetched:
                        out.write(chunk)
                        digest.update(chunk)
                if validate is not None:
                    validate(fh, dest, idx)
            except Exception as exc:  # noqa: BLE001 - this source failed for this lead: the next one
                errors.append(f"{source.name}: {type(exc).__name__}: {exc}")
                continue
            with lock:
                result.landed[fh] = FetchResult(
                    source=source.name, url=source.describe(plan.key), ranges=list(plan.ranges), sizes=sizes,
                    idx_text=idx, size=sum(sizes), sha256=digest.hexdigest(), errors=errors)
            return
        with lock:
            result.failed[fh] = LeadFailure(fh, hrrr_key(run_time, fh), "; ".join(errors) or "no sources configured")

    # Range requests share one bounded pool; the leads waiting on them run on a second one, so a
    # lead can never hold a request slot while it waits for its own ranges.
    with ThreadPoolExecutor(max_workers=max_requests, thread_name_prefix="hrrr-range") as requests, \
            ThreadPoolExecutor(max_workers=max(1, min(len(forecast_hours), max_requests)),
                               thread_name_prefix="hrrr-lead") as leads:
        for fut in [leads.submit(land, fh) for fh in forecast_hours]:
            fut.result()
    return result


def declared_length(data: bytes) -> int:
    """The bytes the consecutive GRIB messages at the start of ``data`` declare (section 0 lengths)."""
    pos = 0
    while data[pos:pos + 4] == b"GRIB" and pos + 16 <= len(data):
        pos += int.from_bytes(data[pos + 8:pos + 16], "big")
    return pos


def _fetch_plan(pool: ThreadPoolExecutor, source, plan: LeadPlan, policy: RetryPolicy, log) -> list[bytes]:
    """Every range of one lead in parallel; the bytes in file order. Raises the first failure."""

    def get(rng: ByteRange) -> bytes:
        where = f"{source.describe(plan.key)} {rng.header}"

        def call() -> bytes:
            data = source.get_range(plan.key, rng)
            if rng.length is not None and len(data) != rng.length:
                raise ShortRead(f"{plan.key} is short: range {rng.header} returned {len(data)} bytes, "
                                f"the .idx says {rng.length}")
            if data[:4] != b"GRIB":
                raise FetchError(f"{plan.key}: range {rng.header} does not start with a GRIB message "
                                 f"(the .idx does not match the file)")
            declared = declared_length(data)
            if declared > len(data):   # an open-ended last range of a truncated file
                raise ShortRead(f"{plan.key} is short: range {rng.header} returned {len(data)} bytes, its GRIB "
                                f"messages declare {declared}")
            return data

        return with_retries(call, policy, where, log)

    futures = [pool.submit(get, rng) for rng in plan.ranges]
    out = []
    for fut in futures:
        out.append(fut.result())
    return out
