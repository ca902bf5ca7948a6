"""`training_table`: the wiring of lib/features/training.py (group "features").

Inputs:
- ``observations_clean`` (every station partition) through the IO manager, as one LazyFrame.
- ``grid_join_features`` (hourly) is read here, not through an input: only the stored hours in
  the configured date range are listed, and they are scanned a month at a time and reduced to
  daily means before the next month is read. When none are stored the table is station-only.
- ``outcome_of_interest`` (one partition per location) is read for the requested locations
  when the target is ``outcome``.

With ``hourly: true`` the table is the hourly forecast table instead (lib/features/hourly.py):
every stored grid_join_features hour in the date range, one row per station, cycle and lead;
observations_clean supplies the target and its lags before the cycle. With
``forecast_source: point_forecasts`` the forecasts are the point-forecast CSVs landed under
``raw/point_forecasts/`` (lib/features/point_forecasts.py) instead of grid_join_features: a file
that cannot be read is quarantined with its reason, rejected rows are counted in the metadata.
"""


import datetime as dt
import hashlib
from typing import Iterator, Optional

import dagster as dg
import polars as pl

from snoiq_assets.lib.dates import optional_date
from snoiq_assets.defs.io_manager import asset_prefix, partition_object_key
from snoiq_assets.defs.partitions import HOURLY_KEY_FORMAT
from snoiq_assets.defs.resources import ObjectStoreResource
from snoiq_assets.lib.features.hourly import DEFAULT_HOURLY_LAGS, build_hourly_table
from snoiq_assets.lib.features.point_forecasts import PointForecastError, parse_point_forecasts
from snoiq_assets.lib.features.training import (
    TrainingTableError,
    TrainingTableSpec,
    build_training_table,
    daily_grid_features,
    to_arrow_with_metadata,
)
from snoiq_assets.lib.keys import safe_identifier
from snoiq_assets.lib.storage import ObjectStore

GRID_KEY = dg.AssetKey("grid_join_features")
OUTCOME_KEY = dg.AssetKey("outcome_of_interest")
OBS_KEY = dg.AssetKey("observations_clean")


class TrainingTableConfig(dg.Config):
    target: str = "precip_mm"
    resolution_days: int = 1
    locations: Optional[list[str]] = None
    start_date: Optional[str] = None  # YYYY-MM-DD, inclusive
    end_date: Optional[str] = None  # YYYY-MM-DD, inclusive
    lags: list[int] = [1, 2, 3]
    rolling_windows: list[int] = [3, 7, 14, 30]
    min_coverage: float = 0.5
    use_grid_features: bool = True
    outcome_agg: str = "mean"
    # hourly: one row per station, HRRR cycle and lead, built from grid_join_features (features:
    # the 5x5 neighbourhood statistics, lead, hour of day, season and the target's lags before
    # the CYCLE; target: the observation at the valid time). resolution_days, lags,
    # rolling_windows and min_coverage are the daily table's and are not used then.
    hourly: bool = False
    hourly_lags: list[int] = list(DEFAULT_HOURLY_LAGS)
    leads: Optional[list[int]] = None  # lead hours to keep (default: every lead stored)
    missing_features: str = "drop"  # rows lacking a grid feature: drop them, or fill (value missing)
    forecast_source: str = "grid_join_features"  # or "point_forecasts" (raw/point_forecasts/**.csv[.gz])

    def spec(self) -> TrainingTableSpec:
        return TrainingTableSpec(
            target=self.target,
            resolution_days=self.resolution_days,
            locations=tuple(self.locations) if self.locations else None,
            start=_date(self.start_date, "start_date"),
            end=_date(self.end_date, "end_date"),
            lags=tuple(self.lags),
            rolling_windows=tuple(self.rolling_windows),
            min_coverage=self.min_coverage,
            outcome_agg=self.outcome_agg,
        )


def _date(text: Optional[str], what: str) -> Optional[dt.date]:
    return optional_date(text, what, TrainingTableError)


def grid_partition_keys(store: ObjectStore, start: Optional[dt.date], end: Optional[dt.date]) -> list[str]:
    """Stored hourly partitions of grid_join_features within [start, end] (dates inclusive)."""
    prefix = asset_prefix(GRID_KEY) + "/"
    keys = []
    for info in store.list(prefix):
        name = info.key[len(prefix):]
        if not name.endswith(".parquet") or "/" in name:
            continue
        pk = name[: -len(".parquet")]
        try:
            day = dt.datetime.strptime(pk, HOURLY_KEY_FORMAT).date()
        except ValueError:
            continue
        if (start is None or day >= start) and (end is None or day <= end):
            keys.append(pk)
    return sorted(keys)


def grid_chunks(store: ObjectStore, partition_keys: list[str]) -> Iterator[pl.LazyFrame]:
    """One LazyFrame per calendar month of hourly partitions."""
    by_month: dict[str, list[str]] = {}
    for pk in partition_keys:
        by_month.setdefault(pk[:7], []).append(pk)
    for month in sorted(by_month):
        uris = [store.uri(partition_object_key(GRID_KEY, pk)) for pk in by_month[month]]
        # Hours may differ in their feature columns: concatenate by name.
        yield pl.concat([pl.scan_parquet(u, storage_options=store.storage_options) for u in uris], how="diagonal_relaxed")


def outcome_frame(store: ObjectStore, locations: Optional[list[str]]) -> Optional[pl.LazyFrame]:
    prefix = asset_prefix(OUTCOME_KEY) + "/"
    if locations:
        keys = [partition_object_key(OUTCOME_KEY, safe_identifier(loc, "location")) for loc in locations]
        keys = [k for k in keys if store.exists(k)]
    else:
        keys = [i.key for i in store.list(prefix) if i.key.endswith(".parquet")]
    if not keys:
        return None
    return pl.concat([pl.scan_parquet(store.uri(k), storage_options=store.storage_options) for k in keys], how="diagonal_relaxed")


def table_data_version(arrow_table) -> str:
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(arrow_table, buf, compression="none")
    return hashlib.sha256(buf.getvalue()).hexdigest()[:24]


@dg.asset(
    group_name="features",
    ins={"observations_clean": dg.AssetIn(key=OBS_KEY, metadata={"allow_missing_partitions": True})},
    deps=[GRID_KEY, OUTCOME_KEY],
    description="Features and target per location and period (resolution_days), with rolling means and lags; "
                "or (hourly: true) per station and HRRR valid hour from grid_join_features.",
    kinds={"polars", "parquet"},
)
def training_table(
    context: dg.AssetExecutionContext,
    config: TrainingTableConfig,
    store: ObjectStoreResource,
    observations_clean: pl.LazyFrame,
) -> dg.Output:
    spec = config.spec()
    obj_store = store.get_store()
    if config.hourly:
        return _hourly_table(context, config, spec, obj_store, observations_clean)
    grid_daily, grid_keys = None, []
    if config.use_grid_features:
        grid_keys = grid_partition_keys(obj_store, spec.start, spec.end)
        if grid_keys:
            grid_daily = daily_grid_features(grid_chunks(obj_store, grid_keys), spec.locations)
    outcome = outcome_frame(obj_store, config.locations) if spec.target == "outcome" else None
    if not observations_clean.collect_schema():
        raise TrainingTableError("observations_clean has no stored partitions; materialise it first")
    table, info = build_training_table(observations_clean, spec, grid_daily=grid_daily, outcome=outcome)
    return _table_output(context, table, info, grid_keys)


POINT_FORECASTS_PREFIX = "raw/point_forecasts/"


def point_forecast_rows(context: dg.AssetExecutionContext, obj_store: ObjectStore) -> tuple[pl.DataFrame, dict]:
    """Every landed point-forecast file as grid_join_features rows; unreadable files quarantined."""
    import gzip

    frames, keys, rejected = [], [], 0
    for info in obj_store.list(POINT_FORECASTS_PREFIX):
        if not info.key.endswith((".csv", ".csv.gz")):
            continue
        data = obj_store.get(info.key)
        try:
            if info.key.endswith(".gz"):
                data = gzip.decompress(data)
            rows, rejects, _info = parse_point_forecasts(data, info.key)
        except (PointForecastError, OSError) as exc:
            dest = obj_store.quarantine(info.key, str(exc))
            context.log.error(f"training_table: {info.key} quarantined: {exc}")
            context.log.error(f"  moved to {dest}")
            continue
        if rejects.height:
            rejected += rejects.height
            context.log.warning(f"training_table: {info.key}: {rejects.height} rejected row(s), first: {rejects['reason'][0]}")
        frames.append(rows)
        keys.append(info.key)
    if not frames:
        raise TrainingTableError(f"forecast_source point_forecasts: no readable CSV under {POINT_FORECASTS_PREFIX}")
    return pl.concat(frames, how="diagonal_relaxed"), {"files": keys, "rejected_rows": rejected}


def _hourly_table(context: dg.AssetExecutionContext, config: TrainingTableConfig, spec: TrainingTableSpec,
                  obj_store: ObjectStore, observations_clean: pl.LazyFrame) -> dg.Output:
    if config.forecast_source == "point_forecasts":
        rows, source = point_forecast_rows(context, obj_store)
        obs = observations_clean if observations_clean.collect_schema() else None
        table, info = build_hourly_table(rows.lazy(), obs, spec.target, tuple(config.hourly_lags), spec.locations,
                                         spec.start, spec.end, leads=config.leads, missing=config.missing_features)
        info["point_forecasts"] = source
        return _table_output(context, table, info, [])
    if config.forecast_source != "grid_join_features":
        raise TrainingTableError(f"forecast_source must be grid_join_features or point_forecasts; got {config.forecast_source!r}")
    grid_keys = grid_partition_keys(obj_store, spec.start, spec.end)
    if not grid_keys:
        raise TrainingTableError(
            f"an hourly training table is built from grid_join_features, which has no stored partitions between "
            f"{spec.start or 'the start'} and {spec.end or 'the end'}; materialise grid_join_features first"
        )
    grid = pl.concat(list(grid_chunks(obj_store, grid_keys)), how="diagonal_relaxed")
    obs = observations_clean if observations_clean.collect_schema() else None
    table, info = build_hourly_table(grid, obs, spec.target, tuple(config.hourly_lags), spec.locations, spec.start, spec.end,
                                     leads=config.leads, missing=config.missing_features)
    missing = info["missing_features"]
    if missing["rows_affected"]:
        done = "dropped" if missing["policy"] == "drop" else "kept with the value missing"
        context.log.warning(f"training_table (hourly): {missing['rows_affected']} rows lack some grid feature and are "
                            f"{done}; rows per feature: {dict(list(missing['by_feature'].items())[:10])}")
    return _table_output(context, table, info, grid_keys)


def _table_output(context: dg.AssetExecutionContext, table: pl.DataFrame, info: dict, grid_keys: list[str]) -> dg.Output:
    """The table with its build info in the Parquet footer, its content hash as data version."""
    info["grid_partitions"] = {"count": len(grid_keys), "first": grid_keys[0] if grid_keys else None,
                               "last": grid_keys[-1] if grid_keys else None}
    arrow = to_arrow_with_metadata(table, info)
    version = table_data_version(arrow)
    resolution = info.get("resolution") or f"{info['resolution_days']} day(s)"
    context.log.info(
        f"training_table ({resolution}): {info['rows']} rows ({info['rows_with_target']} with a target), "
        f"{len(info['feature_columns'])} features, feature set {info['feature_set']}, {len(grid_keys)} grid hours"
    )
    metadata = {
        "target": info["target"], "resolution": resolution, "resolution_days": info["resolution_days"],
        "feature_set": info["feature_set"], "feature_count": len(info["feature_columns"]),
        "locations": ", ".join(info["locations"]), "period_start_min": str(info["period_start_min"]),
        "period_start_max": str(info["period_start_max"]), "rows_with_target": info["rows_with_target"],
        "grid_hours_used": len(grid_keys), "table_version": version,
    }
    if "point_forecasts" in info:
        metadata["point_forecast_files"] = len(info["point_forecasts"]["files"])
        metadata["point_forecast_rejected_rows"] = info["point_forecasts"]["rejected_rows"]
    if "missing_features" in info:
        metadata["missing_features"] = dg.MetadataValue.json(info["missing_features"])
        metadata["leads"] = ", ".join(map(str, info["leads"]))
    return dg.Output(arrow, data_version=dg.DataVersion(version), metadata=metadata)


assets = [training_table]
