"""``feature_predictions_sensor``: each new grid_join_features partition gets the hourly
champions' predictions (``hourly_predictions`` for the same hours).

It reads grid_join_features materialisations from the event log after its cursor (a storage
id), so a single-run backfill of 48 hours is seen as 48 partitions and requested as one
single-run range, not 48 runs. Started without a cursor it begins at the newest
materialisation: history is predicted by a backfill from the UI, not by switching a sensor on.
With no hourly champion it only moves its cursor (and says so).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from snoiq_assets.defs.automation.sensors import default_sensor_status
from snoiq_assets.defs.models.assets import hourly_champions
from snoiq_assets.defs.partitions import HOURLY_KEY_FORMAT, range_tags
from snoiq_assets.defs.resources import ObjectStoreResource

GRID_JOIN = dg.AssetKey("grid_join_features")
PREDICTIONS = dg.AssetKey("hourly_predictions")
BATCH = 5000  # materialisation records read per tick; the rest is read on the next tick


def contiguous_ranges(partition_keys: list[str]) -> list[tuple[str, str]]:
    """Sorted hourly keys grouped into runs of consecutive hours: [(first, last), ...]."""
    hours = sorted({dt.datetime.strptime(k, HOURLY_KEY_FORMAT) for k in partition_keys})
    ranges: list[list[dt.datetime]] = []
    for h in hours:
        if ranges and h - ranges[-1][1] == dt.timedelta(hours=1):
            ranges[-1][1] = h
        else:
            ranges.append([h, h])
    return [(a.strftime(HOURLY_KEY_FORMAT), b.strftime(HOURLY_KEY_FORMAT)) for a, b in ranges]


@dg.sensor(
    name="feature_predictions_sensor",
    asset_selection=dg.AssetSelection.assets(PREDICTIONS),
    minimum_interval_seconds=60,
    default_status=default_sensor_status(),
    description="New grid_join_features partitions -> hourly_predictions for the same hours (one run per "
                "contiguous range), when an hourly champion exists.",
)
def feature_predictions_sensor(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
    instance = context.instance
    if context.cursor is None:
        latest = instance.fetch_materializations(GRID_JOIN, limit=1)
        return dg.SensorResult(skip_reason="started: predicting grid_join_features partitions materialised from now on "
                                           "(backfill hourly_predictions for earlier hours)", cursor=latest.cursor or "")
    result = instance.fetch_materializations(GRID_JOIN, limit=BATCH, cursor=context.cursor or None, ascending=True)
    cursor = result.cursor or context.cursor
    partitions = sorted({r.partition_key for r in result.records if r.partition_key})
    if not partitions:
        return dg.SensorResult(skip_reason="no new grid_join_features partitions", cursor=cursor)
    if not hourly_champions(store.get_store()):
        return dg.SensorResult(skip_reason=f"{len(partitions)} new grid_join_features partition(s), but no hourly "
                                           "champion to predict with yet", cursor=cursor)
    requests = []
    for first, last in contiguous_ranges(partitions):
        run_key = f"predict-{first}-{last}-{cursor}"
        if first == last:
            requests.append(dg.RunRequest(partition_key=first, run_key=run_key))
        else:
            requests.append(dg.RunRequest(run_key=run_key, tags=range_tags(first, last)))
    return dg.SensorResult(run_requests=requests, cursor=cursor)
