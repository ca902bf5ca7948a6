"""What every landing sensor shares (the sensors themselves live in their domain's sensors.py):
new or changed raw files start the runs that process them.

Each sensor lists its landing prefix through the ObjectStore (local folder or S3, endpoint from
Settings), keeps a compact LandingCursor (see lib/landing.py) in Dagster's cursor storage, so it
survives a daemon restart, and builds run keys from key + version token, so the same file seen
twice starts one run and a rewritten file starts a new one. Unsafe names are reported (logged and
in the tick's skip reason) and never turned into a partition or a key.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.keys import UnsafeNameError
from snoiq_assets.lib.landing import LandingCursor, run_key_for, scan_landings
from snoiq_assets.settings import Settings


def no_new_files_reason(listed: int, unsafe: list[str]) -> str:
    text = f"no new or changed files among {listed} listed"
    if unsafe:
        text += f"; skipped {len(unsafe)} name(s) that map to no partition (see the tick log): {', '.join(unsafe[:5])}"
    return text


def landing_tick(context, store, prefix: str, to_partition, accept=lambda key: True,
                 processed_by: dg.AssetKey | None = None):
    """Scan ``prefix``; return (list of (info, partition), unsafe keys, next cursor).

    ``processed_by``: the last asset a file's run writes. A file whose partition of it was
    materialised after the file last changed (by `make demo`, a UI or CI run) is already
    processed: it moves the cursor but starts no run, so switching a sensor on after the demo
    does not redo the demo's work."""
    scan = scan_landings(store.list(prefix), LandingCursor.from_json(context.cursor), accept=accept)
    found, unsafe = [], []
    for info in scan.changed:
        try:
            found.append((info, to_partition(info.key)))
        except UnsafeNameError as exc:
            unsafe.append(info.key)
            context.log.warning(f"skipping a landed file that maps to no partition: {exc}")
    if processed_by is not None and found:
        done = materialised_at(context.instance, processed_by, [_partition_key(p) for _, p in found])
        found = [(info, p) for info, p in found
                 if not (_partition_key(p) in done and done[_partition_key(p)] >= info.last_modified)]
    return found, unsafe, scan


def _partition_key(partition) -> str:
    return partition[0] if isinstance(partition, tuple) else partition


def materialised_at(instance: dg.DagsterInstance, asset_key: dg.AssetKey,
                    partition_keys: list[str]) -> dict[str, dt.datetime]:
    """When each of ``partition_keys`` of ``asset_key`` was last materialised (UTC), if ever."""
    out: dict[str, dt.datetime] = {}
    keys = sorted(set(partition_keys))
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=chunk), limit=len(chunk) * 20).records
        for record in records:   # newest first
            if record.partition_key not in out:
                out[record.partition_key] = dt.datetime.fromtimestamp(record.timestamp, dt.timezone.utc)
    return out


def landing_sensor_status(settings: Settings) -> dg.DefaultSensorStatus:
    """Running by default where data lands continuously (s3 profile); on a laptop the user
    switches them on in the UI (Automation tab)."""
    return dg.DefaultSensorStatus.RUNNING if settings.profile == "s3" else dg.DefaultSensorStatus.STOPPED


def settings_sensor(settings: Settings, evaluate, *, name: str, selection: dg.AssetSelection, description: str,
                    interval: int = 60) -> dg.SensorDefinition:
    """A sensor over ``evaluate(context, store)`` that runs by default where the settings say
    data lands continuously (``landing_sensor_status``)."""
    return dg.sensor(name=name, asset_selection=selection, minimum_interval_seconds=interval,
                     default_status=landing_sensor_status(settings), description=description)(evaluate)


def partitioned_landing_sensor(*, name: str, prefix: str, to_partition, partitions_def: dg.DynamicPartitionsDefinition,
                               selection: dg.AssetSelection, processed_by: dg.AssetKey, description: str,
                               settings: Settings, accept=lambda key: True) -> dg.SensorDefinition:
    """A sensor that adds one dynamic partition per landed file and runs ``selection`` for it."""

    @dg.sensor(name=name, asset_selection=selection, minimum_interval_seconds=60,
               default_status=landing_sensor_status(settings), description=description)
    def _sensor(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
        found, unsafe, scan = landing_tick(context, store.get_store(), prefix, to_partition, accept=accept,
                                           processed_by=processed_by)
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
