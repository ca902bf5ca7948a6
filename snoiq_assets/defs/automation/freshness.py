"""Freshness rules for every asset, in one table, applied to the whole code location.

One rule per asset, so the asset page shows one verdict:

- hourly-partitioned assets (``HOURLY_ASSETS``): a time-partition freshness *check*, "the
  partition of the latest cycle exists by HH+1:30 UTC", evaluated by
  ``hourly_freshness_checks_sensor``. They get no ``FreshnessPolicy``: a policy is per asset, not
  per partition (any old hour backfilled would make it pass), and it would show "Passing" beside
  a failed check.
- every other asset: a ``FreshnessPolicy`` time window, evaluated by the daemon.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

# Per group; a per-asset entry wins. Windows follow how often each input really changes:
# HRRR publishes hourly (~50 min after the cycle), station files land daily, models retrain weekly.
GROUP_POLICIES: dict[str, dg.FreshnessPolicy] = {
    "hrrr": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=2)),
    "stations": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=2), warn_window=timedelta(days=1)),
    "features": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=2)),
    "models": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7)),
    "datadecide": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=30), warn_window=timedelta(days=14)),
}
ASSET_POLICIES: dict[str, dg.FreshnessPolicy] = {
    # The grid changes only with a new HRRR version; the station list with a new station.
    "hrrr_grid": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=365)),
    "station_metadata": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=30)),
    "station_grid_index": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=365)),
    "training_table": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7)),
}
DEFAULT_POLICY = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=30))

# Every asset partitioned by hourly_partitions (test_freshness_schedules checks the list).
HOURLY_ASSETS = ["hrrr_raw", "hrrr_fields", "hrrr_station_windows", "grid_join_features", "hourly_predictions"]
# A cycle HH is published around HH:50; decoded and joined by HH+1:30 at the latest.
HOURLY_DEADLINE_CRON = "30 * * * *"


def policy_for(spec: dg.AssetSpec) -> dg.FreshnessPolicy | None:
    """The asset's policy; None for an hourly asset (its freshness is the partition check)."""
    key = spec.key.to_user_string()
    if key in HOURLY_ASSETS:
        return None
    return ASSET_POLICIES.get(key) or GROUP_POLICIES.get(spec.group_name or "", DEFAULT_POLICY)


def _with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    policy = policy_for(spec)
    return spec if policy is None else dg.apply_freshness_policy(spec, policy, overwrite_existing=False)


def apply_freshness(defs: dg.Definitions) -> dg.Definitions:
    """Every asset but the hourly ones gets its policy; one set explicitly on an asset is kept.
    (``dg.map_asset_specs`` is stable; ``Definitions.map_resolved_asset_specs`` is in preview.)"""
    return dg.Definitions(
        assets=dg.map_asset_specs(_with_policy, defs.assets or []), asset_checks=defs.asset_checks,
        jobs=defs.jobs, schedules=defs.schedules, sensors=defs.sensors, resources=defs.resources,
        executor=defs.executor, loggers=defs.loggers, metadata=defs.metadata,
    )


def hourly_freshness_checks(asset_keys: list[str]) -> list[dg.AssetChecksDefinition]:
    return list(dg.build_time_partition_freshness_checks(
        assets=[dg.AssetKey(k) for k in asset_keys], deadline_cron=HOURLY_DEADLINE_CRON, timezone="UTC",
        severity=dg.AssetCheckSeverity.WARN,
    ))
