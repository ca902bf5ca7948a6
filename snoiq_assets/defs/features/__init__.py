"""The features domain: station_grid_index, grid_join_features (hourly), training_table."""

import dagster as dg

from snoiq_assets.defs.features.grid import grid_join_features, station_grid_index
from snoiq_assets.defs.features.training import training_table

defs = dg.Definitions(assets=[station_grid_index, grid_join_features, training_table])
