"""Asset checks on the clean tables, per partition.

- reject share per column under ``max_reject_share`` (run config, default 0.05): blocking;
- no duplicate (station_id, timestamp_utc) keys;
- every timestamp inside the file's claimed period (USCRN: its year; other formats: the
  plausible window 1850 .. now + 1 day).
"""


import datetime as dt

import dagster as dg
import polars as pl

from snoiq_assets.defs.partitions import outcome_location_partitions, station_file_partitions
from snoiq_assets.lib.stations import parsers
from snoiq_assets.lib.stations.formats import Format
from snoiq_assets.lib.stations.validate import EARLIEST, reject_share


class RejectShareConfig(dg.Config):
    max_reject_share: float = 0.05


def _share_result(clean: pl.DataFrame, rejects: pl.DataFrame, limit: float) -> dg.AssetCheckResult:
    dropped = rejects.filter(pl.col("action") == "dropped")["line_no"].n_unique()
    shares = reject_share(clean.height + dropped, rejects)
    worst = max(shares.items(), key=lambda kv: kv[1], default=("", 0.0))
    return dg.AssetCheckResult(
        passed=worst[1] <= limit,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"worst column {worst[0] or '-'}: {worst[1]:.2%} rejected (limit {limit:.2%})",
        metadata={"reject_share": dg.MetadataValue.json({k: round(v, 6) for k, v in shares.items()}),
                  "max_reject_share": limit},
    )


def _dup_result(clean: pl.DataFrame, key: str) -> dg.AssetCheckResult:
    dups = clean.filter(pl.struct(key, "timestamp_utc").is_duplicated()).height
    return dg.AssetCheckResult(passed=dups == 0, metadata={"duplicate_rows": dups})


def _clean_table_checks(prefix: str, clean_asset: str, rejects_asset: str, partitions_def: dg.PartitionsDefinition,
                        key_column: str, share_description: str, dup_description: str):
    """``<prefix>_reject_share`` (blocking) and ``<prefix>_no_duplicate_keys`` on a clean table
    validated into ``clean_asset`` + ``rejects_asset``, keyed by (``key_column``, timestamp_utc)."""

    @dg.asset_check(name=f"{prefix}_reject_share", asset=clean_asset, blocking=True, partitions_def=partitions_def,
                    additional_ins={"rejects": dg.AssetIn(rejects_asset)}, description=share_description)
    def reject_share(config: RejectShareConfig, clean: pl.DataFrame, rejects: pl.DataFrame) -> dg.AssetCheckResult:
        return _share_result(clean, rejects, config.max_reject_share)

    @dg.asset_check(name=f"{prefix}_no_duplicate_keys", asset=clean_asset, partitions_def=partitions_def,
                    description=dup_description)
    def no_duplicate_keys(clean: pl.DataFrame) -> dg.AssetCheckResult:
        return _dup_result(clean, key_column)

    return reject_share, no_duplicate_keys


observations_reject_share, observations_no_duplicate_keys = _clean_table_checks(
    "observations", "observations_clean", "observations_rejects", station_file_partitions, "station_id",
    share_description="Share of rows rejected per column stays under max_reject_share.",
    dup_description="No two rows share (station_id, timestamp_utc).")


@dg.asset_check(asset="observations_clean", partitions_def=station_file_partitions,
                additional_ins={"observations_raw": dg.AssetIn("observations_raw")},
                description="Every timestamp lies inside the file's claimed period.")
def observations_within_claimed_period(observations_clean: pl.DataFrame,
                                       observations_raw: pl.DataFrame) -> dg.AssetCheckResult:
    fmt = Format(observations_raw["source_format"][0])
    period = parsers.claimed_period(observations_raw, fmt) or (
        EARLIEST, dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    ts = pl.col("timestamp_utc")
    outside = observations_clean.filter(ts.is_null() | (ts < period[0]) | (ts > period[1])).height
    return dg.AssetCheckResult(
        passed=outside == 0,
        metadata={"rows_outside": outside, "period_start": period[0].isoformat(), "period_end": period[1].isoformat()},
    )


outcome_reject_share, outcome_no_duplicate_keys = _clean_table_checks(
    "outcome", "outcome_of_interest", "outcome_rejects", outcome_location_partitions, "location",
    share_description="Share of outcome rows rejected stays under max_reject_share.",
    dup_description="No two outcome rows share (location, timestamp_utc).")


ALL_CHECKS = [
    observations_reject_share, observations_no_duplicate_keys, observations_within_claimed_period,
    outcome_reject_share, outcome_no_duplicate_keys,
]
