"""The code location the sensor crash test loads: the stations domain (its landing sensors, the
assets they target) and the resources, from the environment; like the real one, smaller to load."""

import dagster as dg

from snoiq_assets.defs import stations
from snoiq_assets.defs.resources import build_resources
from snoiq_assets.settings import Settings

settings = Settings.from_env()
defs = dg.Definitions.merge(stations.build_defs(settings), dg.Definitions(resources=build_resources(settings)))
