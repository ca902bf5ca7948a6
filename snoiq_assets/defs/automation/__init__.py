"""Automation across domains: landing sensors, schedules, freshness checks, retraining."""

import dagster as dg

from snoiq_assets.defs.automation.predictions import feature_predictions_sensor
from snoiq_assets.defs.automation.sweeps import sweep_sensor
from snoiq_assets.defs.automation.freshness import HOURLY_ASSETS, hourly_freshness_checks
from snoiq_assets.defs.automation.retraining import retrain_job, retraining_sensor, weekly_retraining
from snoiq_assets.defs.automation.schedules import (
    daily_cleaning_sweep,
    hrrr_hourly_fetch,
    hrrr_hourly_job,
    station_cleaning_job,
)
from snoiq_assets.defs.automation.sensors import LANDING_SENSORS

freshness_checks = hourly_freshness_checks(HOURLY_ASSETS)
freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=freshness_checks, name="hourly_freshness_checks_sensor", minimum_interval_seconds=300,
)

defs = dg.Definitions(
    asset_checks=freshness_checks,
    jobs=[hrrr_hourly_job, station_cleaning_job, retrain_job],
    schedules=[hrrr_hourly_fetch, daily_cleaning_sweep, weekly_retraining],
    sensors=[*LANDING_SENSORS, freshness_checks_sensor, retraining_sensor, feature_predictions_sensor,
             sweep_sensor],
)
