"""Land the bundled real station files in the raw zone, as a user would.

``seed_demo(store)`` writes:

- ``raw/observations/<station_id>.<csv|txt>`` for every station sample in data/sample: USCRN
  hourly02 CO Nunn (94074.txt), USCRN daily01 AK Aleknagik (23583.txt), GSOD Portland
  (72698024229.csv), GHCN-Daily Seattle-Tacoma (USW00024233.csv), IEM ASOS CLE/GRB/MSP/ORD;
- ``raw/metadata/stations.tsv`` and ``raw/metadata/station_metadata_extra.csv``;
- one outcome file ``raw/outcomes/seattle_tacoma.csv``: the daily snow depth (mm) of the real
  GHCN-Daily Seattle-Tacoma file (SNWD column, already mm), days with a missing SNWD left
  empty, nothing invented. It is derived at seed time by our own parser from the real file.

Returns the station partition keys.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from snoiq_assets.lib.stations import parsers
from snoiq_assets.lib.stations.rawkeys import (EXTRA_METADATA_KEY, OBSERVATIONS_PREFIX, OUTCOMES_PREFIX, RWIS_SITES_KEY,
                                             USCRN_STATIONS_KEY)
from snoiq_assets.lib.storage import ObjectStore

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"

STATION_FILES = {
    "94074.txt": "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt",
    "23583.txt": "uscrn/CRND0103-2020-AK_Aleknagik_1_NNE.txt",
    "72698024229.csv": "station_obs/gsod_72698024229_KPDX_2016-2024.csv",
    "USW00024233.csv": "station_obs/ghcnd_USW00024233_BicycleWeather_2012-2015.csv",
    "CLE.csv": "station_obs/iem_asos_CLE_2010-10.csv",
    "GRB.csv": "station_obs/iem_asos_GRB_2010-10.csv",
    "MSP.csv": "station_obs/iem_asos_MSP_2010-10.csv",
    "ORD.csv": "station_obs/iem_asos_ORD_2010-10.csv",
    **{f"{site}.csv": f"road_weather/rwis_obs_{site}_2018-12_2019-03.csv"
       for site in ("fort_wayne", "gas_city", "jeffersonville", "scottsburg")},
}
# HRRR point forecasts at the road-weather stations (another tool's extraction, as landed).
POINT_FORECAST_FILES = {f"raw/point_forecasts/indot_rwis/{site}.csv.gz": f"road_weather/hrrr_points_{site}_2018-12_2019-03.csv.gz"
                        for site in ("fort_wayne", "gas_city", "jeffersonville", "scottsburg")}
OUTCOME_LOCATION = "seattle_tacoma"


def outcome_csv(sample_dir: Path = SAMPLE) -> bytes:
    src = sample_dir / STATION_FILES["USW00024233.csv"]
    fmt, native = parsers.parse_native(src.read_bytes(), str(src))
    clean = parsers.to_clean(native, fmt, "USW00024233")
    out = clean.select(pl.col("timestamp_utc").dt.date().alias("date"), "snow_depth_mm")
    return out.write_csv().encode()


def seed_demo(store: ObjectStore, sample_dir: Path = SAMPLE) -> list[str]:
    for name, rel in STATION_FILES.items():
        store.put_file(f"{OBSERVATIONS_PREFIX}{name}", sample_dir / rel)
    store.put_file(USCRN_STATIONS_KEY, sample_dir / "uscrn" / "stations.tsv")
    store.put_file(EXTRA_METADATA_KEY, sample_dir / "station_metadata_extra.csv")
    store.put_file(RWIS_SITES_KEY, sample_dir / "road_weather" / "rwis_sites.csv")
    for key, rel in POINT_FORECAST_FILES.items():
        store.put_file(key, sample_dir / rel)
    store.put(f"{OUTCOMES_PREFIX}{OUTCOME_LOCATION}.csv", outcome_csv(sample_dir))
    return sorted(name.rsplit(".", 1)[0] for name in STATION_FILES)
