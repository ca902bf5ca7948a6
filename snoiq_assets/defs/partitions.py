"""Partition definitions shared across domains. Keys are chosen once: changing a format later
orphans every stored partition."""

import dagster as dg

# Hourly UTC run cycles; no colon in the key, so it is a safe object-key segment.
HOURLY_KEY_FORMAT = "%Y-%m-%dT%H"
# The first run cycle of NOAA's HRRR archive on AWS (hrrr.20140730/conus/, 18Z; the operational
# HRRR starts 2014-09-30): every archived run has a partition. Keys are unchanged by moving it.
HOURLY_START = "2014-07-30T18"

hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=HOURLY_START, fmt=HOURLY_KEY_FORMAT, timezone="UTC"
)

# One partition per landed station file (raw/observations/<station_id>.csv).
station_file_partitions = dg.DynamicPartitionsDefinition(name="station_files")

# One partition per outcome-of-interest location (raw/outcomes/<location>.{csv,parquet}).
outcome_location_partitions = dg.DynamicPartitionsDefinition(name="outcome_locations")

def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover partitions ``first``..``last`` (assets with a single-run
    backfill policy get them all at once)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


MODEL_TYPES = ("xgboost", "lightgbm", "random_forest")
model_type_partitions = dg.StaticPartitionsDefinition(list(MODEL_TYPES))
