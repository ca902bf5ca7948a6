"""Feature assets (group "features"): ``station_grid_index``, ``grid_join_features`` (hourly) and
``training_table``. The logic is in lib/features (grid_index, neighbourhood, grid_join, training,
hourly); this module wires it.

``station_grid_index`` (unpartitioned; from ``hrrr_grid`` and ``station_metadata``)
    One row per station: nearest cell, great-circle distance, k x k window cells and on-grid
    mask, or an exclusion reason (``snoiq_assets.lib.features.grid_index``). Parquet schema
    metadata: grid_id, window, max_distance_m, station_list_hash, inputs_hash, code_version.

    When it is rebuilt: ``inputs_hash`` = hash(index code version, grid_id, station list hash
    (ids + coordinates), window, max_distance_m) is the output's **data version**. On
    materialisation the asset first compares it with the stored index's ``inputs_hash``; if they
    match it **skips and reuses** the stored file (nothing recomputed or rewritten, same data
    version, so ``grid_join_features`` is not marked stale). The grid table is only scanned
    lazily on that path; its ``grid_id`` comes from the Parquet metadata.

``grid_join_features`` (hourly, same partitions as ``hrrr_fields``; single-run backfills)
    One row per included station: ``station_id``, ``valid_time``, ``run_time``,
    ``forecast_hour``, ``grid_y``, ``grid_x``, ``distance_m``, then ``<var>__<stat>`` (float32)
    for every decoded variable and stat in ``neighbourhood.STATS`` (centre, mean, min, max,
    std, grad_we, grad_sn), then ``obs_timestamp_utc`` and ``obs_<variable>`` for every
    variable of the clean observation schema: the station's hourly report nearest
    ``valid_time`` within 30 minutes either side (inclusive; on a tie the earlier report), null
    when there is none. Several reports in one hour (an ASOS routine :53 METAR plus specials)
    are normal; two rows of one station with the same timestamp are an error.

    A run may cover a range of hourly partitions (``BackfillPolicy.single_run()``: a UI
    backfill, ``--partition-range`` or the ``dagster/asset_partition_range_start/end`` tags);
    it loads each lead lazily (its ``hrrr_station_windows`` when they match the stored lead
    and the index, else the whole ``hrrr_fields`` lead), reads the observations once for the whole
    run and returns ``{partition_key: frame}`` (one Parquet file per partition). The run fails,
    writing nothing, naming every failed partition, when a partition's grid id differs from
    the index's or a station has duplicate observation rows near a valid time.
"""


import datetime as dt
from typing import Optional

import dagster as dg
import polars as pl
import pyarrow as pa

from snoiq_assets.defs.failures import partial_failure
from snoiq_assets.defs.partitions import every_stored_partition, hourly_partitions, model_spec_partitions
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.dates import optional_date
from snoiq_assets.lib.failures import PartialFailures
from snoiq_assets.lib.features import grid_index as gi
from snoiq_assets.lib.features.grid_join import (
    JOIN_CODE_VERSION,
    GridFeatureError,
    build_grid_join,
    build_index_table,
    check_fields_grid,
    field_variables,
    windows_unusable,
    fields_times,
    grid_identity,
    run_observations,
)
from snoiq_assets.lib.features.hourly import DEFAULT_HOURLY_LAGS, build_hourly_table
from snoiq_assets.lib.features import point_forecasts
from snoiq_assets.lib.features.training import (
    TrainingTableError,
    TrainingTableSpec,
    build_training_table,
    daily_grid_features,
    table_data_version,
    to_arrow_with_metadata,
)
from snoiq_assets.lib.hours import by_month, keys_between
from snoiq_assets.lib.keys import safe_identifier
from snoiq_assets.lib.parquet import LeadFrames, StoredParquet
from snoiq_assets.lib.models.specs import check_table, read_spec

GROUP = "features"
INDEX_KEY = dg.AssetKey("station_grid_index")


class StationGridIndexConfig(dg.Config):
    window: int = gi.DEFAULT_WINDOW
    """Window size in cells (odd: 3, 5, 7 ...)."""
    max_distance_m: Optional[float] = None
    """Stations farther than this from their nearest cell centre are excluded (too_far); unset:
    three quarters of the nearest cell's diagonal, i.e. from the grid's own spacing."""
    force_rebuild: bool = False
    """Rebuild even when grid, stations and parameters are unchanged."""


def _latest_materialization(context: dg.AssetExecutionContext, key: dg.AssetKey):
    event = context.instance.get_latest_materialization_event(key)
    return event.asset_materialization if event is not None else None


@dg.asset(
    group_name=GROUP,
    code_version=gi.INDEX_CODE_VERSION,
    ins={"hrrr_grid": dg.AssetIn(), "station_metadata": dg.AssetIn()},
    description="Each station's nearest HRRR cell, distance and k x k window (cells, edge mask), "
                "or why it is excluded. Rebuilt only when grid id, station list or parameters change.",
)
def station_grid_index(context: dg.AssetExecutionContext, config: StationGridIndexConfig,
                       hrrr_grid: StoredParquet, station_metadata: pl.DataFrame) -> dg.Output:
    grid_meta = hrrr_grid.metadata()
    grid_id, _shape = grid_identity(grid_meta)
    stations_hash = gi.station_list_hash(station_metadata)  # validates ids and coordinates
    inputs_hash = gi.index_inputs_hash(grid_id, stations_hash, config.window, config.max_distance_m)
    version = dg.DataVersion(inputs_hash)

    # The last materialisation's data version is the inputs hash it was built from.
    last = _latest_materialization(context, INDEX_KEY)
    if (last is not None and (last.tags or {}).get("dagster/data_version") == inputs_hash
            and not config.force_rebuild):
        context.log.info(f"station_grid_index unchanged (inputs {inputs_hash}): reusing the stored index")
        previous = {k: v.value for k, v in last.metadata.items()}
        return dg.Output(None, data_version=version, metadata={
            "reused": True, "inputs_hash": inputs_hash, "grid_id": grid_id,
            "stations_included": int(previous.get("stations_included", -1)),
            "stations_excluded": int(previous.get("stations_excluded", -1)),
        })

    grid = hrrr_grid.scan().select("y", "x", "latitude", "longitude").collect()
    table, summary = build_index_table(grid, grid_meta, station_metadata, config.window,
                                       config.max_distance_m, stations_hash, inputs_hash)
    return dg.Output(table, data_version=version, metadata={
        "reused": False, "inputs_hash": inputs_hash, "grid_id": grid_id, "window": config.window,
        **summary, "excluded_by_reason": dg.MetadataValue.json(summary["excluded_by_reason"]),
    })


class GridJoinConfig(dg.Config):
    leads: Optional[list[int]] = None
    """Forecast hours to join for each cycle; None: every lead hrrr_fields stored for it."""


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=JOIN_CODE_VERSION,
    ins={
        "hrrr_fields": dg.AssetIn(),
        # the leads' values at the window cells only, when they match the stored leads; a lead
        # without them (or with stale ones) is read whole from hrrr_fields
        "hrrr_station_windows": dg.AssetIn(metadata={"allow_missing_partitions": True}),
        "station_grid_index": dg.AssetIn(),
        "observations_clean": every_stored_partition(),
    },
    description="Per station and hour: centre, window mean/min/max/std and west-east / south-north "
                "gradients of every decoded HRRR field, joined to the station's observation nearest "
                "the valid time (within 30 minutes). Reads each lead's station windows when they match "
                "the stored lead and the current index, else the whole lead (the same features).",
)
def grid_join_features(context: dg.AssetExecutionContext, config: GridJoinConfig, hrrr_fields: StoredParquet,
                       hrrr_station_windows: StoredParquet, station_grid_index: pl.DataFrame,
                       observations_clean: pl.LazyFrame) -> dg.Output:
    """Every partition (run cycle) of the run (one, or a range in a single-run backfill), each
    lead of it its own frame (``LeadFrames``: one file per (cycle, lead)); rows carry
    ``run_time`` (the cycle), ``forecast_hour`` (the lead) and ``valid_time``. Observations are
    read once for the whole run. Every (cycle, lead) is checked before the step fails, naming
    each failed one; nothing is written then.

    Each lead's values come from its station windows (``hrrr_station_windows``, a few thousand
    cells) when they were taken from the stored lead (same ``fields_version``) and hold every
    window cell of the current index; otherwise from the whole stored lead (1.9 million cells per
    variable). Same features either way; the run's metadata counts each path and says why a
    lead was read whole."""
    pks = list(context.partition_keys)
    units: dict[str, dict[int, dict[str, str]]] = {}
    failures = PartialFailures("grid_join_features", pks)
    for pk in pks:
        try:
            stored = hrrr_fields.leads(pk)
            wanted = [fh for fh in (config.leads if config.leads is not None else stored) if fh in stored]
            if not wanted:
                raise GridFeatureError(f"hrrr_fields partition {pk} has none of the leads {config.leads} "
                                       f"(stored: {sorted(stored)})")
            metas = {}
            for fh in wanted:
                meta = hrrr_fields.lead_metadata(pk, fh)
                check_fields_grid(meta, station_grid_index, f"{pk} f{fh:02d}")
                fields_times(meta)
                metas[fh] = meta
            units[pk] = metas
        except GridFeatureError as exc:
            failures.add(pk, str(exc))
    inc_ids = station_grid_index.filter(pl.col("included"))["station_id"].to_list()
    run_obs = run_observations(observations_clean, [fields_times(m)[0] for ms in units.values() for m in ms.values()],
                               inc_ids)

    _ids, index_cells, _k = gi.index_window_arrays(station_grid_index)
    whole_grid: dict[str, str] = {}   # "<cycle> fFF": why that lead was read whole
    cycles_with_windows = set(hrrr_station_windows.partition_keys)

    def lead_values(pk: str, fh: int, meta: dict[str, str]):
        """The lead's station windows when they stand in for it, else the whole stored lead."""
        if pk in cycles_with_windows and fh in hrrr_station_windows.leads(pk):
            try:
                windows = hrrr_station_windows.lead_table(pk, fh)
            except (pa.ArrowException, OSError) as exc:
                # only an access path: an unreadable file costs speed, not the run (it stays
                # where it is, for a look; the next decode of the lead replaces it)
                why = "unreadable station windows"
                context.log.warning(f"grid_join_features {pk} f{fh:02d}: the station windows "
                                    f"{hrrr_station_windows.leads(pk)[fh]} cannot be read "
                                    f"({type(exc).__name__}: {exc}); reading the whole lead")
            else:
                why = windows_unusable(windows, meta, index_cells)
                if why is None:
                    return windows
        else:
            why = "no station windows stored"
        whole_grid[f"{pk} f{fh:02d}"] = why
        return hrrr_fields.lead_table(pk, fh)

    out: dict[str, LeadFrames] = {}
    for pk, metas in units.items():
        try:
            out[pk] = LeadFrames({fh: build_grid_join(lead_values(pk, fh, meta), meta, station_grid_index, None,
                                                      f"{pk} f{fh:02d}", run_obs=run_obs)
                                  for fh, meta in metas.items()})
        except GridFeatureError as exc:
            failures.add(pk, str(exc))
    if failures:
        raise partial_failure(failures, "nothing is written for this run")

    with_obs = {pk: {fh: int(f["obs_timestamp_utc"].is_not_null().sum()) for fh, f in frames.items()}
                for pk, frames in out.items()}
    first_pk = pks[0]
    first_fh = min(units[first_pk])
    md: dict = {
        "grid_id": units[first_pk][first_fh].get("grid_id", ""),
        "variables": dg.MetadataValue.json(field_variables(dict(hrrr_fields.scan_lead(first_pk, first_fh)
                                                                .collect_schema()))),
        "partition_count": len(pks),
        "lead_count": sum(len(m) for m in units.values()),
        "leads_from_station_windows": sum(len(m) for m in units.values()) - len(whole_grid),
        "leads_read_whole": len(whole_grid),
        # a few examples per reason (a year's backfill would list 166,000 leads)
        "read_whole_because": dg.MetadataValue.json(
            {why: sorted(u for u, w in whole_grid.items() if w == why)[:5] for why in sorted(set(whole_grid.values()))}),
    }
    if whole_grid:
        context.log.info(f"grid_join_features: {len(whole_grid)} lead(s) read whole from hrrr_fields: "
                         + "; ".join(f"{why} ({sum(w == why for w in whole_grid.values())})"
                                     for why in sorted(set(whole_grid.values()))))
    # Each cycle's own counts and leads (a range run shows every cycle its own).
    for pk in pks:
        fh0 = min(units[pk])
        context.add_asset_metadata({
            "valid_time": units[pk][fh0].get("valid_time", ""), "stations": out[pk][fh0].height,
            "stations_with_observation": sum(with_obs[pk].values()),
            "leads": dg.MetadataValue.json({f"f{fh:02d}": {"valid_time": m.get("valid_time", ""),
                                                           "stations_with_observation": with_obs[pk][fh]}
                                            for fh, m in units[pk].items()}),
        }, partition_key=pk)
    return dg.Output({pk: out[pk] for pk in pks}, metadata=md)


class TrainingTableConfig(dg.Config):
    """A training table's options; a spec's file supplies them (``ModelSpec.table_config``)."""
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
    # or "point_forecasts": the point-forecast CSVs landed under raw/point_forecasts/ (a file that
    # cannot be read is quarantined with its reason)
    forecast_source: str = "grid_join_features"

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


@dg.asset(
    group_name=GROUP,
    partitions_def=model_spec_partitions,
    ins={
        "observations_clean": every_stored_partition(),
        # Only the stored hours in the configured date range are scanned, a month at a time.
        "grid_join_features": every_stored_partition(),
        "outcome_of_interest": every_stored_partition(),
    },
    description="One table per model spec (`raw/model_specs/<spec_id>.yaml`): features and target per location "
                "and period (daily specs, resolution_days), with rolling means and lags; or (hourly specs) per station, "
                "forecast cycle and lead from grid_join_features or landed point forecasts, lags relative to the "
                "cycle. A spec whose leads are not in the data, or whose split leaves a lead too few rows, is refused "
                "with the number needed.",
    kinds={"polars", "parquet"},
)
def training_table(
    context: dg.AssetExecutionContext,
    store: ObjectStoreResource,
    observations_clean: pl.LazyFrame,
    grid_join_features: StoredParquet,
    outcome_of_interest: StoredParquet,
) -> dg.Output:
    model_spec = read_spec(store.get_store(), context.partition_key)
    output = _build_table(context, TrainingTableConfig(**model_spec.table_config()), store, observations_clean,
                          grid_join_features, outcome_of_interest)
    counts = check_table(model_spec, pl.from_arrow(output.value))
    return dg.Output(output.value, data_version=output.data_version,
                     metadata={**output.metadata, "spec": model_spec.spec_id, "labelled_rows": counts["rows"]})


def _build_table(context: dg.AssetExecutionContext, config: TrainingTableConfig, store: ObjectStoreResource,
                 observations_clean: pl.LazyFrame, grid_join_features: StoredParquet,
                 outcome_of_interest: StoredParquet) -> dg.Output:
    spec = config.spec()
    grid_keys = keys_between(grid_join_features.partition_keys, spec.start, spec.end)
    if config.hourly and config.forecast_source == "point_forecasts":
        return _point_forecast_table(context, config, spec, store.get_store(), observations_clean)
    if config.hourly and config.forecast_source != "grid_join_features":
        raise TrainingTableError(f"forecast_source must be grid_join_features or point_forecasts; got {config.forecast_source!r}")
    if config.hourly:
        return _hourly_table(context, config, spec, grid_join_features, grid_keys, observations_clean)
    grid_daily = None
    if not config.use_grid_features:
        grid_keys = []
    elif grid_keys:
        grid_daily = daily_grid_features((grid_join_features.scan(month) for month in by_month(grid_keys)),
                                         spec.locations)
    outcome = _outcome_frame(outcome_of_interest, config.locations) if spec.target == "outcome" else None
    if not observations_clean.collect_schema():
        raise TrainingTableError("observations_clean has no stored partitions; materialise it first")
    table, info = build_training_table(observations_clean, spec, grid_daily=grid_daily, outcome=outcome)
    return _table_output(context, table, info, grid_keys)


def _outcome_frame(outcomes: StoredParquet, locations: Optional[list[str]]) -> Optional[pl.LazyFrame]:
    """The stored outcome series of the requested locations (all when none are named)."""
    wanted = {safe_identifier(loc, "location") for loc in locations} if locations else None
    keys = [pk for pk in outcomes.partition_keys if wanted is None or pk in wanted]
    return outcomes.scan(keys) if keys else None


def _hourly_table(context: dg.AssetExecutionContext, config: TrainingTableConfig, spec: TrainingTableSpec,
                  grid_join_features: StoredParquet, grid_keys: list[str], observations_clean: pl.LazyFrame) -> dg.Output:
    if not grid_keys:
        raise TrainingTableError(
            f"an hourly training table is built from grid_join_features, which has no stored partitions between "
            f"{spec.start or 'the start'} and {spec.end or 'the end'}; materialise grid_join_features first"
        )
    grid = grid_join_features.scan(grid_keys)
    obs = observations_clean if observations_clean.collect_schema() else None
    table, info = build_hourly_table(grid, obs, spec.target, tuple(config.hourly_lags), spec.locations, spec.start, spec.end,
                                     leads=config.leads, missing=config.missing_features)
    _say_missing(context, info)
    return _table_output(context, table, info, grid_keys)


def _say_missing(context: dg.AssetExecutionContext, info: dict) -> None:
    missing = info["missing_features"]
    if missing["rows_affected"]:
        done = "dropped" if missing["policy"] == "drop" else "kept with the value missing"
        context.log.warning(f"training_table (hourly): {missing['rows_affected']} rows lack some grid feature and are "
                            f"{done}; rows per feature: {dict(list(missing['by_feature'].items())[:10])}")


def _point_forecast_table(context: dg.AssetExecutionContext, config: TrainingTableConfig, spec: TrainingTableSpec,
                          object_store, observations_clean: pl.LazyFrame) -> dg.Output:
    try:
        rows, source = point_forecasts.read_landed(object_store)
    except point_forecasts.PointForecastError as exc:
        raise TrainingTableError(str(exc)) from None
    for key, dest in source["quarantined"].items():
        context.log.error(f"training_table: {key} could not be read; quarantined to {dest} (reason beside it)")
    obs = observations_clean if observations_clean.collect_schema() else None
    table, info = build_hourly_table(rows.lazy(), obs, spec.target, tuple(config.hourly_lags), spec.locations,
                                     spec.start, spec.end, leads=config.leads, missing=config.missing_features)
    _say_missing(context, info)
    info["point_forecasts"] = source
    return _table_output(context, table, info, [])


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

