"""Whole-file unit checks: a file whose temperatures are in other units than its format says.

The per-value range rule cannot see this: °F read as °C gives a Colorado January averaging
31 °C, every value inside [-90, 60]. These checks look at the file as a whole, on the frame in
SI units before validation, and fail it (the caller quarantines it with the reason):

1. climatological bounds per month: each calendar month's median air temperature (at least
   ``MIN_VALUES`` values; the median, so a minority of bad values is left to the per-value
   rules and their reject-share check) must lie inside the bounds for that month at the station's latitude
   (from the file where the format carries it, else the northern mid-latitudes, where USCRN,
   ASOS and US GHCN-D stations are). Bounds are the extremes of monthly values on Earth for the
   season and latitude band, with a margin: they catch a unit error, not a warm month;
2. dew point <= temperature, and daily minimum <= maximum: violated in more than
   ``MAX_VIOLATION_SHARE`` of the rows that have both means two fields in different units.
"""

from __future__ import annotations

import polars as pl

MIN_VALUES = 5
MAX_VIOLATION_SHARE = 0.05
DEW_POINT_TOLERANCE_C = 1.0
MIN_MAX_TOLERANCE_C = 0.5

# Monthly median air temperature bounds (°C) by season, for |latitude| >= 25 (months counted in
# the local season: the southern hemisphere is shifted by six months) ...
_SEASONAL = {
    "winter": (-50.0, 28.0),    # Dec-Feb north: Florida Keys ~22, interior Alaska ~ -30
    "shoulder": (-45.0, 33.0),  # Mar, Apr, Oct, Nov
    "summer": (None, 40.0),     # May-Sep: Death Valley July ~39; the lower bound depends on latitude
}
# ... the summer lower bound by latitude band (mountain summits included, Greenland apart) ...
_SUMMER_FLOOR = ((50.0, 0.0), (60.0, -5.0), (90.0, -15.0))
# ... and the tropics (|latitude| < 25), all year.
_TROPICS = (-10.0, 38.0)
_SEASON_OF_MONTH = {12: "winter", 1: "winter", 2: "winter", 3: "shoulder", 4: "shoulder", 10: "shoulder",
                    11: "shoulder", 5: "summer", 6: "summer", 7: "summer", 8: "summer", 9: "summer"}
DEFAULT_LATITUDE = 40.0


def monthly_bounds(month: int, latitude: float | None) -> tuple[float, float]:
    lat = DEFAULT_LATITUDE if latitude is None else latitude
    if abs(lat) < 25:
        return _TROPICS
    local_month = month if lat >= 0 else (month + 5) % 12 + 1
    season = _SEASON_OF_MONTH[local_month]
    lo, hi = _SEASONAL[season]
    if lo is None:
        lo = next(floor for top, floor in _SUMMER_FLOOR if abs(lat) < top)
    return lo, hi


def _share(frame: pl.DataFrame, a: str, b: str, tolerance: float) -> tuple[int, int]:
    """(rows where a > b + tolerance, rows with both)."""
    if a not in frame.columns or b not in frame.columns:
        return 0, 0
    both = frame.filter(pl.col(a).is_not_null() & pl.col(b).is_not_null())
    return both.filter(pl.col(a) > pl.col(b) + tolerance).height, both.height


def unit_problems(frame: pl.DataFrame, latitude: float | None = None) -> list[str]:
    """Every sign that the file's temperatures are not in the units its format says; [] if none."""
    out = []
    if "air_temp_c" in frame.columns:
        temp = frame.select(pl.col("timestamp_utc").dt.month().alias("month"),
                            pl.coalesce(pl.col("air_temp_c"),
                                        (pl.col("air_temp_max_c") + pl.col("air_temp_min_c")) / 2
                                        if {"air_temp_max_c", "air_temp_min_c"} <= set(frame.columns)
                                        else pl.col("air_temp_c")).alias("t"))
        monthly = (temp.filter(pl.col("t").is_not_null() & pl.col("t").is_finite())
                   .group_by("month").agg(pl.col("t").median().alias("median"), pl.len().alias("n"))
                   .filter(pl.col("n") >= MIN_VALUES).sort("month"))
        where = f"latitude {latitude:g}" if latitude is not None else f"latitude {DEFAULT_LATITUDE:g} assumed"
        for row in monthly.iter_rows(named=True):
            lo, hi = monthly_bounds(row["month"], latitude)
            if not lo <= row["median"] <= hi:
                out.append(f"month {row['month']:02d}: median {row['median']:.1f} °C over {row['n']} values, outside "
                           f"the climatological [{lo:g}, {hi:g}] °C for {where} (°F read as °C, or the reverse?)")
    for a, b, tol, what in [("dew_point_c", "air_temp_c", DEW_POINT_TOLERANCE_C, "dew point above temperature"),
                            ("air_temp_min_c", "air_temp_max_c", MIN_MAX_TOLERANCE_C, "daily minimum above maximum")]:
        bad, n = _share(frame, a, b, tol)
        if n and bad / n > MAX_VIOLATION_SHARE:
            out.append(f"{what} in {bad} of {n} rows ({bad / n:.0%}): {a} and {b} in different units?")
    return out


def file_latitude(native: pl.DataFrame) -> float | None:
    """The station latitude a file carries (USCRN, GSOD), else None."""
    if "latitude" not in native.columns:
        return None
    lat = native["latitude"].cast(pl.Float64, strict=False).drop_nulls()
    lat = lat.filter(lat.is_between(-90, 90))
    return float(lat.median()) if lat.len() else None
