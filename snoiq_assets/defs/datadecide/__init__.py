"""The datadecide domain: W&B runs/history, HF eval results, matched runs and forecasts."""

import dagster as dg

from snoiq_assets.defs.datadecide.assets import ASSETS, CHECKS

defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS)
