"""What is truly cross-domain: the freshness table applied to every asset, the hourly
freshness checks and their sensor, and the helpers every landing sensor shares (landing.py).
Each domain's own sensors and schedules live in defs/<domain>/{sensors,schedules}.py."""

import dagster as dg

from snoiq_assets.defs.automation.freshness import HOURLY_ASSETS, hourly_freshness_checks
from snoiq_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    checks = hourly_freshness_checks(HOURLY_ASSETS)
    sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=checks, name="hourly_freshness_checks_sensor", minimum_interval_seconds=300,
    )
    return dg.Definitions(asset_checks=checks, sensors=[sensor])
