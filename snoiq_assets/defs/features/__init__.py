"""The features domain: assets, checks, sensors and schedules, exposed as one `defs`."""

import dagster as dg

from snoiq_assets.defs.features.grid import grid_join_features, station_grid_index

defs = dg.Definitions(assets=[station_grid_index, grid_join_features])
