"""The hourly training table: one row per station and HRRR valid hour, from grid_join_features.

No Dagster here. This is the table a model "on grid-join features" trains on, and the same
function builds the rows a champion scores for a new feature partition, so training and
prediction can never disagree about what a feature means.

A row for station S at valid hour H holds
- ``grid_<var>__<stat>``: the station's 5x5 HRRR neighbourhood statistics valid at H (a
  forecast, known before H);
- ``forecast_hour``, ``hour_sin``/``hour_cos`` (hour of day, UTC) and ``season_sin``/``season_cos``;
- ``target__lag<k>h``: the station's observed target k hours before H (from the hourly
  observations, each report rounded to the nearest hour);
- ``target``: the station's observation at H as joined by grid_join_features (the report
  nearest H within 30 minutes), null when there is none.
Nothing observed at H or later is a feature.

When two HRRR cycles give the same valid hour (cycle 00Z f12 and 12Z f00) the row with the
shortest forecast lead is kept: the freshest forecast of that hour.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Sequence

import polars as pl

from snoiq_assets.lib.features.training import TARGETS, TrainingTableError, validate_target

HOURLY = "hourly"
DEFAULT_HOURLY_LAGS = (1, 2, 3, 6, 12, 24)
_LAG = re.compile(r"^target__lag(\d+)h$")
UTC = pl.Datetime("us", "UTC")
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


def hourly_observations(observations: pl.LazyFrame, source: str, stations: Sequence[str] | None,
                        start: dt.datetime | None, end: dt.datetime | None) -> pl.DataFrame:
    """(station_id, hour, value): hourly reports of ``source`` rounded to the nearest hour
    (several reports in one hour are averaged), within [start, end] when given."""
    schema = observations.collect_schema()
    if "station_id" not in schema or "timestamp_utc" not in schema or source not in schema:
        return pl.DataFrame(schema={"station_id": pl.Utf8, "hour": UTC, "value": pl.Float64})
    lf = observations
    if "resolution" in schema:
        lf = lf.filter(pl.col("resolution") == "hourly")
    if stations is not None:
        lf = lf.filter(pl.col("station_id").is_in(list(stations)))
    ts = pl.col("timestamp_utc").cast(UTC)
    if start is not None:
        lf = lf.filter(ts >= pl.lit(start - dt.timedelta(minutes=30)).cast(UTC))
    if end is not None:
        lf = lf.filter(ts <= pl.lit(end + dt.timedelta(minutes=30)).cast(UTC))
    return (
        lf.select(pl.col("station_id").cast(pl.Utf8), ts.dt.round("1h").alias("hour"), pl.col(source).cast(pl.Float64).alias("value"))
        .drop_nulls("value")
        .group_by("station_id", "hour").agg(pl.col("value").mean())
        .collect()
    )


def hourly_feature_rows(grid: pl.LazyFrame | pl.DataFrame, observations: pl.LazyFrame | None, target: str,
                        lags: Sequence[int] = DEFAULT_HOURLY_LAGS, locations: Sequence[str] | None = None,
                        start: dt.date | None = None, end: dt.date | None = None) -> tuple[pl.DataFrame, list[str]]:
    """(rows, feature columns) from grid_join_features rows: location, period_start (the valid
    hour, UTC), features, target. ``locations`` None keeps every station with an observed target."""
    check_hourly_target(target)
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in lags):
        raise TrainingTableError(f"hourly lags must be positive whole numbers of hours; got {list(lags)}")
    source = TARGETS[target][0]
    lf = grid.lazy()
    schema = lf.collect_schema()
    missing = [c for c in ("station_id", "valid_time", "forecast_hour") if c not in schema]
    if missing:
        raise TrainingTableError(f"grid_join_features lacks column(s) {missing}; it has {list(schema)[:12]}")
    grid_cols = grid_feature_columns(schema)
    if not grid_cols:
        raise TrainingTableError("grid_join_features has no neighbourhood feature columns (<var>__<stat>)")
    obs_col = f"obs_{source}"
    target_expr = pl.col(obs_col).cast(pl.Float64) if obs_col in schema else pl.lit(None, dtype=pl.Float64)
    if locations is not None:
        lf = lf.filter(pl.col("station_id").is_in(list(locations)))
    vt = pl.col("valid_time").cast(UTC)
    if start is not None:
        lf = lf.filter(vt.dt.date() >= start)
    if end is not None:
        lf = lf.filter(vt.dt.date() <= end)
    rows = (
        lf.select(
            pl.col("station_id").cast(pl.Utf8).alias("location"), vt.alias("period_start"),
            pl.col("forecast_hour").cast(pl.Float64),
            *[pl.col(c).cast(pl.Float64).alias(f"grid_{c}") for c in grid_cols],
            target_expr.alias("target"),
        )
        # The freshest forecast of each valid hour (shortest lead), then a stable order.
        .sort("location", "period_start", "forecast_hour")
        .unique(["location", "period_start"], keep="first", maintain_order=True)
        .collect()
    )
    if locations is None and rows.height:
        with_target = rows.group_by("location").agg(pl.col("target").is_not_null().any().alias("_any")).filter("_any")
        if with_target.height:  # none at all: kept, so the caller can say the target is missing
            rows = rows.filter(pl.col("location").is_in(with_target["location"].implode()))
    lag_cols = [f"target__lag{k}h" for k in sorted(set(lags))]
    if rows.height and lag_cols:
        lo, hi = rows["period_start"].min(), rows["period_start"].max()
        obs = (hourly_observations(observations, source, rows["location"].unique().to_list(),
                                   lo - dt.timedelta(hours=max(lags)), hi)
               if observations is not None else None)
        for k, name in zip(sorted(set(lags)), lag_cols):
            if obs is None or obs.height == 0:
                rows = rows.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
                continue
            shifted = obs.select(pl.col("station_id").alias("location"),
                                 (pl.col("hour") + pl.duration(hours=k)).alias("period_start"), pl.col("value").alias(name))
            rows = rows.join(shifted, on=["location", "period_start"], how="left", maintain_order="left")
    else:
        rows = rows.with_columns([pl.lit(None, dtype=pl.Float64).alias(n) for n in lag_cols])
    hod = pl.col("period_start").dt.hour().cast(pl.Float64) * (2 * math.pi / 24)
    doy = pl.col("period_start").dt.ordinal_day().cast(pl.Float64) * (2 * math.pi / 365.25)
    rows = rows.with_columns(hod.sin().alias("hour_sin"), hod.cos().alias("hour_cos"),
                             doy.sin().alias("season_sin"), doy.cos().alias("season_cos"))
    features = [f"grid_{c}" for c in grid_cols] + ["forecast_hour", "hour_sin", "hour_cos", "season_sin", "season_cos"] + lag_cols
    return rows.select("location", "period_start", *features, "target"), features


def _common_grid_features(table: pl.DataFrame, features: list[str]) -> tuple[pl.DataFrame, list[str], dict]:
    """Drop grid features missing from whole hours (a variable not decoded for some cycles).

    A model trained on them would ask every new partition for a variable that some hours do
    not have, and be refused there; what every hour has is the feature set. Returns the table,
    the features kept and {dropped feature: hours without it}."""
    grid = [f for f in features if f.startswith("grid_")]
    if not grid or table.height == 0:
        return table, features, {}
    absent = (table.group_by("period_start").agg([pl.col(f).is_not_null().any().alias(f) for f in grid])
              .select([(~pl.col(f)).sum().alias(f) for f in grid]).row(0, named=True))
    dropped = {f: int(n) for f, n in absent.items() if n}
    if len(dropped) == len(grid):
        raise TrainingTableError("no grid variable is present in every hour of grid_join_features; "
                                 "decode the same variables for every hour (hrrr_fields variables)")
    kept = [f for f in features if f not in dropped]
    return table.drop(list(dropped)), kept, dropped


def build_hourly_table(grid: pl.LazyFrame, observations: pl.LazyFrame | None, target: str,
                       lags: Sequence[int] = DEFAULT_HOURLY_LAGS, locations: Sequence[str] | None = None,
                       start: dt.date | None = None, end: dt.date | None = None) -> tuple[pl.DataFrame, dict]:
    """(table, info) in the shape of the daily training table, with ``resolution`` "hourly"."""
    table, features = hourly_feature_rows(grid, observations, target, lags, locations, start, end)
    table, features, dropped = _common_grid_features(table, features)
    if table.height == 0:
        where = f" for locations {list(locations)}" if locations else ""
        raise TrainingTableError(
            f"grid_join_features has no rows{where} between {start or 'the start'} and {end or 'the end'}"
        )
    if table["target"].is_not_null().sum() == 0:
        raise TrainingTableError(
            f"target {target!r}: no station has an observation joined to these grid hours "
            f"(column obs_{TARGETS[target][0]} is all null)"
        )
    info = {
        "target": target,
        "target_source": TARGETS[target][0],
        "target_aggregation": "hourly observation",
        "resolution": HOURLY,
        "resolution_days": 0,
        "lags_hours": sorted(set(lags)),
        "feature_columns": features,
        "dropped_grid_features": dropped,
        "feature_set": "grid",
        "locations": sorted(table["location"].unique().to_list()),
        "period_start_min": table["period_start"].min().isoformat(),
        "period_start_max": table["period_start"].max().isoformat(),
        "rows": table.height,
        "rows_with_target": int(table["target"].is_not_null().sum()),
    }
    return table, info
