"""The code location: every domain's definitions plus the resources, for one ``Settings``.

Assembly idiom (one, explicit): each domain package under defs/ exposes
``build_defs(settings) -> dg.Definitions`` with its assets, checks, jobs, sensors and schedules;
``build_definitions`` merges them with the resources and applies the freshness table. The
settings are read from the environment once, here, and handed down.
"""

import dagster as dg

from snoiq_assets.defs import automation, datadecide, features, hrrr, models, stations
from snoiq_assets.defs.automation.freshness import apply_freshness
from snoiq_assets.defs.executors import build_executor
from snoiq_assets.defs.resources import build_resources
from snoiq_assets.settings import Settings

DOMAINS = (hrrr, stations, features, models, datadecide, automation)


def build_definitions(settings: Settings) -> dg.Definitions:
    return apply_freshness(dg.Definitions.merge(
        *(domain.build_defs(settings) for domain in DOMAINS),
        dg.Definitions(resources=build_resources(settings), executor=build_executor(settings)),
    ))


defs = build_definitions(Settings.from_env())
