"""The clean observation schema, the rejects schema and the station-metadata schema.

``CLEAN`` is ordered; ``conform`` casts a frame to it (adding missing columns as null), so every
clean partition has exactly these columns whatever the source format. Units are in the names.

Time convention: ``timestamp_utc`` is the UTC instant the value refers to. Hourly sources give
the *end* of the observed hour (USCRN, as its readme defines; ASOS the METAR time). Daily
sources (GSOD, GHCN-Daily, USCRN daily01) give the observation date at 00:00 UTC and
``resolution`` = "daily": the day is the source's own day (local standard time for USCRN
daily01), not re-cut to UTC.
"""

from __future__ import annotations

import polars as pl

UTC_DT = pl.Datetime("us", "UTC")

IDENTITY: dict[str, pl.DataType] = {
    "station_id": pl.Utf8(),
    "timestamp_utc": UTC_DT,
    "source_format": pl.Utf8(),
    "resolution": pl.Utf8(),  # "subhourly" (e.g. 10-minute road-weather reports) | "hourly" | "daily"
    "line_no": pl.Int64(),  # 1-based line of the source file the row came from
}

# Measured variables, SI (degC stated), with their units in the name.
VARIABLES: dict[str, pl.DataType] = {
    "air_temp_c": pl.Float64(),
    "air_temp_max_c": pl.Float64(),
    "air_temp_min_c": pl.Float64(),
    "dew_point_c": pl.Float64(),
    "relative_humidity_pct": pl.Float64(),
    "precip_mm": pl.Float64(),
    "snow_depth_mm": pl.Float64(),
    "snowfall_mm": pl.Float64(),
    "wind_speed_ms": pl.Float64(),
    "wind_speed_max_ms": pl.Float64(),
    "wind_gust_ms": pl.Float64(),
    "wind_dir_deg": pl.Float64(),
    "pressure_hpa": pl.Float64(),  # sea-level pressure
    "station_pressure_hpa": pl.Float64(),
    "visibility_m": pl.Float64(),
    "solar_radiation_wm2": pl.Float64(),
    "surface_temp_c": pl.Float64(),
    "soil_moisture_5cm_m3m3": pl.Float64(),
    "soil_temp_5cm_c": pl.Float64(),
}

# Source flags, as given (null where the source has none).
FLAGS: dict[str, pl.DataType] = {
    "qc_solar_radiation": pl.Utf8(),  # USCRN: "0" good, "3" erroneous
    "qc_surface_temp": pl.Utf8(),  # USCRN
    "qc_relative_humidity": pl.Utf8(),  # USCRN
    "surface_temp_type": pl.Utf8(),  # USCRN: R raw, C corrected, U unknown
    "precip_flag": pl.Utf8(),  # GSOD PRCP attribute (A-I source/completeness letter)
    "weather_flags": pl.Utf8(),  # GSOD FRSHTT digits, GHCN-Daily WTxx codes present
    "precip_detected": pl.Boolean(),  # road-weather precipitation sensor: true = detected
}

CLEAN: dict[str, pl.DataType] = {**IDENTITY, **VARIABLES, **FLAGS}

# Which QC flag column governs which variables, and the flag values that mean "bad".
QC_FLAG_RULES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "qc_solar_radiation": (("solar_radiation_wm2",), frozenset({"3"})),
    "qc_surface_temp": (("surface_temp_c",), frozenset({"3"})),
    "qc_relative_humidity": (("relative_humidity_pct",), frozenset({"3"})),
}

REJECTS: dict[str, pl.DataType] = {
    "station_id": pl.Utf8(),  # station id, or the outcome location
    "timestamp_utc": UTC_DT,
    "line_no": pl.Int64(),
    "column": pl.Utf8(),
    "value": pl.Utf8(),  # the offending value as text (null when it could not be read)
    "rule": pl.Utf8(),  # range | spike | pavement_below_air | consistency | qc_flag | duplicate_timestamp | out_of_order | outside_period | parse
    "reason": pl.Utf8(),
    "action": pl.Utf8(),  # nulled | dropped | sorted
}

METADATA: dict[str, pl.DataType] = {
    "station_id": pl.Utf8(),
    "wban": pl.Utf8(),    # the WBAN number where the station has one
    "name": pl.Utf8(),
    "latitude": pl.Float64(),
    "longitude": pl.Float64(),
    "elevation_m": pl.Float64(),
    "network": pl.Utf8(),
    "state": pl.Utf8(),
    "begin_date": pl.Date(),
    "end_date": pl.Date(),
    "source": pl.Utf8(),  # where the row came from: uscrn_stations | gsod_file | extra
}


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType] = CLEAN) -> pl.DataFrame:
    """``df`` with exactly ``schema``'s columns, in order and cast (missing ones null)."""
    return df.select(
        [
            (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)
