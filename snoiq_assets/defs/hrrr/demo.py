"""Seed the raw zone with bundled HRRR files so the demo can materialise hrrr_grid and hrrr_fields.

- 2020-12-14T00 f12: the real Herbie subset (APCP only), as bundled.
- 2023-01-01T00..T02 f00: ten snow-work variables on the real HRRR grid, written now with
  ecCodes by cloning the real APCP message (nothing big is committed). These hours overlap the
  bundled USCRN CO Nunn 7 NNE file.
- 2023-01-01T03..2023-01-03T00 f00 (``HOURLY_MODEL_PARTITIONS``, demo only): with T01 and T02
  they cover the whole bundled USCRN Nunn file, 48 hours, for the hourly grid-join model; three
  variables, CCSDS-packed so that 46 files take seconds to write.
Each file gets its own wgrib2-style .idx. ``DEMO_RUN_CONFIG[partition]`` is the run config that
materialises that partition (the real subset needs lead 12 and only APCP).
"""

import datetime as dt
import tempfile
from pathlib import Path

from snoiq_assets.lib.hours import hour_key, hour_of
from snoiq_assets.lib.hrrr.decode import idx_text, scan_grib
from snoiq_assets.lib.hrrr.rawkeys import idx_key, landing_key
from snoiq_assets.lib.hrrr.synth import REAL_SUBSET, write_hrrr_hour
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES
from snoiq_assets.lib.storage import ObjectStore

UTC = dt.timezone.utc
REAL_PARTITION = "2020-12-14T00"
SYNTH_PARTITIONS = ("2023-01-01T00", "2023-01-01T01", "2023-01-01T02")
HOURLY_MODEL_PARTITIONS = tuple(hour_key(dt.datetime(2023, 1, 1, 3) + dt.timedelta(hours=h)) for h in range(46))
HOURLY_MODEL_VARIABLES = ("tmp_2m_k", "dpt_2m_k", "apcp_kg_m2")
HOURLY_MODEL_RUN_CONFIG = {"ops": {name: {"config": {"leads": [0], "variables": list(HOURLY_MODEL_VARIABLES)}}
                                   for name in ("hrrr_raw", "hrrr_fields")}}


def _selection(forecast_hour: int, variables) -> dict:
    return {"leads": [forecast_hour], "variables": list(variables)}


DEMO_RUN_CONFIG: dict[str, dict] = {
    REAL_PARTITION: {"ops": {name: {"config": _selection(12, ["apcp_kg_m2"])} for name in ("hrrr_raw", "hrrr_fields")}},
    **{pk: {"ops": {name: {"config": _selection(0, DEFAULT_VARIABLES)} for name in ("hrrr_raw", "hrrr_fields")}}
       for pk in SYNTH_PARTITIONS},
}


def _land(store: ObjectStore, key: str, path: Path) -> None:
    store.put_file(key, path)
    store.put(idx_key(key), idx_text(scan_grib(path, key)).encode())


def seed_demo(store: ObjectStore, synth_partitions=SYNTH_PARTITIONS) -> list[str]:
    """Land the demo GRIBs (+ .idx) under raw/hrrr/ and return the partition keys seeded."""
    real_run = dt.datetime(2020, 12, 14, 0, tzinfo=UTC)
    _land(store, landing_key(real_run, 12), REAL_SUBSET)
    return [REAL_PARTITION, *seed_synthetic_hours(store, synth_partitions)]


def seed_synthetic_hours(store: ObjectStore, partitions, columns=None, packing: str | None = None) -> list[str]:
    """Land one f00 file per hourly partition key, written with ecCodes on the real HRRR grid."""
    seeded = []
    with tempfile.TemporaryDirectory(prefix="snoiq-hrrr-demo-") as tmp:
        for pk in partitions:
            run = hour_of(pk)
            path = write_hrrr_hour(Path(tmp) / f"{pk}.grib2", run, 0, columns=columns, packing=packing)
            _land(store, landing_key(run, 0), path)
            path.unlink()
            seeded.append(pk)
    return seeded
