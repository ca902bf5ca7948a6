"""The hrrr domain: hrrr_raw, hrrr_grid, hrrr_fields (with its hrrr_station_windows), the landing sensor and the
hourly fetch."""

import dagster as dg

from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_leads_complete, hrrr_raw
from snoiq_assets.defs.hrrr.schedules import hrrr_hourly_fetch, hrrr_hourly_job
from snoiq_assets.defs.hrrr.sensors import hrrr_sensors
from snoiq_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[hrrr_raw, hrrr_grid, hrrr_fields], asset_checks=[hrrr_leads_complete],
                          jobs=[hrrr_hourly_job],
                          schedules=[hrrr_hourly_fetch], sensors=hrrr_sensors(settings))
