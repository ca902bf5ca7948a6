"""The stations domain: station metadata, observations (raw, clean, rejects), outcome series.

``build_defs(settings)`` gives its assets, checks, sensors and schedules, group "stations".
Asset keys: station_metadata, observations_raw, observations_clean, observations_rejects,
outcome_of_interest, outcome_rejects. Domain logic lives in ``snoiq_assets.lib.stations``;
``assets.register_station_files(instance, store)`` registers landed files as partitions;
``demo.seed_demo(store)`` lands the bundled samples.
"""

import dagster as dg

from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, outcome_of_interest, station_metadata
from snoiq_assets.defs.stations.checks import ALL_CHECKS
from snoiq_assets.defs.stations.schedules import daily_cleaning_sweep, station_cleaning_job
from snoiq_assets.defs.stations.sensors import station_sensors
from snoiq_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[station_metadata, observations_raw, observations_clean, outcome_of_interest],
                          asset_checks=ALL_CHECKS, jobs=[station_cleaning_job], schedules=[daily_cleaning_sweep],
                          sensors=station_sensors(settings))
