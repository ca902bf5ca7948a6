"""The features domain: station_grid_index, grid_join_features (hourly), training_table."""

import dagster as dg

from snoiq_assets.defs.features.assets import grid_join_features, station_grid_index, training_table
from snoiq_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[station_grid_index, grid_join_features, training_table])
