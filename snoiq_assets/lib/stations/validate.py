"""Validate a frame in the clean schema: failing values are nulled, failing rows dropped, and
every failure is recorded in a rejects frame (``schema.REJECTS``): the old pipeline's
validate-then-filter, made auditable.

Rules, in order:

1. ``parse``: a line the parser could not read (``parse_error``) -> row dropped.
2. ``outside_period``: timestamp null, or outside the file's claimed period (USCRN: its year),
   or outside the plausible window 1850-01-01 .. now + 1 day -> row dropped.
3. ``qc_flag``: a source QC flag marks the value erroneous (USCRN flag "3") -> value nulled.
4. ``range``: a value outside the plausible range of its variable in SI units (``RANGES``),
   e.g. 75 in ``air_temp_c`` (Fahrenheit in a Celsius column) -> value nulled.
   ``spike``: a temperature that jumps away from both neighbouring reports (each within
   ``SPIKE_WINDOW``) by more than ``SPIKES[var]`` and back -> value nulled. Only sub-hourly
   series have neighbours that close; real road-weather pavement sensors drop out this way.
   ``pavement_below_air``: a surface (pavement) temperature more than ``SURFACE_BELOW_AIR_C``
   below the air temperature of the same report -> surface value nulled (a road surface cools
   a few degrees below the air on clear nights, never 20 degC; the INDOT Gas City file reads
   -57.82 degF pavement under +36.68 degF air).
5. ``consistency``: min <= mean <= max violated (air temperature) -> the values involved nulled.
6. ``duplicate_timestamp``: a second row for the same station and timestamp -> later row dropped.
7. ``out_of_order``: a timestamp earlier than one on a previous line -> the row is kept and the
   clean table sorted by time; recorded with action ``sorted``.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl

from snoiq_assets.lib.stations import schema

# Plausible ranges in SI units (inclusive). World records bound them, with a little margin.
RANGES: dict[str, tuple[float, float]] = {
    "air_temp_c": (-90.0, 60.0),
    "air_temp_max_c": (-90.0, 60.0),
    "air_temp_min_c": (-90.0, 60.0),
    "dew_point_c": (-90.0, 40.0),
    "relative_humidity_pct": (0.0, 100.0),
    "precip_mm": (0.0, 2000.0),
    "snow_depth_mm": (0.0, 12000.0),
    "snowfall_mm": (0.0, 2500.0),
    "wind_speed_ms": (0.0, 115.0),
    "wind_speed_max_ms": (0.0, 115.0),
    "wind_gust_ms": (0.0, 120.0),
    "wind_dir_deg": (0.0, 360.0),
    "pressure_hpa": (850.0, 1090.0),
    "station_pressure_hpa": (300.0, 1090.0),
    "visibility_m": (0.0, 200_000.0),
    "solar_radiation_wm2": (0.0, 1500.0),
    "surface_temp_c": (-90.0, 95.0),
    "soil_moisture_5cm_m3m3": (0.0, 1.0),
    "soil_temp_5cm_c": (-60.0, 70.0),
}
UNITS = {name: name.rsplit("_", 1)[-1] for name in RANGES}

# Isolated jumps (degC away from both neighbours and back) that are sensor spikes, not weather.
SPIKES: dict[str, float] = {"air_temp_c": 8.0, "dew_point_c": 10.0, "surface_temp_c": 15.0}
SPIKE_WINDOW = dt.timedelta(minutes=30)
SURFACE_BELOW_AIR_C = 20.0

# (min column, mean column, max column)
CONSISTENCY = [("air_temp_min_c", "air_temp_c", "air_temp_max_c")]

EARLIEST = dt.datetime(1850, 1, 1, tzinfo=dt.timezone.utc)


def _rejects(df: pl.DataFrame, mask: pl.Expr, column: str, value: pl.Expr, rule: str, reason: pl.Expr,
             action: str, key: str = "station_id") -> pl.DataFrame:
    return df.filter(mask).select(
        pl.col(key).alias("station_id"),
        pl.col("timestamp_utc"),
        pl.col("line_no"),
        pl.lit(column).alias("column"),
        value.cast(pl.Utf8).alias("value"),
        pl.lit(rule).alias("rule"),
        reason.alias("reason"),
        pl.lit(action).alias("action"),
    )


def _period_filter(df: pl.DataFrame, claimed_period, now: dt.datetime | None, key: str):
    now = now or dt.datetime.now(dt.timezone.utc)
    lo, hi = EARLIEST, now + dt.timedelta(days=1)
    what = "the plausible window"
    if claimed_period is not None:
        lo, hi = max(lo, claimed_period[0]), min(hi, claimed_period[1])
        what = "the file's claimed period"
    ts = pl.col("timestamp_utc")
    bad = ts.is_null() | (ts < lo) | (ts > hi)
    rej = _rejects(
        df, bad, "timestamp_utc", ts, "outside_period",
        pl.when(ts.is_null()).then(pl.lit("no timestamp"))
        .otherwise(pl.format("{} is outside " + f"{what} {lo.isoformat()} .. {hi.isoformat()}", ts.cast(pl.Utf8))),
        "dropped", key,
    )
    return df.filter(~bad), rej


def _order_rules(df: pl.DataFrame, key: str, sort_by: list[str]):
    """Duplicates (later line dropped) and out-of-order lines (kept, sorted)."""
    df = df.sort("line_no", nulls_last=True)
    dup = pl.struct(sort_by).is_duplicated() & ~pl.struct(sort_by).is_first_distinct()
    rej_dup = _rejects(df, dup, "timestamp_utc", pl.col("timestamp_utc"), "duplicate_timestamp",
                       pl.format("second row for {} {}; the first (earlier line) is kept", pl.col(key),
                                 pl.col("timestamp_utc").cast(pl.Utf8)), "dropped", key)
    df = df.filter(~dup)
    prev_max = pl.col("timestamp_utc").cum_max().shift(1)
    ooo = pl.col("timestamp_utc") < prev_max
    rej_ooo = _rejects(df, ooo, "timestamp_utc", pl.col("timestamp_utc"), "out_of_order",
                       pl.format("{} comes after a later timestamp ({}) in the file; row kept, table sorted",
                                 pl.col("timestamp_utc").cast(pl.Utf8), prev_max.cast(pl.Utf8)), "sorted", key)
    return df.sort(sort_by), [rej_dup, rej_ooo]


def validate(
    frame: pl.DataFrame,
    *,
    claimed_period: tuple[dt.datetime, dt.datetime] | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
    now: dt.datetime | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(clean, rejects)`` for a frame in the clean schema (plus an optional ``parse_error``)."""
    ranges = RANGES if ranges is None else ranges
    df = frame if "parse_error" in frame.columns else frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("parse_error"))
    rejects: list[pl.DataFrame] = []

    # 1. unreadable lines
    perr = pl.col("parse_error")
    rejects.append(_rejects(
        df, perr.is_not_null(), "", pl.lit(None), "parse", perr, "dropped"
    ).with_columns(pl.col("reason").str.extract(r"^column ([^:]+):", 1).fill_null("?").alias("column")))
    df = df.filter(perr.is_null())

    # 2. period
    df, rej = _period_filter(df, claimed_period, now, "station_id")
    rejects.append(rej)

    # 3. QC flags
    nulls: dict[str, pl.Expr] = {}
    for flag_col, (variables, bad_values) in schema.QC_FLAG_RULES.items():
        if flag_col not in df.columns:
            continue
        for var in variables:
            bad = pl.col(flag_col).is_in(sorted(bad_values)) & pl.col(var).is_not_null()
            rejects.append(_rejects(df, bad, var, pl.col(var), "qc_flag",
                                    pl.format(f"source QC flag {flag_col}={{}} marks the value erroneous", pl.col(flag_col)),
                                    "nulled"))
            nulls[var] = bad if var not in nulls else (nulls[var] | bad)
    if nulls:
        df = df.with_columns(**{v: pl.when(m).then(None).otherwise(pl.col(v)) for v, m in nulls.items()})

    # 4. ranges
    range_masks = {}
    for var, (lo, hi) in ranges.items():
        if var not in df.columns:
            continue
        v = pl.col(var)
        bad = v.is_not_null() & (v.is_nan() | v.is_infinite() | (v < lo) | (v > hi))
        unit = UNITS.get(var, "")
        rejects.append(_rejects(df, bad, var, v, "range",
                                pl.format(f"{var}={{}} is outside [{lo:g}, {hi:g}] {unit} (wrong units or a bad sensor?)", v),
                                "nulled"))
        range_masks[var] = bad
    if range_masks:
        df = df.with_columns(**{v: pl.when(m).then(None).otherwise(pl.col(v)) for v, m in range_masks.items()})

    # 4b. spikes (neighbours by time within the station) and pavement far below the air
    order = {"order_by": "timestamp_utc"}
    t = pl.col("timestamp_utc")
    for var, jump in SPIKES.items():
        if var not in df.columns:
            continue
        v = pl.col(var)
        # Neighbours as columns first: the reject rows are selected by a filter, after which a
        # shift would see the wrong rows.
        df = df.with_columns(
            pl.when((t - t.shift(1).over("station_id", **order)) <= SPIKE_WINDOW).then(v.shift(1).over("station_id", **order)).alias("_prev"),
            pl.when((t.shift(-1).over("station_id", **order) - t) <= SPIKE_WINDOW).then(v.shift(-1).over("station_id", **order)).alias("_next"),
        )
        d_prev, d_next = v - pl.col("_prev"), v - pl.col("_next")
        bad = ((d_prev.abs() > jump) & (d_next.abs() > jump) & (d_prev.sign() == d_next.sign())).fill_null(False)
        rejects.append(_rejects(df, bad, var, v, "spike",
                                pl.format(f"{var}={{}} jumps more than {jump:g} degC away from both neighbouring reports "
                                          "({} and {}) and back: a sensor spike", v.round(2), pl.col("_prev").round(2),
                                          pl.col("_next").round(2)),
                                "nulled"))
        df = df.with_columns(pl.when(bad).then(None).otherwise(v).alias(var)).drop("_prev", "_next")
    if "surface_temp_c" in df.columns and "air_temp_c" in df.columns:
        sfc, air = pl.col("surface_temp_c"), pl.col("air_temp_c")
        bad = (sfc < air - SURFACE_BELOW_AIR_C).fill_null(False)
        rejects.append(_rejects(df, bad, "surface_temp_c", sfc, "pavement_below_air",
                                pl.format(f"surface_temp_c={{}} is more than {SURFACE_BELOW_AIR_C:g} degC below "
                                          "air_temp_c={} in the same report: a sensor spike", sfc.round(2), air.round(2)), "nulled"))
        df = df.with_columns(pl.when(bad).then(None).otherwise(sfc).alias("surface_temp_c"))

    # 5. consistency min <= mean <= max
    for lo_c, mid_c, hi_c in CONSISTENCY:
        present = [c for c in (lo_c, mid_c, hi_c) if c in df.columns]
        if len(present) < 2:
            continue
        lo, mid, hi = pl.col(lo_c), pl.col(mid_c), pl.col(hi_c)
        bad = (lo > hi).fill_null(False) | (lo > mid).fill_null(False) | (mid > hi).fill_null(False)
        # pl.format gives null if any argument is null: spell a missing value out instead, so
        # every reject has a reason (GHCN-D rows often lack the mean).
        shown = [c.cast(pl.Utf8).fill_null("null") for c in (lo, mid, hi)]
        msg = pl.format(f"{lo_c}={{}} <= {mid_c}={{}} <= {hi_c}={{}} does not hold", *shown)
        for c in present:
            rejects.append(_rejects(df, bad & pl.col(c).is_not_null(), c, pl.col(c), "consistency", msg, "nulled"))
        df = df.with_columns(**{c: pl.when(bad).then(None).otherwise(pl.col(c)) for c in present})

    # 6-7. duplicates and order
    df, rej = _order_rules(df, "station_id", ["station_id", "timestamp_utc"])
    rejects.extend(rej)

    clean = schema.conform(df, schema.CLEAN)
    rej_all = pl.concat([schema.conform(r, schema.REJECTS) for r in rejects]).sort("line_no", "column", nulls_last=True)
    return clean, rej_all


def reject_share(n_input_rows: int, rejects: pl.DataFrame) -> dict[str, float]:
    """Share of input rows rejected, per column (a row counted once per column)."""
    if n_input_rows <= 0 or rejects.height == 0:
        return {}
    per = rejects.group_by("column").agg(pl.col("line_no").n_unique().alias("n"))
    return {row["column"]: row["n"] / n_input_rows for row in per.iter_rows(named=True)}


MAX_REJECT_SHARE = 0.05
"""Default limit of the share of a table's input rows rejected in any one column: above it the
clean table is refused (never published) and its blocking check fails."""


def worst_reject_share(clean_rows: int, rejects: pl.DataFrame) -> tuple[str, float, dict[str, float]]:
    """(worst column, its share, share per column) of the rows that came in: the clean rows
    plus the distinct lines dropped."""
    dropped = rejects.filter(pl.col("action") == "dropped")["line_no"].n_unique()
    shares = reject_share(clean_rows + dropped, rejects)
    worst = max(shares.items(), key=lambda kv: kv[1], default=("", 0.0))
    return worst[0], worst[1], shares


def reject_share_problem(clean_rows: int, rejects: pl.DataFrame, limit: float) -> str | None:
    """Why a clean table must not be published (a column's reject share over ``limit``), or None."""
    column, share, _ = worst_reject_share(clean_rows, rejects)
    if share <= limit:
        return None
    return f"{share:.2%} of the rows rejected in column {column} (limit {limit:.2%}; rules: " + ", ".join(
        f"{rule} {n}" for rule, n in rejects.filter(pl.col("column") == column).group_by("rule").len()
        .sort("len", descending=True).rows()) + ")"


def finite_or_none(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x
