"""Partition definitions shared across domains. Keys are chosen once: changing a format later
orphans every stored partition."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg
import numpy as np

from snoiq_assets.lib.hours import HOURLY_KEY_FORMAT, HOURLY_START


class UTCHourlyPartitionsDefinition(dg.HourlyPartitionsDefinition):
    """Dagster's hourly partitions, listing every key in one vectorised step.

    Dagster lists all keys of an upstream asset read with ``AllPartitionMapping`` in each step
    that reads it (to decide whether to compute a data version over them), by walking the cron
    schedule one window at a time: 108,000 keys since the archive start cost about 2.5 s per
    step (training_table, hrrr_grid, ...). UTC hours have no DST, so the keys are plain
    arithmetic from the first and last windows Dagster computes. The definition is otherwise
    Dagster's own (equal to, and serialised as, an ``HourlyPartitionsDefinition``)."""

    def get_partition_keys(self, current_time: dt.datetime | None = None,
                           dynamic_partitions_store=None) -> Sequence[str]:
        if (self.timezone != "UTC" or self.exclusions or self.fmt != HOURLY_KEY_FORMAT
                or self.cron_schedule != "0 * * * *"):
            return super().get_partition_keys(current_time, dynamic_partitions_store)
        with dg.partition_loading_context(current_time, dynamic_partitions_store):
            first, last = self.get_first_partition_window(), self.get_last_partition_window()
        if first is None or last is None:
            return []
        hours = np.arange(np.datetime64(int(first.start.timestamp()) // 3600, "h"),
                          np.datetime64(int(last.start.timestamp()) // 3600 + 1, "h"))
        # ISO hours, "2014-07-30T18": HOURLY_KEY_FORMAT exactly.
        return np.datetime_as_string(hours, unit="h").tolist()


# Hourly UTC run cycles from the start of NOAA's HRRR archive (keys and start: lib/hours.py).
hourly_partitions = UTCHourlyPartitionsDefinition(
    start_date=HOURLY_START, fmt=HOURLY_KEY_FORMAT, timezone="UTC"
)

# One partition per landed station file (raw/observations/<station_id>.csv).
station_file_partitions = dg.DynamicPartitionsDefinition(name="station_files")

# One partition per outcome-of-interest location (raw/outcomes/<location>.{csv,parquet}).
outcome_location_partitions = dg.DynamicPartitionsDefinition(name="outcome_locations")

def every_stored_partition() -> dg.AssetIn:
    """An input over every partition of the upstream asset that has been stored; the ones never
    materialised are left out rather than failing the run (the IO manager reads
    ``allow_missing_partitions``)."""
    return dg.AssetIn(partition_mapping=dg.AllPartitionMapping(), metadata={"allow_missing_partitions": True})


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover partitions ``first``..``last`` (assets with a single-run
    backfill policy get them all at once)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}



# One partition per model spec (raw/model_specs/<spec_id>.yaml, registered by model_spec_sensor):
# training_table, trained_models, champion_model and predictions are keyed by it, so specs
# live side by side. Every model type of a spec trains in its spec's run (one run per spec:
# table, models, champion, predictions), so model type is a column, not a partition dimension.
model_spec_partitions = dg.DynamicPartitionsDefinition(name="model_specs")
