"""Freshness rules for every asset, in one table, applied to the whole code location.

``FreshnessPolicy`` (Dagster 1.12+) is per asset, not per partition: for the hourly assets we add
time-partition freshness checks (the latest cycle's partition must exist by its deadline) and
the sensor that evaluates them.
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
    # Follows grid_join_features hour by hour (feature_predictions_sensor).
    "hourly_predictions": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=2)),
}
DEFAULT_POLICY = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=30))

HOURLY_ASSETS = ["hrrr_fields", "grid_join_features"]
# A cycle HH is published around HH:50; decoded and joined by HH+1:30 at the latest.
HOURLY_DEADLINE_CRON = "30 * * * *"


def policy_for(spec: dg.AssetSpec) -> dg.FreshnessPolicy:
    key = spec.key.to_user_string()
    return ASSET_POLICIES.get(key) or GROUP_POLICIES.get(spec.group_name or "", DEFAULT_POLICY)


def apply_freshness(defs: dg.Definitions) -> dg.Definitions:
    """Every asset gets its policy; one set explicitly on an asset is kept."""
    return defs.map_resolved_asset_specs(
        func=lambda spec: dg.apply_freshness_policy(spec, policy_for(spec), overwrite_existing=False)
    )


def hourly_freshness_checks(asset_keys: list[str]) -> list[dg.AssetChecksDefinition]:
    return list(dg.build_time_partition_freshness_checks(
        assets=[dg.AssetKey(k) for k in asset_keys], deadline_cron=HOURLY_DEADLINE_CRON, timezone="UTC",
        severity=dg.AssetCheckSeverity.WARN,
    ))
