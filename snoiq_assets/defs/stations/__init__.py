"""The stations domain: station metadata, observations (raw, clean, rejects), outcome series.

Exposes ``defs = dg.Definitions(assets=[...], asset_checks=[...])``, group "stations".
Asset keys: station_metadata, observations_raw, observations_clean, observations_rejects,
outcome_of_interest, outcome_rejects. Domain logic lives in ``snoiq_assets.lib.stations``;
``assets.register_station_files(instance, store)`` registers landed files as partitions;
``demo.seed_demo(store)`` lands the bundled samples.
"""

import dagster as dg

from snoiq_assets.defs.stations.assets import (
    observations_clean,
    observations_raw,
    outcome_of_interest,
    register_outcome_files,
    register_station_files,
    station_metadata,
)
from snoiq_assets.defs.stations.checks import ALL_CHECKS

STATION_ASSETS = [station_metadata, observations_raw, observations_clean, outcome_of_interest]

defs = dg.Definitions(assets=STATION_ASSETS, asset_checks=ALL_CHECKS)

__all__ = ["defs", "register_station_files", "register_outcome_files", "STATION_ASSETS", "ALL_CHECKS"]
