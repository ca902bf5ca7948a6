"""The HRRR raw-zone layout, in one place: ``raw/hrrr/<YYYYMMDD>/hrrr.t<HH>z.wrfsfcf<FF>.grib2``
(+ ``.idx`` beside it; or landed as ``.grib2.gz``, which hrrr_raw decompresses beside it).
Landing, decoding, the demo seed and the landing sensor all use it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Iterable

from snoiq_assets.lib.hours import HOURLY_START, hour_key, hour_of
from snoiq_assets.lib.keys import UnsafeNameError

RAW_PREFIX = "raw/hrrr/"
GRIB_SUFFIX = ".grib2"
GZIP_SUFFIX = ".gz"
LANDED_SUFFIXES = (GRIB_SUFFIX, GRIB_SUFFIX + GZIP_SUFFIX)
IDX_SUFFIX = ".idx"
# The only GRIB names the landing sensor accepts.
_LANDED = re.compile(r"raw/hrrr/(\d{4})(\d{2})(\d{2})/hrrr\.t(\d{2})z\.wrfsfcf(\d{2})\.grib2(?:\.gz)?")


def landing_key(run_time: dt.datetime, forecast_hour: int) -> str:
    """Our raw-zone key: ``raw/hrrr/<YYYYMMDD>/hrrr.t<HH>z.wrfsfcf<FF>.grib2``."""
    return f"{RAW_PREFIX}{run_time:%Y%m%d}/hrrr.t{run_time:%H}z.wrfsfcf{forecast_hour:02d}{GRIB_SUFFIX}"


def partition_landing_key(partition_key: str, forecast_hour: int) -> str:
    """The landed GRIB of an hourly partition (its run cycle) and forecast hour."""
    return landing_key(hour_of(partition_key), forecast_hour)


def idx_key(grib_key: str) -> str:
    return grib_key + IDX_SUFFIX


def gzip_key(grib_key: str) -> str:
    """Where a GRIB landed gzip-compressed (hrrr_raw decompresses it to ``grib_key``)."""
    return grib_key + GZIP_SUFFIX


def partition_for_landed_key(key: str) -> tuple[str, int]:
    """``raw/hrrr/20201214/hrrr.t00z.wrfsfcf12.grib2[.gz]`` -> (``2020-12-14T00``, 12); UnsafeNameError
    for any other name or a run before the first hourly partition."""
    match = _LANDED.fullmatch(key)
    if not match:
        raise UnsafeNameError(f"{key!r} is not raw/hrrr/<YYYYMMDD>/hrrr.t<HH>z.wrfsfcf<FF>.grib2")
    y, m, d, hh, ff = match.groups()
    try:
        run = dt.datetime(int(y), int(m), int(d), int(hh), tzinfo=dt.timezone.utc)
    except ValueError:
        raise UnsafeNameError(f"{key!r} names no real date and hour") from None
    partition = hour_key(run)
    if partition < HOURLY_START:   # the key format sorts as time
        raise UnsafeNameError(f"{key!r} is for run {partition}, before the first hourly partition {HOURLY_START} "
                              "(the start of NOAA's HRRR archive)")
    return partition, int(ff)


def newest_landed_grib(keys: Iterable[str]) -> str | None:
    """The last landed GRIB in key order (keys sort by date, cycle and forecast hour)."""
    gribs = sorted(k for k in keys if k.startswith(RAW_PREFIX) and k.endswith(GRIB_SUFFIX))
    return gribs[-1] if gribs else None
