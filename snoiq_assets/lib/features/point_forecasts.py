"""Forecasts already extracted at stations by another tool, as grid_join_features rows.

A team with an archive of point extractions (Herbie's ``pick_points`` output written to CSV,
``wgrib2 -lon`` dumps and the like) can train without the GRIB files. A point-forecast CSV has
one row per site, cycle and lead:

- site: ``site`` | ``station_id`` | ``point_stid`` (Herbie names the points' columns ``point_*``)
- cycle (run start, UTC): ``init_time_utc`` | ``run_time`` | ``cycle_time`` | ``time`` (xarray/Herbie)
- lead hours: ``forecast_hour`` | ``lead_hour`` | ``step`` (whole hours, or Herbie's
  ``0 days 01:00:00`` text)
- valid time (UTC): ``valid_time_utc`` | ``valid_time``
- every other column a variable, named ``<var>_<level>_<unit>`` as grid_join_features names
  them (``tmp_2m_K``, ``ugrd_10m_m_s``, ...; compared lower-case).

``parse_point_forecasts`` returns the rows grid_join_features has for a station's grid cell:
``station_id``, ``run_time``, ``forecast_hour``, ``valid_time`` and ``<var>__centre`` (the
station-cell value; a point extraction has no neighbourhood, so no mean/min/max/std/gradients).
Temperatures given in degC (``tmp_sfc_C``) become kelvin under the ``_k`` name, as HRRR stores
them. Times without a zone are UTC; a bare date is midnight.

Bad input: a file without a site, cycle, lead or valid-time column, or with no variable, raises
``PointForecastError`` (the caller quarantines it). Row problems go to the rejects frame with
the file's line number and a reason, and the row is dropped (or the value nulled): an unreadable
time or lead, an unsafe site id, a valid time that is not cycle + lead, a second row for the
same (site, cycle, lead). The other rows carry on.
"""

from __future__ import annotations

import polars as pl


UTC = pl.Datetime("us", "UTC")
SAFE_SITE = r"^[A-Za-z0-9_.-]{1,200}$"  # as lib.keys.safe_identifier, vectorised
ALIASES = {
    "site": ("site", "station_id", "point_stid"),
    "cycle": ("init_time_utc", "run_time", "cycle_time", "time"),
    "lead": ("forecast_hour", "lead_hour", "step"),
    "valid": ("valid_time_utc", "valid_time"),
}
IGNORED = {"latitude", "longitude", "point_latitude", "point_longitude", "x", "y", "point", "line_no",
           "gribfile_projection", "heightaboveground", "surface", "point_grid_distance"}
TIME_FORMATS = ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")
REJECTS = {"file": pl.Utf8, "line_no": pl.Int64, "station_id": pl.Utf8, "column": pl.Utf8, "value": pl.Utf8,
           "rule": pl.Utf8, "reason": pl.Utf8, "action": pl.Utf8}


class PointForecastError(ValueError):
    """A point-forecast file that cannot be read as a whole (names the file and what is wrong)."""


def feature_name(column: str) -> tuple[str, float]:
    """(grid_join_features column, offset added to the value): ``tmp_2m_K`` -> ``tmp_2m_k__centre``;
    a degC column (``tmp_sfc_C``) becomes kelvin (``tmp_sfc_k__centre``, +273.15)."""
    if column.endswith("_C"):
        return f"{column[:-2].lower()}_k__centre", 273.15
    return f"{column.lower()}__centre", 0.0


def _times(col: str) -> pl.Expr:
    text = pl.col(col).str.strip_chars()
    return pl.coalesce([text.str.strptime(pl.Datetime("us"), f, strict=False) for f in TIME_FORMATS]
                       ).dt.replace_time_zone("UTC")


def _lead_hours(col: str) -> pl.Expr:
    text = pl.col(col).str.strip_chars()
    whole = text.cast(pl.Float64, strict=False)
    # Herbie / pandas timedelta text: "0 days 01:00:00"
    parts = text.str.extract_groups(r"^(-?\d+) days? (\d{2}):(\d{2}):(\d{2})$")
    td = (parts.struct.field("1").cast(pl.Int64) * 24 + parts.struct.field("2").cast(pl.Int64)).cast(pl.Float64)
    td = pl.when((parts.struct.field("3") == "00") & (parts.struct.field("4") == "00")).then(td)
    hours = pl.coalesce(whole, td)
    return pl.when((hours >= 0) & (hours == hours.round(0))).then(hours.cast(pl.Int64))


def _pick(names: list[str], role: str, file: str) -> str:
    lower = {n.lower(): n for n in names}
    for alias in ALIASES[role]:
        if alias in lower:
            return lower[alias]
    raise PointForecastError(f"{file}: no {role} column (one of {', '.join(ALIASES[role])}); the header has {names[:12]}")


def _reject(frame: pl.DataFrame, mask: pl.Expr, file: str, column: str, value: pl.Expr, rule: str,
            reason: pl.Expr, action: str) -> pl.DataFrame:
    # The mask is materialised first: Polars 2.1 panics formatting strings of a frame filtered
    # by a struct-duplicate expression in the same query.
    return frame.with_columns(mask.alias("_bad")).filter(pl.col("_bad")).rechunk().select(
        pl.lit(file).alias("file"), pl.col("line_no"), pl.col("_site").alias("station_id"), pl.lit(column).alias("column"),
        value.cast(pl.Utf8).alias("value"), pl.lit(rule).alias("rule"), reason.alias("reason"), pl.lit(action).alias("action"),
    ).cast(REJECTS)


def _flagged(frame: pl.DataFrame, masks: list[pl.Expr]) -> tuple[pl.DataFrame, list[bool]]:
    """``frame`` with the masks as columns ``__flag0``, ``__flag1`` ... (each evaluated once) and whether
    each flags any row: a clean file (the usual case) then builds no reject frame at all."""
    frame = frame.with_columns([m.alias(f"__flag{i}") for i, m in enumerate(masks)])
    hits = frame.select([pl.col(f"__flag{i}").any() for i in range(len(masks))]).row(0) if masks else ()
    return frame, [bool(h) for h in hits]


def parse_point_forecasts(data: bytes, file: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(rows, rejects, info) from one point-forecast CSV (see the module docstring)."""
    try:
        raw = pl.read_csv(data, infer_schema=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        raise PointForecastError(f"{file}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    if raw.height == 0:
        raise PointForecastError(f"{file}: header but no rows")
    names = raw.columns
    site, cycle, lead, valid = (_pick(names, r, file) for r in ("site", "cycle", "lead", "valid"))
    variables = [n for n in names if n not in (site, cycle, lead, valid) and n.lower() not in IGNORED]
    if not variables:
        raise PointForecastError(f"{file}: no variable columns besides site, cycle, lead and valid time")
    out_names = [feature_name(v)[0] for v in variables]
    if len(set(out_names)) != len(out_names):
        raise PointForecastError(f"{file}: variable columns {variables} name the same feature twice")
    # line 1 is the header
    df = raw.with_row_index("line_no", offset=2).with_columns(
        pl.col("line_no").cast(pl.Int64), pl.col(site).str.strip_chars().alias("_site"),
        _times(cycle).alias("_cycle"), _lead_hours(lead).alias("_lead"), _times(valid).alias("_valid"),
    )
    rejects: list[pl.DataFrame] = [pl.DataFrame(schema=REJECTS)]   # typed, also when none
    # A row is rejected by the first check it fails (one reason per dropped row).
    checks = [
        (pl.col("_site").is_null() | ~pl.col("_site").str.contains(SAFE_SITE) | pl.col("_site").is_in([".", ".."]), site, pl.col(site), "unsafe_id",
         pl.format("site {} is not a safe station id (letters, digits, '_', '.', '-'; at most 200)", pl.col(site))),
        (pl.col("_cycle").is_null(), cycle, pl.col(cycle), "parse", pl.format("cycle time {} is not a UTC time", pl.col(cycle))),
        (pl.col("_lead").is_null(), lead, pl.col(lead), "parse",
         pl.format("lead {} is not a whole number of hours >= 0", pl.col(lead))),
        (pl.col("_valid").is_null(), valid, pl.col(valid), "parse", pl.format("valid time {} is not a UTC time", pl.col(valid))),
    ]
    firsts, bad_any = [], pl.lit(False)
    for mask, *_ in checks:
        firsts.append(mask & ~bad_any)
        bad_any = bad_any | mask
    df, hits = _flagged(df, firsts)
    for i, ((_mask, column, value, rule, reason), hit) in enumerate(zip(checks, hits)):
        if hit:
            rejects.append(_reject(df, pl.col(f"__flag{i}"), file, column, value, rule, reason, "dropped"))
    if any(hits):
        df = df.filter(~pl.any_horizontal([pl.col(f"__flag{i}") for i in range(len(checks))]))
    expected = pl.col("_cycle") + pl.duration(hours=pl.col("_lead"))
    df, (mismatch,) = _flagged(df, [pl.col("_valid") != expected])
    if mismatch:
        rejects.append(_reject(df, pl.col("__flag0"), file, valid, pl.col(valid), "valid_time_mismatch",
                               pl.format("valid time {} is not cycle {} + {} h = {}", pl.col(valid), pl.col(cycle),
                                         pl.col("_lead"), expected.dt.strftime("%Y-%m-%dT%H:%MZ")), "dropped"))
        df = df.filter(~pl.col("__flag0"))
    key = pl.struct("_site", "_cycle", "_lead")
    df, (dup,) = _flagged(df, [key.is_duplicated() & ~key.is_first_distinct()])
    if dup:
        rejects.append(_reject(df, pl.col("__flag0"), file, lead, pl.col(lead), "duplicate",
                               pl.format("second row for site {}, cycle {}, lead {} h; the first (earlier line) is kept",
                                         pl.col("_site"), pl.col(cycle), pl.col("_lead")), "dropped"))
        df = df.filter(~pl.col("__flag0"))
    values, bads = {}, []
    for v in variables:
        num = pl.col(v).str.strip_chars().cast(pl.Float64, strict=False)
        bads.append(pl.col(v).is_not_null() & (pl.col(v).str.strip_chars() != "") & (num.is_null() | num.is_nan() | num.is_infinite()))
    df, hits = _flagged(df, bads)
    for i, (v, out, hit) in enumerate(zip(variables, out_names, hits)):
        if hit:
            rejects.append(_reject(df, pl.col(f"__flag{i}"), file, v, pl.col(v), "parse",
                                   pl.format(f"{v}={{}} is not a finite number", pl.col(v)), "nulled"))
        num = pl.col(v).str.strip_chars().cast(pl.Float64, strict=False)
        values[out] = pl.when(~pl.col(f"__flag{i}")).then(num + feature_name(v)[1]).cast(pl.Float32)
    rows = df.select(
        pl.col("_site").alias("station_id"), pl.col("_cycle").alias("run_time"),
        pl.col("_lead").cast(pl.Int32).alias("forecast_hour"), pl.col("_valid").alias("valid_time"), **values,
    ).sort("station_id", "run_time", "forecast_hour")
    rej = pl.concat(rejects).sort("line_no", "column")
    info = {"file": file, "rows_in": raw.height, "rows": rows.height, "rejects": rej.height,
            "rejected_rows": int(rej.filter(pl.col("action") == "dropped").height),
            "variables": dict(zip(variables, out_names)),
            "stations": sorted(rows["station_id"].unique().to_list())}
    return rows, rej, info


PREFIX = "raw/point_forecasts/"


def read_landed(store, prefix: str = PREFIX) -> tuple[pl.DataFrame, dict]:
    """Every point-forecast CSV (``.csv`` or ``.csv.gz``) under ``prefix`` of an ObjectStore as
    one frame of rows. A file that cannot be read is quarantined with its reason and skipped;
    rejected rows are counted. Returns (rows, {"files", "rejected_rows", "quarantined"})."""
    import gzip

    frames, files, quarantined, rejected = [], [], {}, 0
    for info in store.list(prefix):
        if not info.key.endswith((".csv", ".csv.gz")):
            continue
        data = store.get(info.key)
        try:
            if info.key.endswith(".gz"):
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError) as exc:
                    raise PointForecastError(f"{info.key}: not a readable gzip stream ({exc})") from None
            rows, rejects, _info = parse_point_forecasts(data, info.key)
        except PointForecastError as exc:
            quarantined[info.key] = store.quarantine(info.key, str(exc))
            continue
        rejected += rejects.height
        frames.append(rows)
        files.append(info.key)
    if not frames:
        why = f"; quarantined: {sorted(quarantined)}" if quarantined else ""
        raise PointForecastError(f"no readable point-forecast CSV under {prefix}{why}")
    return (pl.concat(frames, how="diagonal_relaxed"),
            {"files": files, "rejected_rows": rejected, "quarantined": quarantined})
