"""The training table: station observations (and grid features when they exist) aggregated to
``resolution_days``, with rolling means, lags and a target chosen by name.

No Dagster here. Inputs are Polars LazyFrames, so a caller can hand over a scan of many
Parquet files; the hourly grid features are aggregated to daily values chunk by chunk
(``daily_grid_features`` over an iterable of LazyFrames), so the whole hourly history of every
grid is never in memory at once.

Leakage rule: a row for period P holds
- same-period aggregates of the *exogenous* variables (every observed variable except the
  one the target is made from),
- rolling means over 3, 7, 14 and 30 days of every daily variable (target source included)
  over the days *before* P starts,
- lags 1..k of the period-level target and of the variables (the previous periods),
- season (sin/cos of the day of year of the period start).
So nothing in a row is computed from the target's own value in that period.

Periods: ``resolution_days`` 1 is daily, 7 is ISO weeks (starting Monday), 30 is calendar
months; any other positive whole number of days is fixed-length bins from 1970-01-01.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable, Sequence

import polars as pl

from snoiq_assets.lib.keys import safe_identifier

KEY_COLUMNS = ("station_id", "timestamp_utc")
IGNORED_OBS_COLUMNS = {"station_id", "timestamp_utc", "resolution", "station_name", "latitude", "longitude",
                       "elevation_m", "source", "source_format", "line_no", "qc_flag", "valid_time", "date"}
ROLLING_WINDOWS = (3, 7, 14, 30)

# Target name -> (source column, how the period value is made from daily values).
TARGETS: dict[str, tuple[str, str]] = {
    "precip_mm": ("precip_mm", "sum"),
    "snowfall_mm": ("snowfall_mm", "sum"),
    "snow_depth_mm": ("snow_depth_mm", "mean"),
    "snow_depth_change_mm": ("snow_depth_mm", "change"),
    "air_temp_c": ("air_temp_c", "mean"),
    "surface_temp_c": ("surface_temp_c", "mean"),  # ground or road-pavement surface temperature
    "dew_point_c": ("dew_point_c", "mean"),
    "outcome": ("outcome", "mean"),
}

SCHEMA_KEYS = {
    "target": "snoiq.target",
    "resolution_days": "snoiq.resolution_days",
    "feature_columns": "snoiq.feature_columns",
    "feature_set": "snoiq.feature_set",
    "log": "snoiq.build",
}


class TrainingTableError(ValueError):
    """Bad input to the training table; the message names what is wrong."""


@dataclass(frozen=True)
class TrainingTableSpec:
    target: str = "precip_mm"
    resolution_days: int = 1
    locations: tuple[str, ...] | None = None  # station ids; None = every station
    start: date | None = None
    end: date | None = None  # inclusive
    lags: tuple[int, ...] = (1, 2, 3)
    rolling_windows: tuple[int, ...] = ROLLING_WINDOWS
    min_coverage: float = 0.5  # fraction of days in a period that must be observed for its target
    outcome_agg: str = "mean"  # "mean" or "sum" for the outcome-of-interest series
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        validate_resolution(self.resolution_days)
        validate_target(self.target)
        if self.locations is not None:
            for loc in self.locations:
                safe_identifier(loc, "location")
        if any((not isinstance(k, int)) or k < 1 for k in self.lags):
            raise TrainingTableError(f"lags must be positive whole numbers of periods; got {list(self.lags)}")
        if any((not isinstance(w, int)) or w < 1 for w in self.rolling_windows):
            raise TrainingTableError(f"rolling windows must be positive whole numbers of days; got {list(self.rolling_windows)}")
        if not 0.0 < self.min_coverage <= 1.0:
            raise TrainingTableError(f"min_coverage must be in (0, 1]; got {self.min_coverage}")
        if self.outcome_agg not in ("mean", "sum"):
            raise TrainingTableError(f"outcome_agg must be 'mean' or 'sum'; got {self.outcome_agg!r}")
        if self.start and self.end and self.start > self.end:
            raise TrainingTableError(f"start {self.start} is after end {self.end}")


def validate_resolution(resolution_days) -> int:
    if isinstance(resolution_days, bool) or not isinstance(resolution_days, (int, float)):
        raise TrainingTableError(
            f"resolution_days must be a positive whole number of days (1 daily, 7 weekly, 30 monthly); got {resolution_days!r}"
        )
    if not math.isfinite(resolution_days) or resolution_days < 1 or int(resolution_days) != resolution_days:
        raise TrainingTableError(
            f"resolution_days must be a positive whole number of days (1 daily, 7 weekly, 30 monthly); got {resolution_days!r}"
        )
    return int(resolution_days)


def validate_target(target: str) -> str:
    if target not in TARGETS:
        raise TrainingTableError(f"unknown target {target!r}; known targets: {', '.join(sorted(TARGETS))}")
    return target


def _daily_agg(column: str) -> str:
    name = column.lower()
    if name.startswith(("precip", "snowfall", "rain")) or name.endswith("_sum"):
        return "sum"
    if "_max" in name or name.endswith("max"):
        return "max"
    if "_min" in name or name.endswith("min"):
        return "min"
    return "mean"


def _agg_expr(column: str, how: str) -> pl.Expr:
    col = pl.col(column)
    if how == "sum":
        # A sum over no observations is unknown, not zero.
        return pl.when(col.count() > 0).then(col.sum()).otherwise(None).alias(column)
    return getattr(col, how)().alias(column)


def observation_variables(schema: pl.Schema) -> list[str]:
    return [n for n, t in schema.items() if n not in IGNORED_OBS_COLUMNS and t.is_numeric()]


def check_observations(obs: pl.LazyFrame) -> list[str]:
    schema = obs.collect_schema()
    missing = [c for c in KEY_COLUMNS if c not in schema]
    if missing:
        raise TrainingTableError(f"observations_clean lacks column(s) {missing}; it has {list(schema)}")
    dtype = schema["timestamp_utc"]
    if not isinstance(dtype, pl.Datetime):
        raise TrainingTableError(f"observations_clean.timestamp_utc must be a Datetime (UTC); it is {dtype}")
    variables = observation_variables(schema)
    if not variables:
        raise TrainingTableError("observations_clean has no numeric variables to build features from")
    return variables


def _filtered(obs: pl.LazyFrame, spec: TrainingTableSpec, time_col: str, loc_col: str) -> pl.LazyFrame:
    if spec.locations is not None:
        obs = obs.filter(pl.col(loc_col).is_in(list(spec.locations)))
    if spec.start is not None:
        obs = obs.filter(pl.col(time_col).dt.date() >= spec.start)
    if spec.end is not None:
        obs = obs.filter(pl.col(time_col).dt.date() <= spec.end)
    return obs


def daily_observations(obs: pl.LazyFrame, spec: TrainingTableSpec) -> pl.DataFrame:
    """Per station and UTC day: sum (precipitation, snowfall), max, min or mean of each variable."""
    variables = check_observations(obs)
    obs = _filtered(obs, spec, "timestamp_utc", "station_id")
    dupes = (
        obs.group_by("station_id", "timestamp_utc").agg(pl.len().alias("n")).filter(pl.col("n") > 1)
        .sort("station_id", "timestamp_utc").head(3).collect(engine="streaming")
    )
    if dupes.height:
        examples = ", ".join(f"{r['station_id']} at {r['timestamp_utc']:%Y-%m-%dT%H:%M}Z ({r['n']} rows)" for r in dupes.iter_rows(named=True))
        raise TrainingTableError(f"observations_clean has duplicate hours for the same station: {examples}")
    casts = [pl.col(v).cast(pl.Float64) for v in variables]
    daily = (
        obs.select("station_id", pl.col("timestamp_utc").dt.date().alias("date"), *casts)
        .group_by("station_id", "date")
        .agg(*[_agg_expr(v, _daily_agg(v)) for v in variables], pl.len().alias("n_obs"))
        .collect(engine="streaming")
    )
    return daily.drop("n_obs")


def daily_grid_features(chunks: Iterable[pl.LazyFrame], stations: Sequence[str] | None = None) -> pl.DataFrame | None:
    """Daily means per station of the hourly ``<var>__<stat>`` grid features, chunk by chunk."""
    parts: list[pl.DataFrame] = []
    for lf in chunks:
        schema = lf.collect_schema()
        if "station_id" not in schema or "valid_time" not in schema:
            raise TrainingTableError(f"grid_join_features lacks station_id/valid_time; it has {list(schema)}")
        feats = [n for n, t in schema.items() if "__" in n and t.is_numeric()]
        if not feats:
            continue
        if stations is not None:
            lf = lf.filter(pl.col("station_id").is_in(list(stations)))
        parts.append(
            lf.group_by("station_id", pl.col("valid_time").dt.date().alias("date"))
            .agg(*[pl.col(f).cast(pl.Float64).sum().alias(f) for f in feats], *[pl.col(f).count().alias(f + "#n") for f in feats])
            .collect(engine="streaming")
        )
    if not parts:
        return None
    # A day can straddle two chunks: combine sums and counts, then divide.
    both = pl.concat(parts, how="diagonal_relaxed")
    feats = [c for c in both.columns if "__" in c and not c.endswith("#n")]
    merged = both.group_by("station_id", "date").agg(pl.col(c).sum() for c in both.columns if c not in ("station_id", "date"))
    return merged.select(
        "station_id", "date",
        *[pl.when(pl.col(f + "#n") > 0).then(pl.col(f) / pl.col(f + "#n")).alias(f"grid_{f}") for f in feats],
    )


def daily_outcome(outcome: pl.LazyFrame, spec: TrainingTableSpec) -> pl.DataFrame:
    """The outcome-of-interest series as (station_id, date, outcome)."""
    schema = outcome.collect_schema()
    loc_col = next((c for c in ("location", "station_id") if c in schema), None)
    time_col = next((c for c in ("timestamp_utc", "date", "period_start") if c in schema), None)
    value_col = next((c for c in ("value", "outcome") if c in schema), None)
    if loc_col is None or time_col is None or value_col is None:
        raise TrainingTableError(
            f"outcome_of_interest needs a location, a time (timestamp_utc/date) and a value column; it has {list(schema)}"
        )
    day = pl.col(time_col).dt.date() if isinstance(schema[time_col], pl.Datetime) else pl.col(time_col).cast(pl.Date)
    lf = outcome.select(pl.col(loc_col).alias("station_id"), day.alias("date"), pl.col(value_col).cast(pl.Float64).alias("outcome"))
    lf = _filtered(lf.with_columns(pl.col("date").cast(pl.Datetime("us", "UTC")).alias("_t")), spec, "_t", "station_id").drop("_t")
    return lf.group_by("station_id", "date").agg(_agg_expr("outcome", spec.outcome_agg)).collect()


def period_start_expr(resolution_days: int, col: str = "date") -> pl.Expr:
    d = pl.col(col)
    if resolution_days == 1:
        return d
    if resolution_days == 7:
        return d.dt.truncate("1w")
    if resolution_days == 30:
        return d.dt.truncate("1mo")
    days = d.cast(pl.Int32)
    return ((days // resolution_days) * resolution_days).cast(pl.Date)


def _period_days(resolution_days: int) -> pl.Expr:
    """Calendar days in each period (a month has 28 to 31)."""
    if resolution_days == 30:
        p = pl.col("period_start")
        return (p.dt.month_end() - p).dt.total_days() + 1
    return pl.lit(resolution_days)


def _complete_calendar(daily: pl.DataFrame) -> pl.DataFrame:
    """One row per station per day between its first and last day (rolling windows count days)."""
    span = daily.group_by("station_id").agg(pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi"))
    cal = span.select("station_id", pl.date_ranges("lo", "hi", "1d").alias("date")).explode("date")
    return cal.join(daily, on=["station_id", "date"], how="left").sort("station_id", "date")


def build_training_table(
    observations: pl.LazyFrame,
    spec: TrainingTableSpec,
    grid_daily: pl.DataFrame | None = None,
    outcome: pl.LazyFrame | None = None,
) -> tuple[pl.DataFrame, dict]:
    """Return (table, info). Table columns: location, period_start, features..., target."""
    source, how = TARGETS[spec.target]
    daily = daily_observations(observations, spec)
    if daily.height == 0:
        where = f" for locations {list(spec.locations)}" if spec.locations else ""
        raise TrainingTableError(f"observations_clean has no rows{where} between {spec.start or 'the start'} and {spec.end or 'the end'}")
    variables = [c for c in daily.columns if c not in ("station_id", "date")]
    if spec.target == "outcome":
        if outcome is None:
            raise TrainingTableError("target 'outcome' needs outcome_of_interest data for the location; none was found")
        out = daily_outcome(outcome, spec)
        daily = daily.join(out, on=["station_id", "date"], how="full", coalesce=True)
    elif source not in variables:
        raise TrainingTableError(
            f"target {spec.target!r} needs column {source!r} in observations_clean; it has {variables}"
        )
    elif daily.select(pl.col(source).is_not_null().sum()).item() == 0:
        raise TrainingTableError(f"target {spec.target!r}: column {source!r} is all null in the selected observations")
    grid_cols: list[str] = []
    if grid_daily is not None and grid_daily.height:
        daily = daily.join(grid_daily, on=["station_id", "date"], how="left")
        grid_cols = [c for c in grid_daily.columns if c.startswith("grid_")]

    daily = _complete_calendar(daily)
    exogenous = [v for v in variables if v != source]
    rolled_vars = [v for v in variables] + (["outcome"] if spec.target == "outcome" else [])
    # Rolling means over the days before each day (shift 1): known before the period starts.
    roll_exprs = [
        pl.col(v).shift(1).rolling_mean(w, min_samples=max(1, w // 2)).over("station_id").alias(f"{v}__roll{w}d")
        for v in rolled_vars for w in spec.rolling_windows
    ]
    daily = daily.with_columns(roll_exprs)
    roll_cols = [f"{v}__roll{w}d" for v in rolled_vars for w in spec.rolling_windows]

    R = spec.resolution_days
    daily = daily.with_columns(period_start_expr(R).alias("period_start"))
    if how == "change":
        tgt = (pl.col(source).drop_nulls().last() - pl.col("_prev_end").first()).alias("target")
        daily = daily.with_columns(
            pl.col(source).forward_fill().shift(1).over("station_id").alias("_prev_fill")
        ).with_columns(pl.col("_prev_fill").first().over("station_id", "period_start").alias("_prev_end"))
        target_agg = [tgt]
    else:
        target_agg = [_agg_expr(source, "sum" if how == "sum" else how).alias("target")]
    agg = [
        *[_agg_expr(v, _daily_agg(v)) for v in exogenous],
        *[pl.col(g).mean().alias(g) for g in grid_cols],
        *[pl.col(r).first().alias(r) for r in roll_cols],
        *target_agg,
        pl.col(source).count().alias("_coverage_n"),
    ]
    if how == "change":
        agg.append(pl.col("_prev_end").first().alias("_prev_end"))
    periods = daily.group_by("station_id", "period_start").agg(agg).sort("station_id", "period_start")
    # A period with too few observed days has no target (a partial sum would be biased).
    periods = periods.with_columns(_period_days(R).alias("_days")).with_columns(
        pl.when(pl.col("_coverage_n") >= spec.min_coverage * pl.col("_days")).then(pl.col("target")).otherwise(None).alias("target")
    )
    lag_cols: list[str] = []
    lag_exprs = []
    for k in spec.lags:
        lag_exprs.append(pl.col("target").shift(k).over("station_id").alias(f"target__lag{k}"))
        lag_cols.append(f"target__lag{k}")
    for v in exogenous + grid_cols:
        lag_exprs.append(pl.col(v).shift(1).over("station_id").alias(f"{v}__lag1"))
        lag_cols.append(f"{v}__lag1")
    doy = pl.col("period_start").dt.ordinal_day().cast(pl.Float64) * (2 * math.pi / 365.25)
    periods = periods.with_columns(*lag_exprs, doy.sin().alias("season_sin"), doy.cos().alias("season_cos"))
    features = exogenous + grid_cols + roll_cols + lag_cols + ["season_sin", "season_cos"]
    table = periods.select(
        pl.col("station_id").alias("location"), "period_start",
        *[pl.col(f).cast(pl.Float64) for f in features], pl.col("target").cast(pl.Float64),
    )
    info = {
        "target": spec.target,
        "target_source": source,
        "target_aggregation": how if spec.target != "outcome" else spec.outcome_agg,
        "resolution_days": R,
        "feature_columns": features,
        "feature_set": "station+grid" if grid_cols else "station",
        "locations": sorted(table["location"].unique().to_list()),
        "period_start_min": str(table["period_start"].min()) if table.height else None,
        "period_start_max": str(table["period_start"].max()) if table.height else None,
        "rows": table.height,
        "rows_with_target": int(table["target"].is_not_null().sum()),
    }
    return table, info


def schema_metadata(info: dict) -> dict[bytes, bytes]:
    return {
        SCHEMA_KEYS["target"].encode(): str(info["target"]).encode(),
        SCHEMA_KEYS["resolution_days"].encode(): str(info["resolution_days"]).encode(),
        SCHEMA_KEYS["feature_columns"].encode(): json.dumps(info["feature_columns"]).encode(),
        SCHEMA_KEYS["feature_set"].encode(): str(info["feature_set"]).encode(),
        SCHEMA_KEYS["log"].encode(): json.dumps(info, default=str).encode(),
    }


def info_from_schema_metadata(md: dict[str, str]) -> dict:
    if SCHEMA_KEYS["log"] not in md:
        raise TrainingTableError("the training table has no build metadata (target, resolution, features); rebuild it")
    return json.loads(md[SCHEMA_KEYS["log"]])


def to_arrow_with_metadata(table: pl.DataFrame, info: dict):
    arrow = table.to_arrow()
    return arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **schema_metadata(info)})


def table_data_version(arrow_table) -> str:
    """A content hash of the table (data and schema metadata): the asset's data version."""
    import hashlib
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(arrow_table, buf, compression="none")
    return hashlib.sha256(buf.getvalue()).hexdigest()[:24]
