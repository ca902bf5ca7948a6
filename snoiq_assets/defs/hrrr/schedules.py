"""``hrrr_hourly_fetch``: at minute 55 every hour, fetch, decode and join every lead of the
previous cycle. HRRR cycles start publishing about 50 minutes after their nominal hour, so at
HH:55 the cycle HH-1 (the last complete hourly partition) has its first leads; the leads of the
``RETRY_CYCLES`` cycles before it that have not all landed are asked for again on each tick. Off by default: a laptop should not
start fetching on its own; turn it on in the UI (Automation)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from snoiq_assets.defs.features.assets import grid_join_features
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_raw
from snoiq_assets.defs.partitions import hourly_partitions
from snoiq_assets.defs.resources import ObjectStoreResource
from snoiq_assets.lib.hours import hour_key, hour_of
from snoiq_assets.lib.hrrr.cycle import leads_to_retry
from snoiq_assets.lib.hrrr.leads import HRRR_SCHEDULE
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve

# One HRRR hour end to end: land, decode, join to the stations (features domain).
HOURLY_CHAIN = dg.AssetSelection.assets(hrrr_raw, hrrr_fields, grid_join_features)

hrrr_hourly_job = dg.define_asset_job(
    "hrrr_hourly_job",
    selection=HOURLY_CHAIN,
    partitions_def=hourly_partitions,
    tags={"snoiq/kind": "hrrr_fetch"},
)

RETRY_CYCLES = 3
"""How many earlier cycles each tick looks at for leads that had not landed yet (the archive
publishes a cycle's leads over about an hour; f48 of an extended cycle comes last)."""


@dg.schedule(job=hrrr_hourly_job, cron_schedule="55 * * * *", execution_timezone="UTC", name="hrrr_hourly_fetch",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Fetch, decode and join every lead of the HRRR cycle published in the last hour; "
                         "ask again for the leads of the previous cycles that had not landed.")
def hrrr_hourly_fetch(context: dg.ScheduleEvaluationContext, store: ObjectStoreResource):
    latest = hour_of(hour_key(context.scheduled_execution_time)) - dt.timedelta(hours=1)
    tick = f"{context.scheduled_execution_time:%Y-%m-%dT%H%M}"
    every_lead = {"leads": None}
    requests = [dg.RunRequest(partition_key=hour_key(latest), run_key=f"{hour_key(latest)}@{tick}",
                              run_config={"ops": {"hrrr_raw": {"config": every_lead},
                                                  "hrrr_fields": {"config": every_lead}}})]
    earlier = [latest - dt.timedelta(hours=h) for h in range(1, RETRY_CYCLES + 1)]
    todo = leads_to_retry(store.get_store(), earlier, HRRR_SCHEDULE.leads_for, resolve(list(DEFAULT_VARIABLES)))
    for run_time, leads in sorted(todo.items()):
        selection = {"leads": leads}
        requests.append(dg.RunRequest(
            partition_key=hour_key(run_time), run_key=f"{hour_key(run_time)}-retry@{tick}",
            run_config={"ops": {"hrrr_raw": {"config": selection}, "hrrr_fields": {"config": selection},
                                "grid_join_features": {"config": selection}}},
            tags={"snoiq/retry_leads": ",".join(f"f{fh:02d}" for fh in leads)}))
    return requests
