"""Outcome-of-interest series: a location's target (CSV or Parquet with one timestamp column
and one value column), parsed and validated like observations.

Clean schema (``OUTCOME``): location, timestamp_utc, variable (the value column's name),
value, line_no. A value column named like a clean variable (e.g. ``snow_depth_mm``) gets that
variable's range rule; any other name only has to be a finite number. Naive timestamps are UTC.
"""

from __future__ import annotations

import datetime as dt
import io

import polars as pl

from snoiq_assets.lib.stations import schema
from snoiq_assets.lib.stations.formats import StationFileError, decode_utf8
from snoiq_assets.lib.stations.validate import RANGES, _order_rules, _period_filter, _rejects
from snoiq_assets.lib.keys import safe_identifier

OUTCOME: dict[str, pl.DataType] = {
    "location": pl.Utf8(),
    "timestamp_utc": schema.UTC_DT,
    "variable": pl.Utf8(),
    "value": pl.Float64(),
    "line_no": pl.Int64(),
}
TIME_NAMES = ("timestamp_utc", "timestamp", "time", "datetime", "date", "valid_time", "ds")


def parse_outcome(data: bytes, file: str, location: str) -> pl.DataFrame:
    """Rows of the series with ``parse_error`` for unreadable ones; raises for a bad file."""
    safe_identifier(location, "location")
    if data[:4] == b"PAR1":
        try:
            df = pl.read_parquet(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - a corrupt Parquet file
            raise StationFileError(file, f"unreadable Parquet: {exc}") from None
        df = df.with_columns(pl.all().cast(pl.Utf8)).with_row_index("line_no", offset=1)
        df = df.with_columns(pl.col("line_no").cast(pl.Int64), pl.lit(None, dtype=pl.Utf8).alias("parse_error"))
    else:
        from snoiq_assets.lib.stations.parsers import _csv

        text = decode_utf8(data, file)
        df = _csv(text, file, [], upper=False)
    cols = [c for c in df.columns if c not in ("line_no", "parse_error")]
    tcols = [c for c in cols if c.lower() in TIME_NAMES]
    if len(cols) != 2 or len(tcols) != 1:
        raise StationFileError(
            file, f"an outcome file needs one timestamp column ({'/'.join(TIME_NAMES)}) and one value column; found {cols}",
            line=1,
        )
    tcol = tcols[0]
    vcol = next(c for c in cols if c != tcol)
    safe_identifier(vcol, "value column")
    t = pl.col(tcol).str.strip_chars()
    ts = pl.coalesce(
        t.str.to_datetime(time_zone="UTC", time_unit="us", strict=False),
        t.str.strptime(pl.Date, "%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    )
    v = pl.col(vcol).str.strip_chars()
    num = v.cast(pl.Float64, strict=False)
    err = (
        pl.when(pl.col("parse_error").is_not_null()).then(pl.col("parse_error"))
        .when(ts.is_null()).then(pl.format(f"column {tcol}: {{}} is not a timestamp", pl.col(tcol)))
        .when(num.is_null() & (v != "") & ~v.is_in(["NA", "NaN", "null", "M"]))
        .then(pl.format(f"column {vcol}: {{}} is not a number", pl.col(vcol)))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    out = df.select(
        pl.lit(location).alias("location"), ts.alias("timestamp_utc"), pl.lit(vcol).alias("variable"),
        num.alias("value"), pl.col("line_no"), err.alias("parse_error"),
    )
    if out.height and out["parse_error"].null_count() == 0:
        raise StationFileError(file, f"no line could be read; first problem: {out['parse_error'][0]}",
                               line=int(out["line_no"][0]))
    return out


def validate_outcome(frame: pl.DataFrame, *, now: dt.datetime | None = None):
    """``(clean, rejects)``: parse errors, plausible window, range by variable name, duplicates, order."""
    df = frame.with_columns(pl.col("location").alias("station_id"))
    rejects = []
    perr = pl.col("parse_error")
    rejects.append(_rejects(df, perr.is_not_null(), "", pl.lit(None), "parse", perr, "dropped")
                   .with_columns(pl.col("reason").str.extract(r"^column ([^:]+):", 1).fill_null("?").alias("column")))
    df = df.filter(perr.is_null())
    df, rej = _period_filter(df, None, now, "station_id")
    rejects.append(rej)
    variable = df["variable"][0] if df.height else ""
    lo, hi = RANGES.get(variable, (-float("inf"), float("inf")))
    v = pl.col("value")
    bad = v.is_not_null() & (v.is_nan() | v.is_infinite() | (v < lo) | (v > hi))
    rejects.append(_rejects(df, bad, variable, v, "range",
                            pl.format(f"{variable}={{}} is outside [{lo:g}, {hi:g}]", v), "nulled"))
    df = df.with_columns(pl.when(bad).then(None).otherwise(v).alias("value"))
    df, rej = _order_rules(df, "station_id", ["station_id", "timestamp_utc"])
    rejects.extend(rej)
    return schema.conform(df, OUTCOME), pl.concat([schema.conform(r, schema.REJECTS) for r in rejects])
