"""Whole-file unit checks: a file whose temperatures are in other units than its format says.

The per-value range rule cannot see this: °F read as °C gives a Colorado January averaging
31 °C, every value inside [-90, 60]. These checks look at the file as a whole, on the frame in
SI units before validation, and fail it (the caller quarantines it with the reason):

1. climatological bounds per station and month: each calendar month's median air temperature
   (at least ``MIN_VALUES`` values; the median, so a minority of bad values is left to the
   per-value rules and their reject-share check) must lie inside the bounds for that month at
   the station's place (``StationPlace``: latitude and elevation from the file where the format
   carries them, USCRN and GSOD, else from the station lists in the raw zone: USCRN
   stations.tsv, the extra metadata file, the road-weather site list; else the northern
   mid-latitudes at sea level, where USCRN, ASOS and US GHCN-D stations are). Bounds are the
   extremes of monthly values on Earth for the season and latitude band, with a margin, the
   upper one lowered by the standard lapse rate for the station's elevation: they catch a unit
   error, not a warm month. No per-station normals are bundled (no offline source), so the
   bounds are per station through its latitude, hemisphere and elevation only;
2. dew point <= temperature, and daily minimum <= maximum: violated in more than
   ``MAX_VIOLATION_SHARE`` of the rows that have both means two fields in different units;
3. the daily range (maximum - minimum) of a daily file: a median below ``MIN_DAILY_RANGE_C``
   over at least ``MIN_DAYS`` days means squeezed temperatures (GHCN-Daily in whole °F read as
   tenths of °C divides the range by about 5.6: Seattle's 7.8 °C becomes 1.4 °C), which the
   bounds alone miss because such values stay inside them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

MIN_VALUES = 5
MIN_DAILY_RANGE_C = 2.0   # the smallest median diurnal range of real stations is ~3 °C (Aleutians, fog coasts)
MIN_DAYS = 30
LAPSE_RATE_C_PER_KM = 6.5
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


@dataclass(frozen=True)
class StationPlace:
    """Where a station is, as far as the unit checks need it, and where that came from."""

    latitude: float | None = None
    elevation_m: float | None = None
    source: str = "assumed"

    def describe(self) -> str:
        if self.latitude is None:
            return f"latitude {DEFAULT_LATITUDE:g} assumed"
        elev = f", elevation {self.elevation_m:g} m" if self.elevation_m is not None else ""
        return f"latitude {self.latitude:g}{elev} ({self.source})"


def monthly_bounds(month: int, latitude: float | None, elevation_m: float | None = None) -> tuple[float, float]:
    lat = DEFAULT_LATITUDE if latitude is None else latitude
    if abs(lat) < 25:
        lo, hi = _TROPICS
    else:
        local_month = month if lat >= 0 else (month + 5) % 12 + 1
        lo, hi = _SEASONAL[_SEASON_OF_MONTH[local_month]]
        if lo is None:
            lo = next(floor for top, floor in _SUMMER_FLOOR if abs(lat) < top)
    # The upper bounds are lowland extremes: a station 2 km up is 13 °C cooler. The lower ones
    # already include summits.
    if elevation_m is not None and elevation_m > 0:
        hi = round(hi - LAPSE_RATE_C_PER_KM * elevation_m / 1000, 1)
    return lo, hi


def _share(frame: pl.DataFrame, a: str, b: str, tolerance: float) -> tuple[int, int]:
    """(rows where a > b + tolerance, rows with both)."""
    if a not in frame.columns or b not in frame.columns:
        return 0, 0
    both = frame.filter(pl.col(a).is_not_null() & pl.col(b).is_not_null())
    return both.filter(pl.col(a) > pl.col(b) + tolerance).height, both.height


def unit_problems(frame: pl.DataFrame, place: StationPlace | None = None) -> list[str]:
    """Every sign that the file's temperatures are not in the units its format says; [] if none."""
    place = place or StationPlace()
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
        where = place.describe()
        for row in monthly.iter_rows(named=True):
            lo, hi = monthly_bounds(row["month"], place.latitude, place.elevation_m)
            if not lo <= row["median"] <= hi:
                out.append(f"month {row['month']:02d}: median {row['median']:.1f} °C over {row['n']} values, outside "
                           f"the climatological [{lo:g}, {hi:g}] °C for {where} (°F read as °C, or the reverse?)")
    for a, b, tol, what in [("dew_point_c", "air_temp_c", DEW_POINT_TOLERANCE_C, "dew point above temperature"),
                            ("air_temp_min_c", "air_temp_max_c", MIN_MAX_TOLERANCE_C, "daily minimum above maximum")]:
        bad, n = _share(frame, a, b, tol)
        if n and bad / n > MAX_VIOLATION_SHARE:
            out.append(f"{what} in {bad} of {n} rows ({bad / n:.0%}): {a} and {b} in different units?")
    if {"air_temp_max_c", "air_temp_min_c"} <= set(frame.columns) and _is_daily(frame):
        spread = frame.select((pl.col("air_temp_max_c") - pl.col("air_temp_min_c")).alias("r")).drop_nulls()
        if spread.height >= MIN_DAYS and spread["r"].median() < MIN_DAILY_RANGE_C:
            out.append(f"median daily range (maximum - minimum) {spread['r'].median():.1f} °C over {spread.height} days, "
                       f"below the {MIN_DAILY_RANGE_C:g} °C of any real station: temperatures squeezed (whole °F read "
                       "as tenths of °C?)")
    return out


def _is_daily(frame: pl.DataFrame) -> bool:
    """Rows a day apart (GHCN-D, GSOD, USCRN daily01), not sub-daily maxima and minima (hourly02)."""
    steps = frame["timestamp_utc"].drop_nulls().unique().sort().diff().drop_nulls()
    return steps.len() > 0 and steps.median() >= dt.timedelta(hours=20)


def file_latitude(native: pl.DataFrame) -> float | None:
    """The station latitude a file carries (USCRN, GSOD), else None."""
    return _file_value(native, "latitude", -90, 90)


def _file_value(native: pl.DataFrame, column: str, lo: float, hi: float) -> float | None:
    if column not in native.columns:
        return None
    v = native[column].cast(pl.Float64, strict=False).drop_nulls()
    v = v.filter(v.is_between(lo, hi))
    return float(v.median()) if v.len() else None


def station_place(native: pl.DataFrame, station_id: str, metadata: pl.DataFrame | None = None) -> StationPlace:
    """The station's latitude and elevation: from its file where it carries them, else from the
    station lists (``metadata`` in ``schema.METADATA``: station_id, latitude, elevation_m ...)."""
    row = metadata.filter(pl.col("station_id") == station_id) if metadata is not None and metadata.height else None
    listed = row.row(0, named=True) if row is not None and row.height else {}
    lat, elev = file_latitude(native), _file_value(native, "elevation", -500, 9000)
    source = "from the file"
    if lat is None and listed.get("latitude") is not None:
        lat, source = float(listed["latitude"]), "from the station lists"
    if elev is None and listed.get("elevation_m") is not None:
        elev = float(listed["elevation_m"])
    return StationPlace(lat, elev, source) if lat is not None else StationPlace()
