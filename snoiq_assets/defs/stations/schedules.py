"""``daily_cleaning_sweep``: at 06:00 UTC, register landed station files and re-run the cleaning
of every station partition (the rules or metadata may have changed); the freshness checks then
run through their sensor. Off by default: turn it on in the UI (Automation)."""

from __future__ import annotations

import dagster as dg

from snoiq_assets.defs.partitions import station_file_partitions
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.defs.stations.assets import register_station_files
from snoiq_assets.defs.stations.sensors import STATION_ASSETS

station_cleaning_job = dg.define_asset_job(
    "station_cleaning_job",
    selection=STATION_ASSETS,
    partitions_def=station_file_partitions,
    tags={"snoiq/kind": "cleaning"},
)


@dg.schedule(
    name="daily_cleaning_sweep", cron_schedule="0 6 * * *", execution_timezone="UTC",
    job=station_cleaning_job, default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Register landed station files and re-clean every station partition once a day.",
)
def daily_cleaning_sweep(context: dg.ScheduleEvaluationContext, store: ObjectStoreResource):
    register_station_files(context.instance, store.get_store())
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for partition in context.instance.get_dynamic_partitions(station_file_partitions.name):
        yield dg.RunRequest(run_key=f"{day}:{partition}", partition_key=partition)
