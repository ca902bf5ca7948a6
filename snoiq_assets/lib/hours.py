"""Hourly partition keys (``%Y-%m-%dT%H``, UTC): the one place that formats and parses them.

Chosen once: no colon, so a key is a safe object-key segment; changing the format later would
orphan every stored partition.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

HOURLY_KEY_FORMAT = "%Y-%m-%dT%H"
# The first run cycle of NOAA's HRRR archive on AWS (hrrr.20140730/conus/, 18Z; the operational
# HRRR starts 2014-09-30): every archived run has a partition. Keys are unchanged by moving it.
HOURLY_START = "2014-07-30T18"
UTC = dt.timezone.utc


def hour_of(partition_key: str) -> dt.datetime:
    """``2023-01-01T05`` -> 2023-01-01 05:00 UTC; ValueError for anything else."""
    return dt.datetime.strptime(partition_key, HOURLY_KEY_FORMAT).replace(tzinfo=UTC)


def hour_key(time: dt.datetime) -> str:
    """The partition key of the hour ``time`` falls in (naive times are taken as UTC)."""
    if time.tzinfo is not None:
        time = time.astimezone(UTC)
    return time.strftime(HOURLY_KEY_FORMAT)


def keys_between(partition_keys: Iterable[str], start: dt.date | None, end: dt.date | None) -> list[str]:
    """The hourly keys whose day is within [start, end] (inclusive; None = open), sorted.
    Keys that are not hourly keys are left out."""
    out = []
    for pk in partition_keys:
        try:
            day = hour_of(pk).date()
        except ValueError:
            continue
        if (start is None or day >= start) and (end is None or day <= end):
            out.append(pk)
    return sorted(out)


def contiguous_ranges(partition_keys: Iterable[str]) -> list[tuple[str, str]]:
    """Hourly keys grouped into runs of consecutive hours, sorted: [(first, last), ...]."""
    hours = sorted({hour_of(k) for k in partition_keys})
    ranges: list[list[dt.datetime]] = []
    for h in hours:
        if ranges and h - ranges[-1][1] == dt.timedelta(hours=1):
            ranges[-1][1] = h
        else:
            ranges.append([h, h])
    return [(hour_key(a), hour_key(b)) for a, b in ranges]


def by_month(partition_keys: Iterable[str]) -> list[list[str]]:
    """Hourly keys grouped by calendar month (``YYYY-MM``), months and keys in order."""
    months: dict[str, list[str]] = {}
    for pk in sorted(partition_keys):
        months.setdefault(pk[:7], []).append(pk)
    return [months[m] for m in sorted(months)]
