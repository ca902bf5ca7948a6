"""Asset checks on the clean tables, per partition.

- reject share per column under ``max_reject_share`` (the asset's config, default 0.05):
  blocking, and evaluated by the asset itself on the staged table before it is published
  (write-audit-publish: ``reject_share_spec`` / ``reject_share_result`` here, the ``Audited``
  output in defs/failures.py); a table over the limit is never in the lake;
- no duplicate (station_id, timestamp_utc) keys;
- every timestamp inside the file's claimed period (USCRN: its year; other formats: the
  plausible window 1850 .. now + 1 day).
"""


import datetime as dt

import dagster as dg
import polars as pl

from snoiq_assets.defs.metadata import rounded
from snoiq_assets.defs.partitions import outcome_location_partitions, station_file_partitions
from snoiq_assets.lib.stations import parsers
from snoiq_assets.lib.stations.formats import Format
from snoiq_assets.lib.stations.validate import EARLIEST, MAX_REJECT_SHARE, worst_reject_share


class CleanTableConfig(dg.Config):
    max_reject_share: float = MAX_REJECT_SHARE


def reject_share_spec(prefix: str, clean_asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(f"{prefix}_reject_share", asset=clean_asset, blocking=True,
                             description="Share of rows rejected per column stays under max_reject_share; a table "
                                         "over it is refused before it is published (never in the lake).")


def reject_share_result(prefix: str, clean_asset: str, clean_rows: int, rejects: pl.DataFrame,
                        limit: float) -> dg.AssetCheckResult:
    column, share, shares = worst_reject_share(clean_rows, rejects)
    return dg.AssetCheckResult(
        asset_key=clean_asset, check_name=f"{prefix}_reject_share",
        passed=share <= limit,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"worst column {column or '-'}: {share:.2%} rejected (limit {limit:.2%})"
                    + ("" if share <= limit else "; the table was not published"),
        metadata=rounded({"reject_share": dg.MetadataValue.json(shares), "max_reject_share": limit}),
    )


def _dup_result(clean: pl.DataFrame, key: str) -> dg.AssetCheckResult:
    dups = clean.filter(pl.struct(key, "timestamp_utc").is_duplicated()).height
    return dg.AssetCheckResult(passed=dups == 0, metadata={"duplicate_rows": dups})


def _no_duplicate_keys_check(prefix: str, clean_asset: str, partitions_def: dg.PartitionsDefinition,
                             key_column: str, description: str):
    """``<prefix>_no_duplicate_keys`` on a clean table keyed by (``key_column``, timestamp_utc)."""

    @dg.asset_check(name=f"{prefix}_no_duplicate_keys", asset=clean_asset, partitions_def=partitions_def,
                    description=description)
    def no_duplicate_keys(clean: pl.DataFrame) -> dg.AssetCheckResult:
        return _dup_result(clean, key_column)

    return no_duplicate_keys


observations_no_duplicate_keys = _no_duplicate_keys_check(
    "observations", "observations_clean", station_file_partitions, "station_id",
    "No two rows share (station_id, timestamp_utc).")


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


outcome_no_duplicate_keys = _no_duplicate_keys_check(
    "outcome", "outcome_of_interest", outcome_location_partitions, "location",
    "No two outcome rows share (location, timestamp_utc).")

OBSERVATIONS_CHECKS = [observations_no_duplicate_keys, observations_within_claimed_period]
OUTCOME_CHECKS = [outcome_no_duplicate_keys]
ALL_CHECKS = [*OBSERVATIONS_CHECKS, *OUTCOME_CHECKS]
