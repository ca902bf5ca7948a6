"""Read the real GSOD Portland file into the observations_clean contract (SI units, nulls).

A small reader for these tests only, so the models tests do not depend on the stations
parser while it is being written; it follows the same contract (station_id, timestamp_utc UTC,
resolution, SI variables) and the GSOD missing codes (999.9, 99.99, 9999.9).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

GSOD = Path(__file__).resolve().parents[2] / "data" / "sample" / "station_obs" / "gsod_72698024229_KPDX_2016-2024.csv"
STATION = "72698024229"


def _num(col: str, missing: float) -> pl.Expr:
    v = pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(v >= missing - 1e-9).then(None).otherwise(v)


def gsod_clean(path: Path = GSOD) -> pl.DataFrame:
    raw = pl.read_csv(path, infer_schema=False)
    f_to_c = lambda e: (e - 32.0) * 5.0 / 9.0  # noqa: E731
    knots = 0.514444
    return raw.select(
        pl.col("STATION").alias("station_id"),
        pl.col("DATE").str.to_date().cast(pl.Datetime("us", "UTC")).alias("timestamp_utc"),
        pl.lit("daily").alias("resolution"),
        f_to_c(_num("TEMP", 9999.9)).alias("air_temp_c"),
        f_to_c(_num("MAX", 9999.9)).alias("air_temp_max_c"),
        f_to_c(_num("MIN", 9999.9)).alias("air_temp_min_c"),
        f_to_c(_num("DEWP", 9999.9)).alias("dew_point_c"),
        (_num("PRCP", 99.99) * 25.4).alias("precip_mm"),
        (_num("SNDP", 999.9) * 25.4).alias("snow_depth_mm"),
        (_num("WDSP", 999.9) * knots).alias("wind_speed_ms"),
        (_num("MXSPD", 999.9) * knots).alias("wind_speed_max_ms"),
        _num("SLP", 9999.9).alias("pressure_hpa"),
        (_num("VISIB", 999.9) * 1609.344).alias("visibility_m"),
    )
