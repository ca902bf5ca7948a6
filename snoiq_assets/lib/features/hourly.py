"""The hourly forecast training table: one row per station, forecast cycle and lead hour.

No Dagster here. This is the table a model "on grid-join features" trains on, and the same
function builds the rows a champion scores for a new feature partition, so training and
prediction can never disagree about what a feature means. The input is grid_join_features or
point forecasts in its shape (``lib.features.point_forecasts``): ``station_id``, ``run_time``
(the cycle), ``forecast_hour`` (the lead), ``valid_time`` and ``<var>__<stat>`` columns.

A row for station S, cycle C and lead L (valid at V = C + L) holds
- ``grid_<var>__<stat>``: the forecast for V from cycle C (known at C);
- ``forecast_hour``, ``hour_sin``/``hour_cos`` (hour of day of V, UTC), ``season_sin``/``season_cos``;
- ``target__lag<k>h``: the station's last report at or before C - k hours (within
  ``LAG_TOLERANCE``). Lags are relative to the CYCLE, never to V: a 12-hour forecast issued at
  00Z uses what was observed up to 00Z, not up to 11Z. ``target__lag0h`` is the last report at
  or before the cycle itself (persistence's value);
- for a target with an NWP counterpart (``NWP_BASELINES``): ``nwp_at_cycle`` (the cycle's own
  analysis, lead 0, of that variable in the target's units) and ``obs_minus_nwp_at_cycle``
  (``target__lag0h`` minus it: how wrong the model is right now at the station);
- ``cycle_time`` and ``target``: the station's report nearest V within ``TARGET_TOLERANCE``;
- baselines, not features: ``persistence`` (= ``target__lag0h``) and ``raw_forecast`` (the NWP
  value at the station for C and L, in the target's units).
Nothing observed after C is a feature.

``leads`` chooses the lead hours (lead as a feature, one model for the group); None keeps every
lead in the input. A grid feature missing in some rows (a variable not decoded for some hours)
never removes the feature from the table: ``missing="drop"`` drops those rows, ``"fill"`` keeps
them with the value missing (NaN, which every model type handles), and the info says how many.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Sequence

import polars as pl

from snoiq_assets.lib.features.training import TARGETS, TrainingTableError, validate_target
from snoiq_assets.lib.stations.formats import INSTANT_RESOLUTIONS

HOURLY = "hourly"
DEFAULT_HOURLY_LAGS = (0, 1, 2, 3, 6, 12, 24)
_LAG = re.compile(r"^target__lag(\d+)h$")
UTC = pl.Datetime("us", "UTC")
TARGET_TOLERANCE = dt.timedelta(minutes=30)
LAG_TOLERANCE = dt.timedelta(hours=1)
MISSING_POLICIES = ("drop", "fill")
# Target -> (grid_join_features column of the NWP forecast of it, offset to the target's unit).
NWP_BASELINES: dict[str, tuple[str, float]] = {
    "air_temp_c": ("tmp_2m_k__centre", -273.15),
    "surface_temp_c": ("tmp_sfc_k__centre", -273.15),
    "dew_point_c": ("dpt_2m_k__centre", -273.15),
}
# Targets whose hourly value is a single observation (sums and means of one hour are the value).
HOURLY_TARGETS = tuple(t for t, (_src, how) in TARGETS.items() if how in ("sum", "mean") and t != "outcome")


def check_hourly_target(target: str) -> str:
    validate_target(target)
    if target not in HOURLY_TARGETS:
        raise TrainingTableError(
            f"target {target!r} is not available hourly; hourly targets: {', '.join(HOURLY_TARGETS)}"
        )
    return target


def lags_of(features: Sequence[str]) -> list[int]:
    """The hourly target lags a feature list uses (``target__lag3h`` -> 3)."""
    return sorted(int(m.group(1)) for f in features if (m := _LAG.match(f)))


def grid_feature_columns(schema: pl.Schema) -> list[str]:
    """grid_join_features' neighbourhood columns (``<var>__<stat>``)."""
    return [n for n, t in schema.items() if "__" in n and t.is_numeric() and not n.startswith("obs_")]


def instant_observations(observations: pl.LazyFrame | None, source: str, stations: Sequence[str],
                         start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """(station_id, obs_time, value): single reports (hourly or sub-hourly) of ``source`` in
    [start, end], sorted by time; several reports at one instant are averaged."""
    empty = pl.DataFrame(schema={"station_id": pl.Utf8, "obs_time": UTC, "value": pl.Float64})
    if observations is None:
        return empty
    schema = observations.collect_schema()
    if "station_id" not in schema or "timestamp_utc" not in schema or source not in schema:
        return empty
    lf = observations
    if "resolution" in schema:
        lf = lf.filter(pl.col("resolution").is_in(INSTANT_RESOLUTIONS))
    ts = pl.col("timestamp_utc").cast(UTC)
    return (
        lf.filter(pl.col("station_id").is_in(list(stations)) & (ts >= pl.lit(start).cast(UTC)) & (ts <= pl.lit(end).cast(UTC)))
        .select(pl.col("station_id").cast(pl.Utf8), ts.alias("obs_time"), pl.col(source).cast(pl.Float64).alias("value"))
        .drop_nulls("value")
        .group_by("station_id", "obs_time").agg(pl.col("value").mean())
        .sort("obs_time")
        .collect()
    )


def _asof(rows: pl.DataFrame, obs: pl.DataFrame, at: pl.Expr, name: str, strategy: str, tolerance: dt.timedelta) -> pl.DataFrame:
    """``rows`` plus ``name``: the report of ``obs`` matched to time ``at`` per station."""
    left = rows.with_row_index("_i").with_columns(at.alias("_at")).sort("_at")
    right = obs.rename({"station_id": "location", "value": name})
    out = left.join_asof(right, left_on="_at", right_on="obs_time", by="location", strategy=strategy,
                         tolerance=tolerance, check_sortedness=False)
    return out.sort("_i").drop("_i", "_at", "obs_time")


def hourly_feature_rows(grid: pl.LazyFrame | pl.DataFrame, observations: pl.LazyFrame | None, target: str,
                        lags: Sequence[int] = DEFAULT_HOURLY_LAGS, locations: Sequence[str] | None = None,
                        start: dt.date | None = None, end: dt.date | None = None, *,
                        leads: Sequence[int] | None = None) -> tuple[pl.DataFrame, list[str]]:
    """(rows, feature columns): location, cycle_time, forecast_hour, period_start (the valid
    hour), features, persistence, raw_forecast, target. ``locations`` None keeps every station
    with an observed target; ``start``/``end`` bound the valid date."""
    check_hourly_target(target)
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in lags):
        raise TrainingTableError(f"hourly lags must be whole numbers of hours >= 0; got {list(lags)}")
    if leads is not None and any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in leads):
        raise TrainingTableError(f"leads must be whole numbers of hours >= 0; got {list(leads)}")
    source = TARGETS[target][0]
    lf = grid.lazy()
    schema = lf.collect_schema()
    missing = [c for c in ("station_id", "valid_time", "run_time", "forecast_hour") if c not in schema]
    if missing:
        raise TrainingTableError(f"grid_join_features lacks column(s) {missing}; it has {list(schema)[:12]}")
    grid_cols = grid_feature_columns(schema)
    if not grid_cols:
        raise TrainingTableError("grid_join_features has no neighbourhood feature columns (<var>__<stat>)")
    obs_col = f"obs_{source}"
    if locations is not None:
        lf = lf.filter(pl.col("station_id").is_in(list(locations)))
    vt = pl.col("valid_time").cast(UTC)
    if start is not None:
        lf = lf.filter(vt.dt.date() >= start)
    if end is not None:
        lf = lf.filter(vt.dt.date() <= end)
    nwp = NWP_BASELINES.get(target)
    nwp_col, nwp_offset = nwp if nwp and nwp[0] in schema else (None, 0.0)
    base = (
        lf.select(
            pl.col("station_id").cast(pl.Utf8).alias("location"), pl.col("run_time").cast(UTC).alias("cycle_time"),
            pl.col("forecast_hour").cast(pl.Int32), vt.alias("period_start"),
            *[pl.col(c).cast(pl.Float64).alias(f"grid_{c}") for c in grid_cols],
            (pl.col(obs_col).cast(pl.Float64) if obs_col in schema else pl.lit(None, dtype=pl.Float64)).alias("_joined"),
        )
        .unique(["location", "cycle_time", "forecast_hour"], keep="first")
        .sort("location", "cycle_time", "forecast_hour")
        .collect()
    )
    # The cycle's own analysis (lead 0) of the target's NWP variable, before leads are chosen.
    analysis = (base.filter(pl.col("forecast_hour") == 0)
                .select("location", "cycle_time", (pl.col(f"grid_{nwp_col}") + nwp_offset).alias("nwp_at_cycle"))
                if nwp_col else None)
    rows = base.filter(pl.col("forecast_hour").is_in(list(leads))) if leads is not None else base
    lag_ks = sorted(set(lags))
    stations = rows["location"].unique().to_list()
    if rows.height:
        lo = rows["cycle_time"].min() - dt.timedelta(hours=max(lag_ks, default=0)) - LAG_TOLERANCE
        hi = rows["period_start"].max() + TARGET_TOLERANCE
        obs = instant_observations(observations, source, stations, lo, hi)
    else:
        obs = instant_observations(None, source, stations, dt.datetime.now(dt.timezone.utc), dt.datetime.now(dt.timezone.utc))
    if observations is not None and obs.height:
        rows = _asof(rows, obs, pl.col("period_start"), "target", "nearest", TARGET_TOLERANCE)
    else:
        rows = rows.with_columns(pl.col("_joined").alias("target"))
    rows = rows.drop("_joined")
    # Persistence's value is always there (a baseline); lag 0 is also a feature only when asked for.
    for k in sorted({0, *lag_ks}):
        rows = _asof(rows, obs, pl.col("cycle_time") - pl.duration(hours=k), f"target__lag{k}h", "backward", LAG_TOLERANCE)
    rows = rows.rename({"target__lag0h": "persistence"})
    if 0 in lag_ks:
        rows = rows.with_columns(pl.col("persistence").alias("target__lag0h"))
    if locations is None and rows.height:
        with_target = rows.group_by("location").agg(pl.col("target").is_not_null().any().alias("_any")).filter("_any")
        if with_target.height:  # none at all: kept, so the caller can say the target is missing
            rows = rows.filter(pl.col("location").is_in(with_target["location"].implode()))
    hod = pl.col("period_start").dt.hour().cast(pl.Float64) * (2 * math.pi / 24)
    doy = pl.col("period_start").dt.ordinal_day().cast(pl.Float64) * (2 * math.pi / 365.25)
    rows = rows.with_columns(pl.col("forecast_hour").cast(pl.Float64), hod.sin().alias("hour_sin"), hod.cos().alias("hour_cos"),
                             doy.sin().alias("season_sin"), doy.cos().alias("season_cos"))
    lag_cols = [f"target__lag{k}h" for k in lag_ks]
    extra: list[str] = []
    if analysis is not None:
        rows = rows.join(analysis, on=["location", "cycle_time"], how="left", maintain_order="left")
        extra = ["nwp_at_cycle"]
        if 0 in lag_ks:
            rows = rows.with_columns((pl.col("persistence") - pl.col("nwp_at_cycle")).alias("obs_minus_nwp_at_cycle"))
            extra.append("obs_minus_nwp_at_cycle")
    rows = rows.with_columns(
        ((pl.col(f"grid_{nwp_col}") + nwp_offset) if nwp_col else pl.lit(None, dtype=pl.Float64)).alias("raw_forecast"),
    )
    features = ([f"grid_{c}" for c in grid_cols] + ["forecast_hour", "hour_sin", "hour_cos", "season_sin", "season_cos"]
                + lag_cols + extra)
    return (rows.select("location", "cycle_time", "period_start", *features, "persistence", "raw_forecast", "target"),
            features)


def handle_missing_features(table: pl.DataFrame, features: list[str], missing: str = "drop") -> tuple[pl.DataFrame, dict]:
    """Rows lacking a grid feature (a variable not decoded for that cycle or lead): ``drop``
    them or ``fill`` (keep, value missing). Never drops the feature. Returns (table, counts)."""
    if missing not in MISSING_POLICIES:
        raise TrainingTableError(f"missing must be one of {', '.join(MISSING_POLICIES)}; got {missing!r}")
    grid = [f for f in features if f.startswith("grid_")]
    if not grid or table.height == 0:
        return table, {"policy": missing, "rows_affected": 0, "by_feature": {}}
    per = table.select([pl.col(f).is_null().sum().alias(f) for f in grid]).row(0, named=True)
    by_feature = {f: int(n) for f, n in per.items() if n}
    any_missing = pl.any_horizontal([pl.col(f).is_null() for f in grid])
    affected = int(table.select(any_missing.sum()).item())
    if missing == "drop":
        table = table.filter(~any_missing)
    return table, {"policy": missing, "rows_affected": affected, "by_feature": by_feature}


def build_hourly_table(grid: pl.LazyFrame, observations: pl.LazyFrame | None, target: str,
                       lags: Sequence[int] = DEFAULT_HOURLY_LAGS, locations: Sequence[str] | None = None,
                       start: dt.date | None = None, end: dt.date | None = None, *,
                       leads: Sequence[int] | None = None, missing: str = "drop") -> tuple[pl.DataFrame, dict]:
    """(table, info) in the shape of the daily training table, with ``resolution`` "hourly"."""
    if missing not in MISSING_POLICIES:
        raise TrainingTableError(f"missing must be one of {', '.join(MISSING_POLICIES)}; got {missing!r}")
    table, features = hourly_feature_rows(grid, observations, target, lags, locations, start, end, leads=leads)
    if table.height == 0:
        where = f" for locations {list(locations)}" if locations else ""
        which = f" at leads {list(leads)}" if leads is not None else ""
        raise TrainingTableError(
            f"grid_join_features has no rows{where}{which} between {start or 'the start'} and {end or 'the end'}"
        )
    # A grid feature null in every row carries nothing to learn from (the hourly amounts of a
    # table of f00 rows only: no forecast hour has passed). It is left out, named in the info;
    # a feature missing in only some rows is handled by ``missing`` as before.
    empty = [f for f in features if f.startswith("grid_") and table[f].null_count() == table.height]
    table, features = table.drop(empty), [f for f in features if f not in empty]
    table, missing_info = handle_missing_features(table, features, missing)
    if table.height == 0:
        raise TrainingTableError(f"every row lacks some grid feature ({missing_info['by_feature']}); "
                                 "decode the same variables for every hour, or build with missing='fill'")
    if table["target"].is_not_null().sum() == 0:
        raise TrainingTableError(
            f"target {target!r}: no station has an observation near these valid times "
            f"({TARGETS[target][0]} in observations_clean, or obs_{TARGETS[target][0]} in grid_join_features)"
        )
    info = {
        "target": target,
        "target_source": TARGETS[target][0],
        "target_aggregation": "hourly observation",
        "resolution": HOURLY,
        "resolution_days": 0,
        "forecast": True,
        "leads": sorted(table["forecast_hour"].cast(pl.Int64).unique().to_list()),
        "lags_hours": sorted(set(lags)),
        "lags_relative_to": "cycle_time",
        "feature_columns": features,
        "nwp_baseline": NWP_BASELINES[target][0] if table["raw_forecast"].is_not_null().any() else None,
        "missing_features": missing_info,
        "features_null_in_every_row": empty,
        "feature_set": "grid",
        "locations": sorted(table["location"].unique().to_list()),
        "period_start_min": table["period_start"].min().isoformat(),
        "period_start_max": table["period_start"].max().isoformat(),
        "rows": table.height,
        "rows_with_target": int(table["target"].is_not_null().sum()),
    }
    return table, info
