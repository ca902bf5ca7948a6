"""Dagster wiring. Importing it (the code location, the demo, tests, `dg`) first silences, in
this one place, Dagster's notices about the few non-stable APIs the project relies on on
purpose, where Dagster 1.13 has no stable equivalent:

- ``backfill_policy=`` on ``@asset`` (beta): single-run backfills of hourly partitions;
- ``data_version=`` on ``Output`` (beta): the index and training table report their own data
  version (a hash of what they were built from), so downstream staleness follows the data;
- ``partitions_def=`` on ``@asset_check`` (preview): per-partition checks of station files;
- ``build_time_partition_freshness_checks`` / ``build_sensor_for_freshness_checks``
  (superseded by ``FreshnessPolicy``, which is per asset, not per partition): the hourly
  assets' freshness (see automation/freshness.py).

Anything else Dagster warns about still shows.
"""

import warnings

for _pattern in (
    r"Parameter `backfill_policy` of function `asset` is currently in beta",
    r"Parameter `data_version` of initializer `Output.__init__` is currently in beta",
    r"Specifying a partitions_def on an AssetCheckSpec is currently in preview",
    r"Function `build_time_partition_freshness_checks` is superseded",
    r"Function `build_sensor_for_freshness_checks` is superseded",
):
    warnings.filterwarnings("ignore", message=_pattern)
