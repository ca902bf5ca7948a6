"""Tests for the features domain.

Shared helpers for the grid feature tests (cached per process: the real HRRR grid and its
tree take a few seconds to build).
"""

from __future__ import annotations

import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REAL_GRIB = REPO / "data" / "sample" / "hrrr" / "subset_20201214_hrrr.t00z.wrfsfcf12.grib2"
USCRN_STATIONS = REPO / "data" / "sample" / "uscrn" / "stations.tsv"


@functools.lru_cache(maxsize=1)
def real_grid():
    """GridDefinition of the real HRRR subset (1059 x 1799 Lambert)."""
    import pyproj  # noqa: F401  (before eccodes)

    from snoiq_assets.lib.hrrr.grid import grid_from_grib

    return grid_from_grib(REAL_GRIB)


@functools.lru_cache(maxsize=1)
def real_locator():
    from snoiq_assets.lib.features.grid_index import GridLocator
    from snoiq_assets.lib.hrrr.grid import earth_of

    g = real_grid()
    return GridLocator(g.lats, g.lons, earth_of(g.projection))


def uscrn_stations():
    """The 250 real USCRN stations as (station_id, latitude, longitude, state)."""
    import polars as pl

    raw = pl.read_csv(USCRN_STATIONS, separator="\t", infer_schema=False)
    return raw.select(
        pl.col("STATION_ID").alias("station_id"),
        pl.col("LATITUDE").cast(pl.Float64).alias("latitude"),
        pl.col("LONGITUDE").cast(pl.Float64).alias("longitude"),
        pl.col("STATE").alias("state"),
    )
