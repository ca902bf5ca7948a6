"""Landing sensors: new or changed raw files start the runs that process them.

Each sensor lists its landing prefix through the ObjectStore (local folder or S3, endpoint from
Settings), keeps a compact LandingCursor (see lib/landing.py) in Dagster's cursor storage, so it
survives a daemon restart, and builds run keys from key + version token, so the same file seen
twice starts one run and a rewritten file starts a new one. Unsafe names are reported (logged and
in the tick's skip reason) and never turned into a partition or a key.
"""

from __future__ import annotations

import re

import dagster as dg

from snoiq_assets.defs.partitions import HOURLY_START, outcome_location_partitions, station_file_partitions
from snoiq_assets.defs.resources import ObjectStoreResource
from snoiq_assets.lib.keys import UnsafeNameError
from snoiq_assets.lib.landing import LandingCursor, run_key_for, scan_landings
from snoiq_assets.lib.stations.rawkeys import (
    OBSERVATIONS_PREFIX,
    OUTCOMES_PREFIX,
    location_for_raw_key,
    partition_for_raw_key,
)

HRRR_PREFIX = "raw/hrrr/"
# raw/hrrr/<YYYYMMDD>/hrrr.t<HH>z.wrfsfcf<FF>.grib2 (or .grib2.gz, which hrrr_raw decompresses)
# — the only GRIB names the sensor accepts.
HRRR_KEY = re.compile(r"raw/hrrr/(\d{4})(\d{2})(\d{2})/hrrr\.t(\d{2})z\.wrfsfcf(\d{2})\.grib2(?:\.gz)?")

STATION_ASSETS = dg.AssetSelection.assets("observations_raw", "observations_clean", "observations_rejects")
OUTCOME_ASSETS = dg.AssetSelection.assets("outcome_of_interest", "outcome_rejects")
HRRR_ASSETS = dg.AssetSelection.assets("hrrr_raw", "hrrr_fields", "grid_join_features")


def no_new_files_reason(listed: int, unsafe: list[str]) -> str:
    text = f"no new or changed files among {listed} listed"
    if unsafe:
        text += f"; skipped {len(unsafe)} name(s) that map to no partition (see the tick log): {', '.join(unsafe[:5])}"
    return text


def landing_tick(context, store, prefix: str, to_partition, accept=lambda key: True):
    """Scan ``prefix``; return (list of (info, partition), unsafe keys, next cursor)."""
    scan = scan_landings(store.list(prefix), LandingCursor.from_json(context.cursor), accept=accept)
    found, unsafe = [], []
    for info in scan.changed:
        try:
            found.append((info, to_partition(info.key)))
        except UnsafeNameError as exc:
            unsafe.append(info.key)
            context.log.warning(f"skipping a landed file that maps to no partition: {exc}")
    return found, unsafe, scan


def default_sensor_status() -> dg.DefaultSensorStatus:
    from snoiq_assets.settings import Settings

    # Running by default where data lands continuously (s3 profile); on a laptop the user
    # switches them on in the UI (Automation tab).
    return dg.DefaultSensorStatus.RUNNING if Settings.from_env().profile == "s3" else dg.DefaultSensorStatus.STOPPED


def partitioned_landing_sensor(*, name: str, prefix: str, to_partition, partitions_def: dg.DynamicPartitionsDefinition,
                               selection: dg.AssetSelection, description: str, accept=lambda key: True):
    """A sensor that adds one dynamic partition per landed file and runs ``selection`` for it."""

    @dg.sensor(name=name, asset_selection=selection, minimum_interval_seconds=60,
               default_status=default_sensor_status(), description=description)
    def _sensor(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
        found, unsafe, scan = landing_tick(context, store.get_store(), prefix, to_partition, accept=accept)
        if not found:
            context.update_cursor(scan.cursor.to_json())
            return dg.SkipReason(no_new_files_reason(scan.listed, unsafe))
        existing = set(context.instance.get_dynamic_partitions(partitions_def.name))
        new_partitions = sorted({p for _, p in found} - existing)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(run_key=run_key_for(info), partition_key=partition,
                              tags={"snoiq/landed_key": info.key, "snoiq/kind": "cleaning"})
                for info, partition in found
            ],
            dynamic_partitions_requests=[partitions_def.build_add_request(new_partitions)] if new_partitions else [],
            cursor=scan.cursor.to_json(),
        )

    return _sensor


station_file_landing_sensor = partitioned_landing_sensor(
    name="station_file_landing_sensor", prefix=OBSERVATIONS_PREFIX, to_partition=partition_for_raw_key,
    partitions_def=station_file_partitions, selection=STATION_ASSETS,
    description="A new or changed raw/observations/<station_id>.csv|txt adds its partition and cleans it.",
)

outcome_landing_sensor = partitioned_landing_sensor(
    name="outcome_landing_sensor", prefix=OUTCOMES_PREFIX, to_partition=location_for_raw_key,
    partitions_def=outcome_location_partitions, selection=OUTCOME_ASSETS,
    description="A new or changed raw/outcomes/<location>.csv|parquet adds its partition and validates it.",
)


def hrrr_partition_for_key(key: str) -> tuple[str, int]:
    """``raw/hrrr/20201214/hrrr.t00z.wrfsfcf12.grib2`` -> (``2020-12-14T00``, 12)."""
    match = HRRR_KEY.fullmatch(key)
    if not match:
        raise UnsafeNameError(f"{key!r} is not raw/hrrr/<YYYYMMDD>/hrrr.t<HH>z.wrfsfcf<FF>.grib2")
    y, m, d, hh, ff = match.groups()
    partition = f"{y}-{m}-{d}T{hh}"
    if partition < HOURLY_START:   # the key format sorts as time
        raise UnsafeNameError(f"{key!r} is for run {partition}, before the first hourly partition {HOURLY_START} "
                              "(the start of NOAA's HRRR archive)")
    return partition, int(ff)


@dg.sensor(
    name="hrrr_landing_sensor",
    asset_selection=HRRR_ASSETS,
    minimum_interval_seconds=60,
    default_status=default_sensor_status(),
    description="A new GRIB under raw/hrrr/ decodes that hour (hrrr_fields) and extracts its features.",
)
def hrrr_landing_sensor(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
    found, unsafe, scan = landing_tick(
        context, store.get_store(), HRRR_PREFIX, hrrr_partition_for_key,
        accept=lambda key: key.endswith((".grib2", ".grib2.gz")),  # the .idx lands beside it; one run per GRIB
    )
    if not found:
        context.update_cursor(scan.cursor.to_json())
        return dg.SkipReason(no_new_files_reason(scan.listed, unsafe))
    requests = []
    for info, (partition, forecast_hour) in found:
        selection = {"forecast_hour": forecast_hour}
        requests.append(dg.RunRequest(
            run_key=run_key_for(info), partition_key=partition,
            run_config={"ops": {"hrrr_raw": {"config": selection}, "hrrr_fields": {"config": selection}}},
            tags={"snoiq/landed_key": info.key, "snoiq/kind": "hrrr_decode"},
        ))
    return dg.SensorResult(run_requests=requests, cursor=scan.cursor.to_json())


LANDING_SENSORS = [station_file_landing_sensor, outcome_landing_sensor, hrrr_landing_sensor]
