"""The grid join: each station's k x k neighbourhood statistics of every HRRR field for one
valid hour, joined to the station's observation nearest that hour. No Dagster here; the assets
in defs/features/assets.py wire it (see their docstrings for the tables' columns).
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pyarrow as pa

from snoiq_assets.lib.features import grid_index as gi
from snoiq_assets.lib.features import neighbourhood as nb
from snoiq_assets.lib.features import station_windows as sw
from snoiq_assets.lib.hrrr.grid import earth_of
from snoiq_assets.lib.stations.schema import VARIABLES as OBS_VARIABLES
from snoiq_assets.lib.stations.formats import INSTANT_RESOLUTIONS

NON_FIELD_COLUMNS = {"y", "x", "latitude", "longitude", sw.CELL_COLUMN}
JOIN_CODE_VERSION = "grid_join-1"


class GridFeatureError(ValueError):
    """Bad input to the grid features: names what is wrong."""


def grid_arrays(grid: pl.DataFrame, shape_text: str) -> tuple[np.ndarray, np.ndarray]:
    """(ny, nx) lat/lon from the row-major ``hrrr_grid`` table, checking its order."""
    ny, nx = (int(v) for v in shape_text.split(","))
    if grid.height != ny * nx:
        raise GridFeatureError(f"hrrr_grid has {grid.height} rows, its shape metadata says {ny}x{nx}")
    flat = grid["y"].cast(pl.Int64).to_numpy() * nx + grid["x"].cast(pl.Int64).to_numpy()
    if not np.array_equal(flat, np.arange(ny * nx)):
        raise GridFeatureError("hrrr_grid rows are not in row-major (y, x) order")
    return grid["latitude"].to_numpy().reshape(ny, nx), grid["longitude"].to_numpy().reshape(ny, nx)


def grid_identity(grid_meta: dict[str, str]) -> tuple[str, str]:
    """(grid_id, shape) from ``hrrr_grid``'s Parquet metadata, or GridFeatureError."""
    for key in ("grid_id", "shape"):
        if key not in grid_meta:
            raise GridFeatureError(f"hrrr_grid has no {key!r} in its Parquet metadata (has {sorted(grid_meta)})")
    return grid_meta["grid_id"], grid_meta["shape"]


def build_index_table(grid: pl.DataFrame, grid_meta: dict[str, str], stations: pl.DataFrame, window: int,
                      max_distance_m: float | None, stations_hash: str, inputs_hash: str) -> tuple[pa.Table, dict]:
    """``station_grid_index`` as an Arrow table (build parameters and hashes in its schema
    metadata) and a summary for the run's metadata. Distances are on the grid's own figure of
    the earth (its projection metadata); ``max_distance_m`` None: 3/4 of the cell diagonal."""
    grid_id, shape = grid_identity(grid_meta)
    lats, lons = grid_arrays(grid, shape)
    try:
        earth = earth_of(json.loads(grid_meta.get("projection", "{}")))
    except ValueError as exc:
        raise GridFeatureError(f"hrrr_grid: {exc}") from None
    index = gi.build_station_grid_index(stations, gi.GridLocator(lats, lons, earth), window=window,
                                        max_distance_m=max_distance_m)
    index = index.with_columns(pl.lit(grid_id).alias("grid_id"))
    n_inc = int(index["included"].sum())
    excluded = index.filter(~pl.col("included"))
    meta = {
        "grid_id": grid_id, "shape": shape, "window": str(window),
        "max_distance_m": "cell-diagonal" if max_distance_m is None else str(max_distance_m),
        "earth": json.dumps(earth, sort_keys=True), "station_list_hash": stations_hash,
        "inputs_hash": inputs_hash, "code_version": gi.INDEX_CODE_VERSION,
        "stations_included": str(n_inc), "stations_excluded": str(excluded.height),
    }
    summary = {
        "stations_included": n_inc, "stations_excluded": excluded.height,
        "excluded_by_reason": dict(excluded.group_by(pl.col("exclusion_reason").str.split(":").list.first()).len().rows()),
        "max_distance_to_cell_m": round(float(index.filter(pl.col("included"))["distance_m"].max() or 0.0), 1),
    }
    return index.to_arrow().replace_schema_metadata(meta), summary


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
        lf = lf.filter(pl.col("resolution").is_in(INSTANT_RESOLUTIONS))
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


def window_arrays(table: pa.Table, variables: list[str], cells: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Only the cells the station windows use: one float32 array per variable over the distinct
    window cells (nulls as NaN), and ``cells`` renumbered into them (-1, off the grid, kept).

    ``table`` is a whole-grid lead (its window cells are taken here, without converting 2
    million cells per variable for a few thousand) or that lead's station windows
    (``lib/features/station_windows.py``: the cells already taken when it was decoded). The
    statistics are the same either way."""
    if sw.CELL_COLUMN in table.column_names:
        renumbered = sw.positions_in(table, cells)
        if renumbered is None:
            raise GridFeatureError("the station windows lack cells of the current station_grid_index "
                                   "(taken for another station list); read the whole lead instead")
        small = table
    else:
        used = np.unique(cells[cells >= 0])
        small = table.select(variables).take(pa.array(used))
        renumbered = np.where(cells >= 0, np.searchsorted(used, np.maximum(cells, 0)), -1)
    arrays = [np.asarray(small.column(v).cast(pa.float32()).to_numpy(), dtype=np.float32) for v in variables]
    return arrays, renumbered


def windows_unusable(windows: pa.Table, fields_meta: dict[str, str], cells: np.ndarray) -> str | None:
    """Why a lead's stored station windows cannot stand in for the stored lead, or None when
    they can: they must be taken from the same decoded lead (``fields_version``) and hold every
    window cell of the current index."""
    mine, theirs = sw.fields_version(fields_meta), sw.fields_version(windows.schema.metadata)
    if not mine or mine != theirs:
        return "taken from another decode of the lead" if mine else "the stored lead has no fields_version"
    if sw.positions_in(windows, cells) is None:
        return "taken for another station list"
    return None


def build_grid_join(fields: pl.LazyFrame | pa.Table, fields_meta: dict[str, str], index: pl.DataFrame,
                    observations: pl.LazyFrame | pl.DataFrame | None, partition_key: str,
                    run_obs: pl.DataFrame | None = None) -> pl.DataFrame:
    """One partition's feature table. ``fields`` is one lead's stored fields: an Arrow table
    (its station windows, or the whole lead read with pyarrow, about 2.5x faster than Polars on
    these wide float files; only the window cells are then converted) or a LazyFrame. ``run_obs`` (from
    ``run_observations``, read once for a run of several partitions) is used when given;
    otherwise ``observations`` is read here."""
    check_fields_grid(fields_meta, index, partition_key)
    valid_time, run_time, forecast_hour = fields_times(fields_meta)

    schema = (pl.from_arrow(fields.schema.empty_table()).schema if isinstance(fields, pa.Table)
              else fields.collect_schema())
    variables = field_variables(dict(schema))
    if not variables:
        raise GridFeatureError(f"hrrr_fields partition {partition_key} has no float variable columns")
    ids, cells, k = gi.index_window_arrays(index)
    if isinstance(fields, pa.Table):
        arrays, cells = window_arrays(fields, variables, cells)
    else:
        arrays = nb.field_arrays(fields.select(variables).collect(), variables)  # zero-copy column views
    feats = nb.station_features(ids, arrays, variables, cells, k)
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
