"""Accumulated fields (APCP, ASNOW): stored as given, plus a de-accumulated hourly amount per lead.

HRRR accumulates precipitation and snowfall from the cycle start (``0-F hour acc``); from f02
on APCP also carries the last hour (``F-1-F hour acc``). For every accumulated column of a lead
``hrrr_fields`` keeps the accumulation as given and adds ``<var>_1h_<unit>``, the amount of the
hour ending at the valid time:

- the 1-hour bucket, where the file carries one;
- at f01 the accumulation itself (0-1 is that hour);
- else the difference of this lead's and the previous lead's accumulation;
- at f00 nothing (no forecast hour has passed): null.

Packing noise can make a difference slightly negative: values down to ``-tolerance`` (two
packing steps of NCEP's HRRR packing, see ``TOLERANCE``) are clipped to zero; more negative
ones are physically impossible (an accumulation never shrinks), so they are set to null and
counted as flagged in the column metadata, never passed on as a negative amount. Each column
carries its accumulation window (``accumulation_window``, e.g. ``4-5 hour``) and, for the hourly
one, how it was made, in its Arrow field metadata.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import MessageInfo, decode_fields, scan_grib
from snoiq_assets.lib.hrrr.variables import HOURLY_BUCKETS, Variable

# Allowed negative packing noise per accumulated column: two packing steps of NCEP's HRRR
# packing (APCP decimalScaleFactor 3 -> 0.001 kg m-2; ASNOW 6 -> 1e-6 m; read from the real
# f01 messages in data/sample/hrrr/radarcheck_*), plus float32 rounding of the accumulation.
TOLERANCE = {"apcp_kg_m2": 2e-3, "asnow_m": 2e-6}
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def hourly_column(var: Variable) -> str:
    return HOURLY_BUCKETS[var.column].column


def accumulated(variables: list[Variable]) -> list[Variable]:
    return [v for v in variables if v.step_type == "accum" and v.window_hours is None]


def with_buckets(variables: list[Variable]) -> list[Variable]:
    """``variables`` plus the 1-hour buckets of its accumulations: what to fetch from the archive
    (a bucket's inventory pattern matches nothing in a file that lacks it)."""
    return list(variables) + [HOURLY_BUCKETS[v.column] for v in accumulated(variables) if v.column in HOURLY_BUCKETS]


def check_accumulation_windows(messages: list[MessageInfo], variables: list[Variable], forecast_hour: int,
                               name: str) -> None:
    """Every accumulation of a requested variable in the file must be ``0-F`` (from the cycle start)
    or ``F-1-F`` (the last hour) for the file's lead F; anything else names file and message."""
    for var in accumulated(variables):
        for m in messages:
            k = m.keys
            if not (k["discipline"] == var.discipline and k["parameterCategory"] == var.category
                    and k["parameterNumber"] == var.number and k["typeOfFirstFixedSurface"] == var.level_type
                    and k["level"] == var.level_value and k["stepType"] == "accum"):
                continue
            start, end = k["startStep"], k["endStep"]
            if end == forecast_hour and start in (0, forecast_hour - 1):
                continue
            raise HrrrDataError(name, f"{var.column} accumulation window {start}-{end} hour does not match the "
                                f"lead f{forecast_hour:02d}", message=m.number,
                                expected=f"0-{forecast_hour} hour (from the cycle start)"
                                + (f" or {forecast_hour - 1}-{forecast_hour} hour (last hour)" if forecast_hour > 1 else ""),
                                found=f"{start}-{end} hour")


def buckets_present(messages: list[MessageInfo], variables: list[Variable]) -> list[Variable]:
    """The 1-hour bucket variables of the requested accumulations that the file carries."""
    return [HOURLY_BUCKETS[v.column] for v in accumulated(variables) if v.column in HOURLY_BUCKETS
            and any(HOURLY_BUCKETS[v.column].matches(m.keys) for m in messages)]


@dataclass
class Hourly:
    values: np.ndarray | None     # float32, NaN = null; None at f00
    window: str                   # "4-5 hour"; "none" at f00
    method: str                   # bucket | first hour | difference fFF-fPP | none
    clipped: int = 0              # tiny negatives set to 0
    flagged: int = 0              # larger negatives set to null
    most_negative: float = 0.0

    def metadata(self) -> dict:
        return {"accumulation_window": self.window, "method": self.method, "clipped_cells": self.clipped,
                "flagged_cells": self.flagged, "most_negative": self.most_negative}


def deaccumulate(column: str, forecast_hour: int, acc: np.ndarray, previous_acc: np.ndarray | None,
                 bucket: np.ndarray | None) -> Hourly:
    """The hourly amount of lead ``forecast_hour`` (see the module docstring for the order)."""
    window = f"{forecast_hour - 1}-{forecast_hour} hour"
    if forecast_hour == 0:
        return Hourly(None, "none", "none (f00 has no forecast hour)")
    if bucket is not None:
        raw, method, scale = bucket.astype(np.float32, copy=True), "bucket", bucket
    elif forecast_hour == 1:
        raw, method, scale = acc.astype(np.float32, copy=True), "first hour (0-1 accumulation)", acc
    elif previous_acc is not None:
        raw = (acc.astype(np.float64) - previous_acc.astype(np.float64)).astype(np.float32)
        method, scale = f"difference f{forecast_hour:02d}-f{forecast_hour - 1:02d}", acc
    else:
        return Hourly(np.full(acc.shape, np.nan, np.float32), window,
                      f"unavailable (f{forecast_hour - 1:02d} not decoded; re-run after it lands)")
    tol = TOLERANCE.get(column, 0.0) + 4 * FLOAT32_EPS * np.abs(np.nan_to_num(scale.astype(np.float32)))
    negative = raw < 0
    if not negative.any():
        return Hourly(raw, window, method)
    with np.errstate(invalid="ignore"):
        flagged = negative & (raw < -tol)
    clipped = negative & ~flagged
    most_negative = float(np.nanmin(raw))
    raw[clipped] = 0.0
    raw[flagged] = np.nan
    return Hourly(raw, window, method, int(clipped.sum()), int(flagged.sum()), most_negative)


def _field(name: str, meta: dict) -> pa.Field:
    return pa.field(name, pa.float32(), metadata={k: json.dumps(v) if not isinstance(v, str) else v
                                                  for k, v in meta.items()})


def add_hourly(table: pa.Table, variables: list[Variable], forecast_hour: int,
               previous: pa.Table | None = None) -> tuple[pa.Table, dict[str, Hourly]]:
    """``table`` (one lead's decoded fields) with each accumulation's window in its field metadata
    and its hourly column (from the bucket column if decoded, else from ``previous``, the decoded
    table of the lead before)."""
    out_cols: dict[str, pa.Array] = {}
    fields: dict[str, pa.Field] = {}
    hourly: dict[str, Hourly] = {}
    accs = {v.column: v for v in accumulated(variables)}
    for name in table.column_names:
        if name in {HOURLY_BUCKETS[c].column for c in accs if c in HOURLY_BUCKETS}:
            continue   # replaced below by the checked hourly column
        out_cols[name] = table.column(name)
        fields[name] = table.schema.field(name)
        if name in accs:
            window = "0-0 hour" if forecast_hour == 0 else f"0-{forecast_hour} hour"
            fields[name] = _field(name, {"accumulation_window": window, "method": "as given"})
    for col, var in accs.items():
        if col not in HOURLY_BUCKETS:
            continue
        acc = table.column(col).to_numpy(zero_copy_only=False)
        bucket_name = HOURLY_BUCKETS[col].column
        bucket = table.column(bucket_name).to_numpy(zero_copy_only=False) if bucket_name in table.column_names else None
        prev = (previous.column(col).to_numpy(zero_copy_only=False)
                if previous is not None and col in previous.column_names else None)
        h = deaccumulate(col, forecast_hour, acc, prev, bucket)
        values = h.values if h.values is not None else np.full(acc.shape, np.nan, np.float32)
        nulls = np.isnan(values)
        out_cols[bucket_name] = pa.array(values, mask=nulls) if nulls.any() else pa.array(values)
        fields[bucket_name] = _field(bucket_name, h.metadata())
        hourly[bucket_name] = h
    schema = pa.schema([fields[n] for n in out_cols], metadata=table.schema.metadata)
    result = pa.Table.from_arrays(list(out_cols.values()), schema=schema)
    md = dict(result.schema.metadata or {})
    units = json.loads(md.get(b"units", b"{}"))
    for col in hourly:
        units[col] = next(v.units for c, v in accs.items() if HOURLY_BUCKETS[c].column == col)
    md[b"units"] = json.dumps(units, sort_keys=True).encode()
    md[b"hourly_accumulations"] = json.dumps({c: h.metadata() for c, h in hourly.items()}, sort_keys=True).encode()
    return result.replace_schema_metadata(md), hourly


def decode_lead_fields(path: str | Path, variables: list[Variable], forecast_hour: int, *,
                       name: str | None = None, **decode_kwargs) -> tuple[pa.Table, dict]:
    """Decode one lead's file as it is (``decode.decode_fields`` checks) with its 1-hour buckets
    where present, after checking every accumulation window against the lead. The ecCodes part
    of a lead: ``hrrr_fields`` runs it in the decoder child (``isolation.DecoderProcess``)."""
    name = name or str(path)
    messages = scan_grib(path, name)
    check_accumulation_windows(messages, variables, forecast_hour, name)
    wanted = list(variables) + (buckets_present(messages, variables) if forecast_hour >= 2 else [])
    return decode_fields(path, wanted, forecast_hour, name=name, messages=messages, **decode_kwargs)


def finish_lead(table: pa.Table, stats: dict, variables: list[Variable], forecast_hour: int,
                previous: pa.Table | None = None) -> tuple[pa.Table, dict]:
    """A decoded lead (``decode_lead_fields``) with its hourly columns (``add_hourly``) and their
    statistics added to ``stats`` (a new dict)."""
    table, hourly = add_hourly(table, variables, forecast_hour, previous)
    stats = {c: s for c, s in stats.items() if c in table.column_names}   # a bucket is now its checked column
    for col, h in hourly.items():
        v = h.values
        if v is None or np.isnan(v).all():
            stats[col] = {"min": None, "mean": None, "max": None, "null_count": int(table.num_rows)}
        else:
            stats[col] = {"min": float(np.nanmin(v)), "mean": float(np.nanmean(v, dtype=np.float64)),
                          "max": float(np.nanmax(v)), "null_count": int(np.isnan(v).sum())}
    md = dict(table.schema.metadata or {})
    md[FIELDS_VERSION.encode()] = lead_version(md, stats).encode()
    return table.replace_schema_metadata(md), stats


FIELDS_VERSION = "fields_version"


def lead_version(metadata: dict[bytes, bytes], stats: dict) -> str:
    """A decoded lead's content identity: a digest of its schema metadata (grid, times, units,
    source messages with their offsets, accumulation windows) and every column's statistics.
    The same file decoded again, by either engine, gives the same version; the station windows
    taken from a lead carry it, so the grid join can tell that they match the stored lead."""
    described = {k.decode(): v.decode() for k, v in metadata.items()
                 if k not in (b"decode_engine", FIELDS_VERSION.encode())}
    text = json.dumps({"metadata": described, "stats": stats}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def decode_lead(path: str | Path, variables: list[Variable], forecast_hour: int, *,
                previous: pa.Table | None = None, name: str | None = None, **decode_kwargs) -> tuple[pa.Table, dict]:
    """``decode_lead_fields`` then ``finish_lead``, in this process."""
    table, stats = decode_lead_fields(path, variables, forecast_hour, name=name, **decode_kwargs)
    return finish_lead(table, stats, variables, forecast_hour, previous)
