"""``hrrr_hourly_fetch``: at minute 55 every hour, fetch, decode and join the previous cycle.
HRRR cycles are published about 50 minutes after their nominal hour, so at HH:55 the cycle HH-1
(the last complete hourly partition) is reliably there. Off by default: a laptop should not
start fetching on its own; turn it on in the UI (Automation)."""

from __future__ import annotations

import dagster as dg

from snoiq_assets.defs.features.assets import grid_join_features
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_raw
from snoiq_assets.defs.partitions import hourly_partitions

# One HRRR hour end to end: land, decode, join to the stations (features domain).
HOURLY_CHAIN = dg.AssetSelection.assets(hrrr_raw, hrrr_fields, grid_join_features)

hrrr_hourly_job = dg.define_asset_job(
    "hrrr_hourly_job",
    selection=HOURLY_CHAIN,
    partitions_def=hourly_partitions,
    tags={"snoiq/kind": "hrrr_fetch"},
)

hrrr_hourly_fetch = dg.build_schedule_from_partitioned_job(
    hrrr_hourly_job, name="hrrr_hourly_fetch", minute_of_hour=55,
    description="Fetch, decode and join the HRRR cycle published in the last hour.",
)
