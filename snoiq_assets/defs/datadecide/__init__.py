"""The datadecide domain: W&B runs/history, HF eval results, matched runs and forecasts."""

import dagster as dg

from snoiq_assets.defs.datadecide.assets import ASSETS, CHECKS
from snoiq_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=ASSETS, asset_checks=CHECKS)
