"""The road-weather case: INDOT road-weather stations and HRRR point forecasts at them.

``data/sample/road_weather/`` holds, for four Indiana stations, HRRR point forecasts for every
hourly cycle of December 2018 to March 2019 at leads f00-f18 and the stations' 10-minute
observations (see ``data/sample/SOURCES.md``). ``read_case`` parses both with the project's own
parsers (``parsers.parse_native`` + ``validate`` for the observations,
``point_forecasts.parse_point_forecasts`` for the forecasts); ``SPECS`` are the two forecast
specs the case answers: 2 m air temperature (raw HRRR 2 m temperature as the NWP baseline) and
pavement temperature (HRRR surface temperature as its baseline), hourly, leads 1-18, trained on
December-February (rolling-origin folds inside it), tested on March.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import polars as pl

from snoiq_assets.lib.features.point_forecasts import parse_point_forecasts
from snoiq_assets.lib.stations import metadata, parsers, validate

SPLIT = dt.date(2019, 3, 1)
LEADS = tuple(range(1, 19))
SPECS = {
    "rwis_air_temp": {"target": "air_temp_c", "leads": LEADS, "split_date": SPLIT},
    "rwis_pavement_temp": {"target": "surface_temp_c", "leads": LEADS, "split_date": SPLIT},
}


def read_case(directory: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(point-forecast rows of every site, clean observations of every site, site metadata)."""
    directory = Path(directory)
    sites = metadata.from_rwis_sites((directory / "rwis_sites.csv").read_bytes(), "rwis_sites.csv")
    forecasts, observations = [], []
    for site in sites["station_id"].to_list():
        fc_file = next(directory.glob(f"hrrr_points_{site}_*.csv.gz"))
        rows, _rejects, _info = parse_point_forecasts(gzip.decompress(fc_file.read_bytes()), fc_file.name)
        forecasts.append(rows)
        obs_file = next(directory.glob(f"rwis_obs_{site}_*.csv"))
        fmt, native = parsers.parse_native(obs_file.read_bytes(), obs_file.name)
        clean, _rejects = validate.validate(parsers.to_clean(native, fmt, site))
        observations.append(clean)
    return pl.concat(forecasts, how="diagonal_relaxed"), pl.concat(observations), sites
