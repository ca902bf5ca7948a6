"""Grid feature assets (group "features"): ``station_grid_index`` and ``grid_join_features``.

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
    it loads each ``hrrr_fields`` partition lazily, reads the observations once for the whole
    run and returns ``{partition_key: frame}`` (one Parquet file per partition). The run fails,
    writing nothing, naming every failed partition, when a partition's grid id differs from
    the index's or a station has duplicate observation rows near a valid time.
"""


import datetime as dt
import json
from typing import Optional

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.defs.io_manager import parquet_key_value_metadata, partition_object_key, read_schema_metadata
from snoiq_assets.defs.partitions import hourly_partitions
from snoiq_assets.lib.features import grid_index as gi
from snoiq_assets.lib.features import neighbourhood as nb
from snoiq_assets.lib.hrrr.grid import earth_of
from snoiq_assets.lib.stations.schema import VARIABLES as OBS_VARIABLES

GROUP = "features"
GRID_KEY = dg.AssetKey("hrrr_grid")
FIELDS_KEY = dg.AssetKey("hrrr_fields")
INDEX_KEY = dg.AssetKey("station_grid_index")
NON_FIELD_COLUMNS = {"y", "x", "latitude", "longitude"}
JOIN_CODE_VERSION = "grid_join-1"


class GridFeatureError(ValueError):
    """Bad input to the grid features: names what is wrong."""


class StationGridIndexConfig(dg.Config):
    window: int = gi.DEFAULT_WINDOW
    """Window size in cells (odd: 3, 5, 7 ...)."""
    max_distance_m: Optional[float] = None
    """Stations farther than this from their nearest cell centre are excluded (too_far); unset:
    three quarters of the nearest cell's diagonal, i.e. from the grid's own spacing."""
    force_rebuild: bool = False
    """Rebuild even when grid, stations and parameters are unchanged."""


# ----- helpers (plain functions, tested through the assets) ----------------------------------
def grid_arrays(grid: pl.DataFrame, shape_text: str) -> tuple[np.ndarray, np.ndarray]:
    """(ny, nx) lat/lon from the row-major ``hrrr_grid`` table, checking its order."""
    ny, nx = (int(v) for v in shape_text.split(","))
    if grid.height != ny * nx:
        raise GridFeatureError(f"hrrr_grid has {grid.height} rows, its shape metadata says {ny}x{nx}")
    flat = grid["y"].cast(pl.Int64).to_numpy() * nx + grid["x"].cast(pl.Int64).to_numpy()
    if not np.array_equal(flat, np.arange(ny * nx)):
        raise GridFeatureError("hrrr_grid rows are not in row-major (y, x) order")
    return grid["latitude"].to_numpy().reshape(ny, nx), grid["longitude"].to_numpy().reshape(ny, nx)


def _stored_index_metadata(store_resource) -> dict[str, str] | None:
    try:
        return read_schema_metadata(store_resource, INDEX_KEY, None)
    except Exception:  # noqa: BLE001 - not materialised yet (any backend's "not found")
        return None


def index_table(index: pl.DataFrame, meta: dict[str, str]) -> pa.Table:
    return index.to_arrow().replace_schema_metadata(meta)


@dg.asset(
    group_name=GROUP,
    code_version=gi.INDEX_CODE_VERSION,
    required_resource_keys={"store"},
    ins={"hrrr_grid": dg.AssetIn(), "station_metadata": dg.AssetIn()},
    description="Each station's nearest HRRR cell, distance and k x k window (cells, edge mask), "
                "or why it is excluded. Rebuilt only when grid id, station list or parameters change.",
)
def station_grid_index(context: dg.AssetExecutionContext, config: StationGridIndexConfig,
                       hrrr_grid: pl.LazyFrame, station_metadata: pl.DataFrame) -> dg.Output:
    store_resource = context.resources.store
    grid_meta = read_schema_metadata(store_resource, GRID_KEY, None)
    for key in ("grid_id", "shape"):
        if key not in grid_meta:
            raise GridFeatureError(f"hrrr_grid has no {key!r} in its Parquet metadata (has {sorted(grid_meta)})")
    grid_id = grid_meta["grid_id"]
    stations_hash = gi.station_list_hash(station_metadata)  # validates ids and coordinates
    inputs_hash = gi.index_inputs_hash(grid_id, stations_hash, config.window, config.max_distance_m)
    version = dg.DataVersion(inputs_hash)

    stored = _stored_index_metadata(store_resource)
    if stored and stored.get("inputs_hash") == inputs_hash and not config.force_rebuild:
        context.log.info(f"station_grid_index unchanged (inputs {inputs_hash}): reusing the stored index")
        return dg.Output(None, data_version=version, metadata={
            "reused": True, "inputs_hash": inputs_hash, "grid_id": grid_id,
            "stations_included": int(stored.get("stations_included", -1)),
            "stations_excluded": int(stored.get("stations_excluded", -1)),
        })

    lats, lons = grid_arrays(hrrr_grid.select("y", "x", "latitude", "longitude").collect(), grid_meta["shape"])
    try:
        earth = earth_of(json.loads(grid_meta.get("projection", "{}")))
    except ValueError as exc:
        raise GridFeatureError(f"hrrr_grid: {exc}") from None
    locator = gi.GridLocator(lats, lons, earth)
    index = gi.build_station_grid_index(station_metadata, locator, window=config.window,
                                        max_distance_m=config.max_distance_m)
    index = index.with_columns(pl.lit(grid_id).alias("grid_id"))
    n_inc = int(index["included"].sum())
    excluded = index.filter(~pl.col("included"))
    meta = {
        "grid_id": grid_id, "shape": grid_meta["shape"], "window": str(config.window),
        "max_distance_m": "cell-diagonal" if config.max_distance_m is None else str(config.max_distance_m),
        "earth": json.dumps(earth, sort_keys=True), "station_list_hash": stations_hash,
        "inputs_hash": inputs_hash, "code_version": gi.INDEX_CODE_VERSION,
        "stations_included": str(n_inc), "stations_excluded": str(excluded.height),
    }
    return dg.Output(index_table(index, meta), data_version=version, metadata={
        "reused": False, "inputs_hash": inputs_hash, "grid_id": grid_id, "window": config.window,
        "stations_included": n_inc, "stations_excluded": excluded.height,
        "excluded_by_reason": dg.MetadataValue.json(
            dict(excluded.group_by(pl.col("exclusion_reason").str.split(":").list.first()).len().rows())),
        "max_distance_to_cell_m": float(index.filter(pl.col("included"))["distance_m"].max() or 0.0),
    })


# ----- grid_join_features ---------------------------------------------------------------
OBS_WINDOW = dt.timedelta(minutes=30)
"""An observation joins a valid time when its timestamp is within this much of it (inclusive)."""


def field_variables(frame_schema: dict) -> list[str]:
    return [c for c, t in frame_schema.items() if c not in NON_FIELD_COLUMNS and t in (pl.Float32, pl.Float64)]


def _obs_columns() -> list[str]:
    return ["obs_timestamp_utc"] + [f"obs_{v}" for v in OBS_VARIABLES]


def _empty_observations() -> pl.DataFrame:
    return pl.DataFrame(schema={"station_id": pl.Utf8, "obs_timestamp_utc": pl.Datetime("us", "UTC"),
                                **{f"obs_{v}": t for v, t in OBS_VARIABLES.items()}})


def run_observations(observations: pl.LazyFrame | pl.DataFrame | None, valid_times: list[dt.datetime],
                     station_ids: list[str]) -> pl.DataFrame:
    """The hourly observations a run can join, read once: the given stations' rows with a
    timestamp within ``OBS_WINDOW`` of the earliest to the latest valid time. Columns
    ``station_id``, ``obs_timestamp_utc`` and ``obs_<variable>`` for every clean-schema variable
    (null where the source has none). Empty (same columns) when there are no observations."""
    if observations is None or not valid_times:
        return _empty_observations()
    lf = observations.lazy()
    schema = lf.collect_schema()
    if "station_id" not in schema or "timestamp_utc" not in schema:
        return _empty_observations()
    if "resolution" in schema:
        lf = lf.filter(pl.col("resolution") == "hourly")
    lo = pl.lit(min(valid_times) - OBS_WINDOW).cast(pl.Datetime("us", "UTC"))
    hi = pl.lit(max(valid_times) + OBS_WINDOW).cast(pl.Datetime("us", "UTC"))
    present = [v for v in OBS_VARIABLES if v in schema]
    rows = (
        lf.filter(pl.col("station_id").is_in(station_ids))
        .filter(pl.col("timestamp_utc").cast(pl.Datetime("us", "UTC")).is_between(lo, hi, closed="both"))
        .select(pl.col("station_id").cast(pl.Utf8),
                pl.col("timestamp_utc").cast(pl.Datetime("us", "UTC")).alias("obs_timestamp_utc"),
                *[pl.col(v).alias(f"obs_{v}") for v in present])
        .collect()
    )
    return (rows.with_columns([pl.lit(None, dtype=t).alias(f"obs_{v}") for v, t in OBS_VARIABLES.items() if v not in present])
            .select("station_id", *_obs_columns()).cast({f"obs_{v}": t for v, t in OBS_VARIABLES.items()}))


def nearest_observations(run_obs: pl.DataFrame, valid_time: dt.datetime) -> pl.DataFrame:
    """Per station, the report nearest ``valid_time`` within ``OBS_WINDOW`` either side
    (inclusive; on a tie, the earlier report). ``run_obs`` is a ``run_observations`` frame.

    Several reports in one hour are normal (an ASOS routine :53 METAR plus specials) and are
    not an error; two rows of one station with the *same* timestamp are, and raise
    GridFeatureError naming the stations and timestamps."""
    vt = pl.lit(valid_time).cast(pl.Datetime("us", "UTC"))
    near = run_obs.filter(pl.col("obs_timestamp_utc").is_between(vt - OBS_WINDOW, vt + OBS_WINDOW, closed="both"))
    dups = (near.group_by("station_id", "obs_timestamp_utc").len().filter(pl.col("len") > 1)
            .sort("station_id", "obs_timestamp_utc"))
    if dups.height:
        shown = "; ".join(f"{s} {t.isoformat()} (x{n})" for s, t, n in dups.head(5).iter_rows())
        raise GridFeatureError(
            f"observations_clean has duplicate rows for {dups['station_id'].n_unique()} station(s) near "
            f"{valid_time:%Y-%m-%dT%H}Z (more than one row with the same station and timestamp): {shown}"
        )
    return (near.with_columns((pl.col("obs_timestamp_utc") - vt).abs().alias("_offset"))
            .sort("station_id", "_offset", "obs_timestamp_utc")
            .unique("station_id", keep="first", maintain_order=True)
            .drop("_offset"))


def hour_observations(observations: pl.LazyFrame | None, valid_time: dt.datetime, station_ids: list[str]) -> pl.DataFrame:
    """Each station's observation for ``valid_time``: ``nearest_observations`` of one hour."""
    return nearest_observations(run_observations(observations, [valid_time], station_ids), valid_time)


def parse_time(text: str, what: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise GridFeatureError(f"hrrr_fields {what} {text!r} is not an ISO timestamp") from None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def check_fields_grid(fields_meta: dict[str, str], index: pl.DataFrame, partition_key: str) -> None:
    index_grids = index["grid_id"].unique().to_list() if "grid_id" in index.columns else []
    fields_grid = fields_meta.get("grid_id")
    if not fields_grid:
        raise GridFeatureError(f"hrrr_fields partition {partition_key} has no grid_id in its metadata")
    if index_grids != [fields_grid]:
        raise GridFeatureError(
            f"hrrr_fields partition {partition_key} is on grid {fields_grid[:16]}, but station_grid_index was "
            f"built on grid {', '.join(g[:16] for g in index_grids) or '(none)'}; rematerialise station_grid_index"
        )


def fields_times(fields_meta: dict[str, str]) -> tuple[dt.datetime, dt.datetime, int]:
    """(valid_time, run_time, forecast_hour) of an hrrr_fields partition, from its metadata."""
    valid_time = parse_time(fields_meta.get("valid_time", ""), "valid_time")
    run_time = parse_time(fields_meta.get("run_time", ""), "run_time")
    forecast_hour = int(fields_meta.get("forecast_hour", round((valid_time - run_time).total_seconds() / 3600)))
    return valid_time, run_time, forecast_hour


def build_grid_join(fields: pl.LazyFrame, fields_meta: dict[str, str], index: pl.DataFrame,
                    observations: pl.LazyFrame | pl.DataFrame | None, partition_key: str,
                    run_obs: pl.DataFrame | None = None) -> pl.DataFrame:
    """One partition's feature table. ``run_obs`` (from ``run_observations``, read once for a
    run of several partitions) is used when given; otherwise ``observations`` is read here."""
    check_fields_grid(fields_meta, index, partition_key)
    valid_time, run_time, forecast_hour = fields_times(fields_meta)

    variables = field_variables(dict(fields.collect_schema()))
    if not variables:
        raise GridFeatureError(f"hrrr_fields partition {partition_key} has no float variable columns")
    frame = fields.select(variables).collect()
    ids, cells, k = gi.index_window_arrays(index)
    matrix = nb.field_arrays(frame, variables)  # zero-copy column views
    feats = nb.station_features(ids, matrix, variables, cells, k)
    inc = index.filter(pl.col("included")).select("station_id", "grid_y", "grid_x", "distance_m")
    head = inc.with_columns(
        pl.lit(valid_time).cast(pl.Datetime("us", "UTC")).alias("valid_time"),
        pl.lit(run_time).cast(pl.Datetime("us", "UTC")).alias("run_time"),
        pl.lit(forecast_hour, dtype=pl.Int32).alias("forecast_hour"),
    ).select("station_id", "valid_time", "run_time", "forecast_hour", "grid_y", "grid_x", "distance_m")
    if run_obs is None:
        run_obs = run_observations(observations, [valid_time], inc["station_id"].to_list())
    obs = nearest_observations(run_obs, valid_time)
    return head.join(feats, on="station_id", how="left").join(obs, on="station_id", how="left").sort("station_id")


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=JOIN_CODE_VERSION,
    required_resource_keys={"store"},
    ins={
        "hrrr_fields": dg.AssetIn(),
        "station_grid_index": dg.AssetIn(),
        "observations_clean": dg.AssetIn(partition_mapping=dg.AllPartitionMapping(),
                                         metadata={"allow_missing_partitions": True}),
    },
    description="Per station and hour: centre, window mean/min/max/std and west-east / south-north "
                "gradients of every decoded HRRR field, joined to the station's observation nearest "
                "the valid time (within 30 minutes).",
)
def grid_join_features(context: dg.AssetExecutionContext, hrrr_fields: dict[str, pl.LazyFrame],
                       station_grid_index: pl.DataFrame, observations_clean: pl.LazyFrame) -> dg.Output:
    """Every partition of the run (one, or a range in a single-run backfill), as
    ``{partition_key: frame}``. Observations are read once for the whole run. Every partition
    is checked before the step fails, naming each failed partition; nothing is written then."""
    pks = list(context.partition_keys)
    store_resource = context.resources.store
    store = store_resource.get_store()
    metas: dict[str, dict[str, str]] = {}
    failures: dict[str, str] = {}
    for pk in pks:
        try:
            meta = parquet_key_value_metadata(store, partition_object_key(FIELDS_KEY, pk))
            check_fields_grid(meta, station_grid_index, pk)
            fields_times(meta)
            metas[pk] = meta
        except GridFeatureError as exc:
            failures[pk] = str(exc)
    inc_ids = station_grid_index.filter(pl.col("included"))["station_id"].to_list()
    run_obs = run_observations(observations_clean, [fields_times(m)[0] for m in metas.values()], inc_ids)

    out: dict[str, pl.DataFrame] = {}
    for pk, meta in metas.items():
        try:
            out[pk] = build_grid_join(hrrr_fields[pk], meta, station_grid_index, None, pk, run_obs=run_obs)
        except GridFeatureError as exc:
            failures[pk] = str(exc)
    if failures:
        failed = [pk for pk in pks if pk in failures]
        head = (f"grid_join_features: {len(failed)} of {len(pks)} partitions failed ({', '.join(failed)}); "
                "nothing is written for this run. " if len(pks) > 1 else "")
        raise dg.Failure(description=head + "; ".join(failures[pk] for pk in failed),
                         metadata={"failed_partitions": dg.MetadataValue.json({pk: failures[pk] for pk in failed}),
                                   "good_partitions": dg.MetadataValue.json([pk for pk in pks if pk not in failures])})

    with_obs = {pk: int(f["obs_timestamp_utc"].is_not_null().sum()) for pk, f in out.items()}
    first = metas[pks[0]]
    md: dict = {
        "stations": out[pks[0]].height,
        "stations_with_observation": sum(with_obs.values()),
        "grid_id": first.get("grid_id", ""),
        "variables": dg.MetadataValue.json(field_variables(dict(hrrr_fields[pks[0]].collect_schema()))),
        "partition_count": len(pks),
    }
    if len(pks) == 1:
        md["valid_time"] = first.get("valid_time", "")
    else:
        md["partitions"] = dg.MetadataValue.json({pk: {"valid_time": metas[pk].get("valid_time", ""),
                                                       "stations_with_observation": with_obs[pk]} for pk in pks})
    return dg.Output({pk: out[pk] for pk in pks}, metadata=md)
