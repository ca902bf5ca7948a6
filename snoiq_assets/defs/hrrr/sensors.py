"""``hrrr_landing_sensor``: a new GRIB under ``raw/hrrr/`` decodes that hour (hrrr_fields) and
joins it to the stations (grid_join_features)."""

from __future__ import annotations

import dagster as dg

from snoiq_assets.defs.automation.landing import landing_tick, no_new_files_reason, settings_sensor
from snoiq_assets.defs.hrrr.schedules import HOURLY_CHAIN
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.hrrr.rawkeys import LANDED_SUFFIXES, RAW_PREFIX, partition_for_landed_key
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
    for info, (partition, forecast_hour) in found:
        selection = {"forecast_hour": forecast_hour}
        requests.append(dg.RunRequest(
            run_key=run_key_for(info), partition_key=partition,
            run_config={"ops": {"hrrr_raw": {"config": selection}, "hrrr_fields": {"config": selection}}},
            tags={"snoiq/landed_key": info.key, "snoiq/kind": "hrrr_decode"},
        ))
    return dg.SensorResult(run_requests=requests, cursor=scan.cursor.to_json())
