"""Station landing sensors: a new or changed ``raw/observations/<station_id>.csv|txt`` adds its
partition and cleans it; a ``raw/outcomes/<location>.*`` validates it."""

from __future__ import annotations

import dagster as dg

from snoiq_assets.defs.automation.landing import partitioned_landing_sensor
from snoiq_assets.defs.partitions import outcome_location_partitions, station_file_partitions
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, outcome_of_interest
from snoiq_assets.settings import Settings
from snoiq_assets.lib.stations.rawkeys import (
    OBSERVATIONS_PREFIX,
    OUTCOMES_PREFIX,
    location_for_raw_key,
    partition_for_raw_key,
)

STATION_ASSETS = dg.AssetSelection.assets(observations_raw, observations_clean)
OUTCOME_ASSETS = dg.AssetSelection.assets(outcome_of_interest)

def station_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    return [
        partitioned_landing_sensor(
            name="station_file_landing_sensor", prefix=OBSERVATIONS_PREFIX, to_partition=partition_for_raw_key,
            partitions_def=station_file_partitions, selection=STATION_ASSETS, settings=settings,
            processed_by=dg.AssetKey("observations_clean"),
            description="A new or changed `raw/observations/<station_id>.csv|txt` adds its partition and cleans it.",
        ),

        partitioned_landing_sensor(
            name="outcome_landing_sensor", prefix=OUTCOMES_PREFIX, to_partition=location_for_raw_key,
            partitions_def=outcome_location_partitions, selection=OUTCOME_ASSETS, settings=settings,
            processed_by=dg.AssetKey("outcome_of_interest"),
            description="A new or changed `raw/outcomes/<location>.csv|parquet` adds its partition and validates it.",
        ),
    ]
