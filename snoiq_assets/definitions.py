"""The code location: every domain's definitions plus the resources for the active profile."""

import dagster as dg

from snoiq_assets.defs import automation, datadecide, features, hrrr, models, stations
from snoiq_assets.defs.automation.freshness import apply_freshness
from snoiq_assets.defs.resources import build_resources
from snoiq_assets.settings import Settings

settings = Settings.from_env()

defs = apply_freshness(dg.Definitions.merge(
    hrrr.defs,
    stations.defs,
    features.defs,
    models.defs,
    datadecide.defs,
    automation.defs,
    dg.Definitions(resources=build_resources(settings)),
))
