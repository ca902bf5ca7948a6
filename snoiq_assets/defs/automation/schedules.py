"""Schedules. All are off by default: a laptop should not start fetching or training on its own.
Turn them on in the UI (Automation) or set them RUNNING in the s3 deployment.

- ``hrrr_hourly_fetch``: at minute 55 every hour, fetch and decode the previous cycle. HRRR
  cycles are published about 50 minutes after their nominal hour, so at HH:55 the cycle HH-1
  (the last complete hourly partition) is reliably there.
- ``daily_cleaning_sweep``: at 06:00 UTC, re-register landed station/outcome files and re-run the
  cleaning of every station partition (the rules or metadata may have changed), then the
  freshness checks run through their sensor.
- ``weekly_retraining``: Mondays 03:00 UTC, the retraining job (training table, models,
  champion, predictions).
"""

from __future__ import annotations

import dagster as dg

from snoiq_assets.defs.partitions import hourly_partitions, station_file_partitions
from snoiq_assets.defs.resources import ObjectStoreResource

hrrr_hourly_job = dg.define_asset_job(
    "hrrr_hourly_job",
    selection=dg.AssetSelection.assets("hrrr_raw", "hrrr_fields", "grid_join_features"),
    partitions_def=hourly_partitions,
    tags={"snoiq/kind": "hrrr_fetch"},
)

hrrr_hourly_fetch = dg.build_schedule_from_partitioned_job(
    hrrr_hourly_job, name="hrrr_hourly_fetch", minute_of_hour=55,
    description="Fetch, decode and join the HRRR cycle published in the last hour.",
)

station_cleaning_job = dg.define_asset_job(
    "station_cleaning_job",
    selection=dg.AssetSelection.assets("observations_raw", "observations_clean", "observations_rejects"),
    partitions_def=station_file_partitions,
    tags={"snoiq/kind": "cleaning"},
)


@dg.schedule(
    name="daily_cleaning_sweep", cron_schedule="0 6 * * *", execution_timezone="UTC",
    job=station_cleaning_job, default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Register landed station files and re-clean every station partition once a day.",
)
def daily_cleaning_sweep(context: dg.ScheduleEvaluationContext, store: ObjectStoreResource):
    from snoiq_assets.defs.stations.assets import register_station_files

    register_station_files(context.instance, store.get_store())
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for partition in context.instance.get_dynamic_partitions(station_file_partitions.name):
        yield dg.RunRequest(run_key=f"{day}:{partition}", partition_key=partition)
