"""The hrrr domain: assets, checks, sensors and schedules, exposed as one `defs`."""

import dagster as dg

from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw

defs = dg.Definitions(assets=[hrrr_raw, hrrr_grid, hrrr_fields], asset_checks=[])
