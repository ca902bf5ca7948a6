"""``hrrr_landing_sensor``: a new GRIB under ``raw/hrrr/`` decodes that lead of its cycle
(hrrr_fields) and joins it to the stations (grid_join_features)."""

from __future__ import annotations

import dagster as dg

from snoiq_assets.defs.automation.landing import landing_tick, no_new_files_reason, settings_sensor
from snoiq_assets.defs.hrrr.schedules import HOURLY_CHAIN
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.hours import hour_of
from snoiq_assets.lib.hrrr.leads import HRRR_SCHEDULE, LeadError
from snoiq_assets.lib.hrrr.rawkeys import LANDED_SUFFIXES, RAW_PREFIX, idx_key, partition_for_landed_key
from snoiq_assets.lib.landing import run_key_for
from snoiq_assets.settings import Settings


def hrrr_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    return [settings_sensor(settings, _hrrr_landing_tick, name="hrrr_landing_sensor", selection=HOURLY_CHAIN,
                            description="A new GRIB under `raw/hrrr/` decodes that hour (hrrr_fields) and extracts "
                                        "its features.")]


def _hrrr_landing_tick(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
    found, unsafe, scan = landing_tick(
        context, store.get_store(), RAW_PREFIX, partition_for_landed_key,
        accept=lambda key: key.endswith(LANDED_SUFFIXES),  # the .idx lands beside it; one run per GRIB
        processed_by=dg.AssetKey("grid_join_features"),
    )
    if not found:
        context.update_cursor(scan.cursor.to_json())
        return dg.SkipReason(no_new_files_reason(scan.listed, unsafe))
    requests = []
    raw = store.get_store()
    for info, (partition, forecast_hour) in found:
        try:
            HRRR_SCHEDULE.check(hour_of(partition), forecast_hour, what=info.key)
        except LeadError as exc:   # no run would accept it: quarantined with the reason, the others go on
            dest = raw.quarantine(info.key, str(exc), asset="hrrr_raw", partition=partition)
            if raw.exists(idx_key(info.key)):
                raw.quarantine(idx_key(info.key), f"companion of quarantined {info.key}: {exc}")
            context.log.error(f"hrrr_landing_sensor: {exc} -> moved to {dest}")
            continue
        selection = {"leads": [forecast_hour]}
        requests.append(dg.RunRequest(
            run_key=run_key_for(info), partition_key=partition,
            run_config={"ops": {"hrrr_raw": {"config": selection}, "hrrr_fields": {"config": selection}}},
            tags={"snoiq/landed_key": info.key, "snoiq/kind": "hrrr_decode"},
        ))
    return dg.SensorResult(run_requests=requests, cursor=scan.cursor.to_json())
