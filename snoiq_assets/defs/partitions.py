"""Partition definitions shared across domains. Keys are chosen once: changing a format later
orphans every stored partition."""

import dagster as dg

from snoiq_assets.lib.hours import HOURLY_KEY_FORMAT, HOURLY_START

# Hourly UTC run cycles from the start of NOAA's HRRR archive (keys and start: lib/hours.py).
hourly_partitions = dg.HourlyPartitionsDefinition(
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
