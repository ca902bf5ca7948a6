"""Parsers for the station formats our users have, and their conversion to the clean schema.

Each ``parse_*`` takes the decoded text and returns the *native* frame: every field of the
source under its own (lower-cased) name and units, missing sentinels as null, plus
``line_no`` (1-based line of the file), ``parse_error`` (null, or ``"column X: why"`` for a line
that could not be read: it stays in the frame, all values null, and becomes a reject) and
``source_format``. ``to_clean`` turns a native frame into ``schema.CLEAN`` in SI units.

No per-line Python. USCRN fixed-width files take a fast path (``_fixed_width_fast``): the
gaps between fields are overwritten with "," in a NumPy view of the bytes and the whole file
is read by one ``polars.read_csv``; sentinels and dates are checked on the bytes (an ASCII
file is never decoded whole: ``parse_native`` hands the bytes over). Lines it
cannot vouch for (or a whole file that is not equal-length ASCII lines) go through the general
path (``_fixed_width_lines``): the text split once into a Polars string Series, fields as
``str.slice`` expressions. Both give identical rows (tested). CSV lines are checked for their
field count with vectorised string expressions and the good lines parsed by ``polars.read_csv``.

Formats and their quirks:

- USCRN hourly02: 38 fixed-width fields (columns per ``hourly02_readme.txt``), UTC and LST
  date/time, QC flags 0 good / 3 erroneous, missing -9999.0 / -99.000 (and -99999 for the 6-char
  solar fields). Time is the end of the observed hour.
- USCRN daily01: 28 fixed-width fields (column positions as in NCEI's daily01 readme, checked
  against the real file), LST date, same sentinels.
- NCEI GSOD CSV (Access Data Service, all quoted, padded): degF, inches, knots, miles, mb;
  missing 9999.9 (temperatures, pressures), 999.9 (wind, visibility, snow depth), 99.99 (PRCP).
  STP drops its thousands digit ("013.6" is 1013.6 mb): values below 200 get 1000 added. So
  its missing 9999.9 and a real 999.9 mb both read "999.9": the observation count
  STP_ATTRIBUTES decides (0 or absent: missing; positive: a real 999.9 mb).
- IEM ASOS CSV: padded header names (" tmpc "), ``M`` missing, ``valid`` in UTC.
- GHCN-Daily CDO CSV: the raw GHCN units are tenths of degC, tenths of mm (PRCP), mm (SNWD,
  SNOW) and tenths of m/s (AWND, WSF2, WSF5), -9999 missing. CDO can also export converted
  "metric" units (decimals: degC, mm, m/s). ``ghcnd_units`` detects which: integer-valued
  temperatures whose range reaches 13.0 degC in tenths (|value| >= 130) mean tenths; decimals
  mean converted metric. The bundled Seattle-Tacoma file is in raw tenths (TMAX up to 356).
- INDOT road-weather (RWIS) CSV: 10-minute reports of air, dew-point and pavement temperature
  in degF and a precipitation code (1 detected, 2 none). ``time_local`` is US Eastern clock time
  WITH daylight saving (Indiana: America/Indiana/Indianapolis); ``time_utc`` is derived from it
  and ``utc_offset_h`` states the offset used. All three are checked against each other: a line
  whose UTC stamp or offset disagrees with its local time, or whose local time does not exist
  (the spring-forward hour) or is ambiguous (the fall-back hour), is a parse error naming both.
"""

from __future__ import annotations

import io

import numpy as np
import polars as pl

from snoiq_assets.lib.stations import schema
from snoiq_assets.lib.stations.formats import RESOLUTION, Format, StationFileError, decode_utf8, detect_format
from snoiq_assets.lib.units import INCH_MM, KNOT_MS, MILE_M

# ---------------------------------------------------------------------------------------------
# Fixed-width layouts: (name, first column, last column), 1-based inclusive.
USCRN_HOURLY02_FIELDS: list[tuple[str, int, int]] = [
    ("WBANNO", 1, 5), ("UTC_DATE", 7, 14), ("UTC_TIME", 16, 19), ("LST_DATE", 21, 28),
    ("LST_TIME", 30, 33), ("CRX_VN", 35, 40), ("LONGITUDE", 42, 48), ("LATITUDE", 50, 56),
    ("T_CALC", 58, 64), ("T_HR_AVG", 66, 72), ("T_MAX", 74, 80), ("T_MIN", 82, 88),
    ("P_CALC", 90, 96), ("SOLARAD", 98, 103), ("SOLARAD_FLAG", 105, 105), ("SOLARAD_MAX", 107, 112),
    ("SOLARAD_MAX_FLAG", 114, 114), ("SOLARAD_MIN", 116, 121), ("SOLARAD_MIN_FLAG", 123, 123),
    ("SUR_TEMP_TYPE", 125, 125), ("SUR_TEMP", 127, 133), ("SUR_TEMP_FLAG", 135, 135),
    ("SUR_TEMP_MAX", 137, 143), ("SUR_TEMP_MAX_FLAG", 145, 145), ("SUR_TEMP_MIN", 147, 153),
    ("SUR_TEMP_MIN_FLAG", 155, 155), ("RH_HR_AVG", 157, 161), ("RH_HR_AVG_FLAG", 163, 163),
    ("SOIL_MOISTURE_5", 165, 171), ("SOIL_MOISTURE_10", 173, 179), ("SOIL_MOISTURE_20", 181, 187),
    ("SOIL_MOISTURE_50", 189, 195), ("SOIL_MOISTURE_100", 197, 203), ("SOIL_TEMP_5", 205, 211),
    ("SOIL_TEMP_10", 213, 219), ("SOIL_TEMP_20", 221, 227), ("SOIL_TEMP_50", 229, 235),
    ("SOIL_TEMP_100", 237, 243),
]
USCRN_HOURLY02_TEXT = {"WBANNO", "UTC_DATE", "UTC_TIME", "LST_DATE", "LST_TIME", "CRX_VN", "SUR_TEMP_TYPE"} | {
    n for n, _, _ in USCRN_HOURLY02_FIELDS if n.endswith("_FLAG")
}

USCRN_DAILY01_FIELDS: list[tuple[str, int, int]] = [
    ("WBANNO", 1, 5), ("LST_DATE", 7, 14), ("CRX_VN", 16, 21), ("LONGITUDE", 23, 29),
    ("LATITUDE", 31, 37), ("T_DAILY_MAX", 39, 45), ("T_DAILY_MIN", 47, 53), ("T_DAILY_MEAN", 55, 61),
    ("T_DAILY_AVG", 63, 69), ("P_DAILY_CALC", 71, 77), ("SOLARAD_DAILY", 79, 86),
    ("SUR_TEMP_DAILY_TYPE", 88, 88), ("SUR_TEMP_DAILY_MAX", 90, 96), ("SUR_TEMP_DAILY_MIN", 98, 104),
    ("SUR_TEMP_DAILY_AVG", 106, 112), ("RH_DAILY_MAX", 114, 120), ("RH_DAILY_MIN", 122, 128),
    ("RH_DAILY_AVG", 130, 136), ("SOIL_MOISTURE_5_DAILY", 138, 144), ("SOIL_MOISTURE_10_DAILY", 146, 152),
    ("SOIL_MOISTURE_20_DAILY", 154, 160), ("SOIL_MOISTURE_50_DAILY", 162, 168),
    ("SOIL_MOISTURE_100_DAILY", 170, 176), ("SOIL_TEMP_5_DAILY", 178, 184), ("SOIL_TEMP_10_DAILY", 186, 192),
    ("SOIL_TEMP_20_DAILY", 194, 200), ("SOIL_TEMP_50_DAILY", 202, 208), ("SOIL_TEMP_100_DAILY", 210, 216),
]
USCRN_DAILY01_TEXT = {"WBANNO", "LST_DATE", "CRX_VN", "SUR_TEMP_DAILY_TYPE"}

USCRN_MISSING = ["-9999.0", "-9999", "-99999", "-99.000", "-999.0"]

GSOD_MISSING = {  # column -> sentinel
    "TEMP": 9999.9, "DEWP": 9999.9, "SLP": 9999.9, "MAX": 9999.9, "MIN": 9999.9,
    "VISIB": 999.9, "WDSP": 999.9, "MXSPD": 999.9, "GUST": 999.9, "SNDP": 999.9, "PRCP": 99.99,
}
# STP written with three integer digits: the 9999.9 sentinel and a real 999.9 mb both read this.
GSOD_STP_AMBIGUOUS = 999.9
GSOD_REQUIRED = ["STATION", "DATE", "TEMP", "DEWP", "MAX", "MIN", "PRCP", "SNDP", "WDSP"]

ASOS_NUMERIC = ["tmpc", "dwpc", "tmpf", "dwpf", "relh", "drct", "sknt", "mslp", "alti", "p01m", "p01i",
                "vsby", "gust", "snowdepth", "feel"]
ASOS_REQUIRED = ["station", "valid"]

GHCND_NUMERIC = ["PRCP", "SNWD", "SNOW", "TMAX", "TMIN", "TAVG", "TOBS", "AWND", "WDF2", "WDF5", "WSF2",
                 "WSF5", "WESD", "WESF", "PGTM", "FMTM"]
GHCND_REQUIRED = ["STATION", "DATE"]



def _f_to_c(e: pl.Expr) -> pl.Expr:
    return (e - 32.0) * (5.0 / 9.0)


# ---------------------------------------------------------------------------------------------
def _lines(text: str) -> pl.DataFrame:
    """Every non-blank line with its 1-based number (trailing CR and spaces dropped)."""
    lines = pl.Series("line", text.split("\n"), dtype=pl.Utf8)
    return (
        pl.DataFrame([lines])
        .with_row_index("line_no", offset=1)
        .with_columns(pl.col("line_no").cast(pl.Int64), pl.col("line").str.strip_chars_end("\r \t"))
        .filter(pl.col("line").str.len_bytes() > 0)
    )


def _first_error(conds: list[tuple[pl.Expr, pl.Expr]]) -> pl.Expr:
    """The message of the first true condition, else null."""
    if not conds:
        return pl.lit(None, dtype=pl.Utf8)
    expr = pl.when(conds[0][0]).then(conds[0][1])
    for cond, msg in conds[1:]:
        expr = expr.when(cond).then(msg)
    return expr.otherwise(pl.lit(None, dtype=pl.Utf8))


def _numeric(raw: dict[str, pl.Expr], names: list[str], missing: list[str]) -> tuple[dict[str, pl.Expr], list]:
    """Float columns from stripped strings: sentinels -> null; text that is no number -> error."""
    out, errs = {}, []
    for name in names:
        s = raw[name]
        num = s.cast(pl.Float64, strict=False)
        bad = (s != "") & ~s.is_in(missing) & num.is_null()
        errs.append((bad, pl.format(f"column {name}: {{}} is not a number", s)))
        out[name] = pl.when(s.is_in(missing) | (s == "")).then(None).otherwise(num)
    return out, errs


def _fixed_width(text: str | None, file: str, fields: list[tuple[str, int, int]], text_fields: set[str],
                 stamps: dict[str, tuple[str, str | None, str | None]], data: bytes | None = None) -> pl.DataFrame:
    """``[line_no, *fields, parse_error, *stamps]``: text fields stripped strings, the others
    Float64; ``stamps`` name -> (date field, time field or None, time zone or None) are the
    ``_stamp_expr`` dates/datetimes (a stamp named like a field replaces it in place).

    Fast path (``_fixed_width_fast``) for a well-formed file; the lines it cannot vouch for,
    or the whole file, go through ``_fixed_width_lines``. Both give identical rows.
    ``data``: optionally the bytes ``text`` decodes from; ``text`` may then be None (it is
    decoded only if the general path needs it).
    """
    fast = _fixed_width_fast(text, fields, text_fields, stamps, data)
    if text is None:
        if fast is not None and not fast[1].any():
            return fast[0]
        text = decode_utf8(data, file)
    if fast is not None:
        frame, slow_rows = fast
        if not slow_rows.any():
            return frame
        slow_nos = frame["line_no"].filter(pl.Series(slow_rows))
        slow = _fixed_width_lines(_lines(text).filter(pl.col("line_no").is_in(slow_nos.implode())), fields, text_fields)
        slow = slow.with_columns(**{k: _stamp_expr(*v) for k, v in stamps.items()})
        return pl.concat([frame.filter(~pl.Series(slow_rows)), slow.select(frame.columns)]).sort("line_no")
    df = _lines(text)
    if df.height == 0:
        raise StationFileError(file, "no data lines")
    return _fixed_width_lines(df, fields, text_fields).with_columns(**{k: _stamp_expr(*v) for k, v in stamps.items()})


def _stamp_expr(date: str, time: str | None, tz: str | None) -> pl.Expr:
    """The date (``time`` None) or datetime of YYYYMMDD [HHMM] text fields; null if not one."""
    if time is None:
        return pl.col(date).str.strptime(pl.Date, "%Y%m%d", strict=False)
    expr = pl.concat_str(date, time).str.strptime(pl.Datetime("us"), "%Y%m%d%H%M", strict=False)
    return expr.dt.replace_time_zone(tz) if tz else expr


def _digits(m: np.ndarray, a: int, b: int) -> np.ndarray | None:
    """The integer in columns a..b (1-based, inclusive) of every line, or None unless all are digits."""
    if b - a < 8 and b >= 8 and m.flags.c_contiguous and m.ndim == 2:
        return _digits_swar(m, a, b)
    d = m[:, a - 1:b] - np.uint8(48)
    if (d > 9).any():
        return None
    # float64 matmul is exact here (at most 8 digits < 2**53) and much faster than int64's
    return (d.astype(np.float64) @ (10.0 ** np.arange(b - a, -1, -1))).astype(np.int64)


_U64 = np.uint64


def _digits_swar(m: np.ndarray, a: int, b: int) -> np.ndarray | None:
    """``_digits`` for a field of at most 8 columns ending at column 8 or later: each line's
    8 bytes ending at column b as one little-endian uint64 (a strided view, no copy), the
    field's bytes checked and combined as 8 lanes at once (SWAR)."""
    w = b - a + 1
    x = np.ndarray((m.shape[0],), dtype="<u8", buffer=m, offset=b - 8, strides=(m.shape[1],))
    x = x >> _U64(8 * (8 - w)) << _U64(8 * (8 - w))  # only the field's bytes (the high ones)
    x = x | _U64((0x3030303030303030 >> (8 * w)) if w < 8 else 0)  # lanes before the field as "0"
    hi = _U64(0xF0F0F0F0F0F0F0F0)
    # every byte 0x30..0x39: its high nibble is 3, and still 3 after adding 6
    if ((x & hi) != _U64(0x3030303030303030)).any() or (((x + _U64(0x0606060606060606)) & hi) != _U64(0x3030303030303030)).any():
        return None
    x = x - _U64(0x3030303030303030)  # 8 digits, the first in the lowest byte
    x = (x * _U64(10) + (x >> _U64(8))) & _U64(0x00FF00FF00FF00FF)
    x = (x * _U64(100) + (x >> _U64(16))) & _U64(0x0000FFFF0000FFFF)
    x = (x * _U64(10000) + (x >> _U64(32))) & _U64(0xFFFFFFFF)
    return x.astype(np.int64)


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _ymd_days(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(days since 1970-01-01, valid) for YYYYMMDD integers (proleptic Gregorian, as strptime).

    Integer arithmetic only (H. Hinnant's days_from_civil), on runs of equal values.
    """
    starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
    if len(starts) * 4 < len(v):
        days, ok = _ymd_days(v[starts])
        counts = np.diff(np.append(starts, len(v)))
        return np.repeat(days, counts), np.repeat(ok, counts)
    y, mo, d = v // 10000, v // 100 % 100, v % 100
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    ok = (mo >= 1) & (mo <= 12) & (d >= 1)
    ok &= d <= _MONTH_DAYS[np.clip(mo, 1, 12) - 1] + ((mo == 2) & leap)
    ys = y - (mo <= 2)
    era = ys // 400
    yoe = ys - era * 400
    doy = (153 * ((mo + 9) % 12) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468, ok


def _stamp_numpy(m: np.ndarray, pos: dict[str, tuple[int, int]], date: str, time: str | None, tz: str | None,
                 digits: dict | None = None):
    """``_stamp_expr`` computed from the bytes (a Series), or None unless every line's fields are
    all digits (then ``_stamp_expr`` decides; equality on all-digit fields is tested).
    ``digits`` caches ``_digits`` per field name."""
    digits = {} if digits is None else digits
    for name in (date, time):
        if name is not None and name not in digits:
            digits[name] = _digits(m, *pos[name])
    v = digits[date]
    t = None if time is None else digits[time]
    if v is None or (time is not None and t is None):
        return None
    if ("_ymd", date) not in digits:
        digits["_ymd", date] = _ymd_days(v)
    days, ok = digits["_ymd", date]
    ok = ok.copy()
    if time is None:
        values, dtype = days, pl.Date()
    else:
        hh, mi = t // 100, t % 100
        ok &= (hh < 24) & (mi < 60)
        values, dtype = (days * 1440 + hh * 60 + mi) * 60_000_000, pl.Datetime("us", tz)
    return pl.Series(np.where(ok, values, 0)).cast(dtype).set(pl.Series(~ok), None) if not ok.all() \
        else pl.Series(values).cast(dtype)


# Whitespace other than " " would make polars' CSV float reader and ``str.strip_chars().cast``
# disagree (a leading tab is skipped by one and stripped by the other, "\x0b" only stripped);
# CR would end a CSV row; "," would split a field.
_FAST_FORBIDDEN = (b"\r", b"\t", b"\x0b", b"\x0c", b",")


def _fixed_width_fast(text: str | None, fields: list[tuple[str, int, int]], text_fields: set[str],
                      stamps: dict[str, tuple[str, str | None, str | None]], data: bytes | None = None):
    """``(frame, slow_rows)`` for a file of equal-length ASCII lines, else None.

    No Python per line: the file becomes a CSV by writing "," into the one-character gaps
    between fields, which ``polars.read_csv`` parses in one pass (text fields as strings, the
    others as Float64). Row for row equal to ``_fixed_width_lines`` because the bytes of every
    field are the same (ASCII; no "," CR tab VT FF; LF only at line ends), so
    - a text field is the same string, stripped when it starts or ends with a blank;
    - a numeric field is blanks then a number, read alike by both (tested in
      ``test_parsers``), or it does not read here (trailing blanks, blank, not a number) and
      its row is in ``slow_rows``;
    - a missing sentinel is recognised on the field's bytes: the field equals the sentinel
      right-aligned (its only blanks are leading ones, or it would not have read). Only
      columns holding a sentinel's value (-9999, -99.0, ...) somewhere are checked;
    - a row whose UTC_DATE / LST_DATE is no date is in ``slow_rows``.
    ``slow_rows`` (bool array) must be re-read by the general path; their values here are
    meaningless. ``data``, if given, is ``text`` encoded as UTF-8 (saves a copy); with ``data``,
    ``text`` may be None.

    Fresh memory is the main cost besides ``read_csv``: the bytes are copied once (into a
    ``BytesIO``, whose value ``read_csv`` then reads without another copy); NumPy works on
    views, in row blocks or on a few columns.
    """
    width = fields[-1][2]
    if text is None:
        if not data.isascii():
            return None  # non-ASCII
    elif not text.isascii():
        return None  # non-ASCII
    elif data is None or len(data) != len(text):
        data = text.encode()
    if any(c in data for c in _FAST_FORBIDDEN):
        return None  # a character the fast path does not vouch for
    n, rest = divmod(len(data) + (not data.endswith(b"\n")), width + 1)
    if n == 0 or rest:
        return None
    names = [name for name, _, _ in fields]
    numeric = [(name, a, b) for name, a, b in fields if name not in text_fields]
    if any(b - a + 1 > 8 or b < 8 for _, a, b in numeric):
        return None  # a field the sentinel check (8-byte windows) cannot read
    pos = {name: (a, b) for name, a, b in fields}
    dates = [d for d in ("UTC_DATE", "LST_DATE") if d in pos]
    bio = io.BytesIO()
    bio.write(data)
    if not data.endswith(b"\n"):
        bio.write(b"\n")
    view = bio.getbuffer()
    m = np.frombuffer(view, dtype=np.uint8).reshape(n, width + 1)
    if not (m[:, width] == 10).all() or sum(np.count_nonzero(m[i:i + _BLOCK] == 10) for i in range(0, n, _BLOCK)) != n:
        return None  # not every line is exactly ``width`` characters
    date_bad, digits = [], {}
    for d in dates:  # all-digit dates checked on the bytes, others as the general path does
        digits[d] = _digits(m, *pos[d])
    ok_dates = [d for d in dates if digits[d] is not None]
    if ok_dates:  # one call for all date fields
        days, valid = _ymd_days(np.concatenate([digits[d] for d in ok_dates]))
        for k, d in enumerate(ok_dates):
            digits["_ymd", d] = days[k * n:(k + 1) * n], valid[k * n:(k + 1) * n]
            date_bad.append(~digits["_ymd", d][1])
    out = {name: _stamp_numpy(m, pos, *spec, digits=digits) for name, spec in stamps.items()}
    # A text field is stripped only if it starts or ends with a blank (only " " can occur here;
    # an all-digit field has none).
    text_pos = [(name, a, b) for name, a, b in fields if name in text_fields and digits.get(name) is None]
    ends = m[:, [a - 1 for _, a, _ in text_pos] + [b - 1 for _, _, b in text_pos]] == 32
    blanks = {name for k, (name, _, _) in enumerate(text_pos) if ends[:, k].any() or ends[:, k + len(text_pos)].any()}
    m[:, _gap_columns(fields)] = ord(",")
    del m
    view.release()
    raw = bio.getvalue()  # the buffer itself (no copy once no view is held)
    del bio
    df = pl.read_csv(
        raw, has_header=False, new_columns=names, quote_char=None, ignore_errors=True,
        empty_string_is_null=False, schema={name: (pl.Utf8 if name in text_fields else pl.Float64) for name in names},
    )
    if df.height != n:
        return None
    # Series-level work below: each Polars query costs ~1 ms of overhead at this size
    cols = {name: df.get_column(name) for name in names}
    # every sentinel reads as a value <= -99: only columns reaching that can hold one
    hits = {name: _sentinel_hits(raw, n, width, a, b) for name, a, b in numeric
            if (low := cols[name].min()) is not None and low <= _SENTINEL_MAX}
    for name, hit in hits.items():
        if hit.any():
            cols[name] = cols[name].set(pl.Series(hit), None)
    slow = [pl.col(name).is_null() for name, _, _ in numeric if df.get_column(name).null_count()]
    slow += [pl.col(d).str.strip_chars().str.strptime(pl.Date, "%Y%m%d", strict=False).is_null()
             for d in dates if digits[d] is None]
    slow_rows = np.logical_or.reduce(date_bad) if date_bad else np.zeros(n, dtype=bool)
    if slow:
        slow_rows |= df.select(pl.any_horizontal(slow)).to_series().to_numpy()
    for name in blanks:
        cols[name] = cols[name].str.strip_chars()
    frame = [pl.int_range(1, n + 1, dtype=pl.Int64, eager=True).alias("line_no"), *cols.values(),
             pl.Series("parse_error", [None], dtype=pl.Utf8).new_from_index(0, n)]
    if all(v is not None for v in out.values()):
        for name, series in out.items():  # a stamp named like a field replaces it in place
            series = series.alias(name)
            if name in pos:
                frame[names.index(name) + 1] = series
            else:
                frame.append(series)
        return pl.DataFrame(frame), slow_rows
    # a stamp the bytes could not give: ``_stamp_expr`` on the (stripped) fields, all in order as before
    return pl.DataFrame(frame).with_columns(
        **{k: _stamp_expr(*stamps[k]) if v is None else pl.lit(v) for k, v in out.items()}), slow_rows


_BLOCK = 1024  # rows per NumPy block: temporaries stay small and are reused
_SENTINEL_MAX = max(float(s) for s in USCRN_MISSING)  # the largest value a sentinel reads as


def _sentinel_hits(raw: bytes, n: int, width: int, a: int, b: int) -> np.ndarray:
    """Bool per line: the field in columns a..b (1-based; at most 8 wide, b >= 8) of ``raw``
    (``n`` lines of ``width`` characters and LF) is a missing sentinel, right-aligned.

    The field is read as the little-endian uint64 of the 8 bytes ending at its last column
    (a strided view, no copy), masked to its own bytes, and compared with the sentinels padded
    to its width: one multiply-shift hash, one table lookup, one compare.
    """
    w = b - a + 1
    vals = np.ndarray((n,), dtype="<u8", buffer=raw, offset=b - 8, strides=(width + 1,))
    vals = vals & np.uint64(~((1 << (8 * (8 - w))) - 1) & (2**64 - 1))
    magic, table = _sentinel_table(w)
    return table[(vals * magic) >> np.uint64(61)] == vals


_SENTINEL_TABLES: dict[int, tuple[np.uint64, np.ndarray]] = {}


def _sentinel_table(w: int) -> tuple[np.uint64, np.ndarray]:
    """(magic, table of 8 keys): ``table[(key * magic) >> 61] == key`` for exactly the
    sentinels that fit in width ``w`` (as masked little-endian windows); other slots hold 0
    (eight NUL bytes), which no ASCII field equals."""
    if w not in _SENTINEL_TABLES:
        keys = [int.from_bytes(s.rjust(w).encode().rjust(8, b"\0"), "little") for s in USCRN_MISSING if len(s) <= w]
        for magic in range(0x9E3779B97F4A7C15, 0x9E3779B97F4A7C15 + 2 * 10_000, 2):  # odd multipliers
            slots = [((k * magic) % 2**64) >> 61 for k in keys]
            if len(set(slots)) == len(keys):
                table = np.zeros(8, dtype=np.uint64)
                table[slots] = keys
                _SENTINEL_TABLES[w] = (np.uint64(magic), table)
                break
        else:  # pragma: no cover - a multiplier is found within a few tries
            raise RuntimeError("no sentinel hash")
    return _SENTINEL_TABLES[w]


def _gap_columns(fields: list[tuple[str, int, int]]) -> list[int]:
    """0-based columns of the one-character gaps between fields (ValueError if a gap is not 1)."""
    if [a - prev_b for (_, _, prev_b), (_, a, _) in zip(fields, fields[1:])] != [2] * (len(fields) - 1):
        raise ValueError("fixed-width fast path needs exactly one column between fields")
    return [a - 2 for _, a, _ in fields[1:]]


def _fixed_width_lines(df: pl.DataFrame, fields: list[tuple[str, int, int]], text_fields: set[str]) -> pl.DataFrame:
    """The general path: ``df`` is ``_lines`` output (or some of its rows); any line, any problem."""
    width = fields[-1][2]
    numeric_names = [n_ for n_, _, _ in fields if n_ not in text_fields]
    line = pl.col("line")
    raw = {name: line.str.slice(a - 1, b - a + 1).str.strip_chars() for name, a, b in fields}
    df = df.with_columns(line.str.len_chars().alias("_len"), **raw)
    # One cast per column; sentinels and blanks -> null. Cheap boolean flags first: the error
    # messages are only built for the (usually zero) rows that have a problem.
    nums = {n_: pl.when(pl.col(n_).is_in(USCRN_MISSING) | (pl.col(n_) == "")).then(None)
            .otherwise(pl.col(n_).cast(pl.Float64, strict=False)) for n_ in numeric_names}
    df = df.with_columns(**{f"_v_{k}": v for k, v in nums.items()})
    bad_num = [(pl.col(n_) != "") & ~pl.col(n_).is_in(USCRN_MISSING) & pl.col(f"_v_{n_}").is_null() for n_ in numeric_names]
    bad_date = [pl.col(d).str.strptime(pl.Date, "%Y%m%d", strict=False).is_null()
                for d in ("UTC_DATE", "LST_DATE") if d in raw]
    df = df.with_columns(pl.any_horizontal((pl.col("_len") != width), *bad_num, *bad_date).alias("_bad"))
    if df["_bad"].any():
        trunc = [(pl.col("_len") < b, pl.format(f"column {name}: line truncated at {{}} of {width} characters", pl.col("_len")))
                 for name, a, b in fields]
        too_long = (pl.col("_len") > width, pl.lit(f"column {fields[-1][0]}: line longer than {width} characters"))
        date_errs = [(pl.col(d).str.strptime(pl.Date, "%Y%m%d", strict=False).is_null(),
                      pl.format(f"column {d}: {{}} is not a YYYYMMDD date", pl.col(d))) for d in ("UTC_DATE", "LST_DATE") if d in raw]
        num_errs = [(bad, pl.format(f"column {n_}: {{}} is not a number", pl.col(n_))) for n_, bad in zip(numeric_names, bad_num)]
        errs = df.filter("_bad").select("line_no", _first_error([*trunc, too_long, *date_errs, *num_errs]).alias("parse_error"))
        df = df.join(errs, on="line_no", how="left")
    else:
        df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("parse_error"))
    ok = pl.col("parse_error").is_null()
    df = df.with_columns(
        **{k: pl.when(ok).then(pl.col(f"_v_{k}")) for k in numeric_names},
        **{k: pl.when(ok).then(pl.col(k)) for k in text_fields},
    )
    return df.drop("line", "_len", "_bad", *[f"_v_{k}" for k in numeric_names])


USCRN_HOURLY02_STAMPS = {"utc_datetime": ("UTC_DATE", "UTC_TIME", "UTC"), "lst_datetime": ("LST_DATE", "LST_TIME", None)}
USCRN_DAILY01_STAMPS = {"LST_DATE": ("LST_DATE", None, None)}


def parse_uscrn_hourly02(text: str | None, file: str, data: bytes | None = None) -> pl.DataFrame:
    """``data``: optionally the file's bytes (``text`` their decoding, or None: decoded if needed)."""
    df = _fixed_width(text, file, USCRN_HOURLY02_FIELDS, USCRN_HOURLY02_TEXT, USCRN_HOURLY02_STAMPS, data)
    return _finish(df, Format.USCRN_HOURLY02)


def parse_uscrn_daily01(text: str | None, file: str, data: bytes | None = None) -> pl.DataFrame:
    """``data``: optionally the file's bytes (``text`` their decoding, or None: decoded if needed)."""
    df = _fixed_width(text, file, USCRN_DAILY01_FIELDS, USCRN_DAILY01_TEXT, USCRN_DAILY01_STAMPS, data)
    return _finish(df, Format.USCRN_DAILY01)


def _finish(df: pl.DataFrame, fmt: Format) -> pl.DataFrame:
    """Lower-case names and ``source_format``, without a Polars query (~1 ms each at 10k rows)."""
    names = [c.lower() for c in df.columns]
    if len(set(names)) != len(names) or "source_format" in names:  # let Polars handle (or reject) it
        return df.rename({c: c.lower() for c in df.columns}).with_columns(pl.lit(fmt.value).alias("source_format"))
    out = df.clone()  # shallow
    out.columns = names
    return out.hstack([pl.Series("source_format", [fmt.value], dtype=pl.Utf8).new_from_index(0, out.height)])


# ---------------------------------------------------------------------------------------------
def _csv(text: str, file: str, required: list[str], *, upper: bool) -> pl.DataFrame:
    """Header + string columns of a CSV, one row per line, with ``line_no`` and ``parse_error``.

    A line whose field count (commas outside quotes) differs from the header's is kept with
    null fields and a ``parse_error`` naming the first missing/extra column.
    """
    df = _lines(text.lstrip("\ufeff"))
    if df.height == 0:
        raise StationFileError(file, "empty file")
    header_line = df["line"][0]
    names = [h.strip().strip('"').strip() for h in header_line.split(",")]
    names = [h.upper() if upper else h.lower() for h in names]
    if len(set(names)) != len(names) or any(not h for h in names):
        raise StationFileError(file, f"header has empty or repeated column names: {names}", line=1)
    missing = [r for r in required if r not in names]
    if missing:
        raise StationFileError(file, f"header lacks required column(s) {missing}", line=1, column=missing[0])
    body = df.slice(1)
    if body.height == 0:
        raise StationFileError(file, "header but no data lines", line=1)
    ncols = len(names)
    unquoted = pl.col("line").str.replace_all(r'"[^"]*"', "")
    body = body.with_columns(
        (unquoted.str.count_matches(",") + 1).alias("_n"),
        (pl.col("line").str.count_matches('"') % 2 == 1).alias("_oddq"),
    )
    name_at = pl.Series(names + ["<extra>"])
    # Name the first missing column for short lines (vectorised lookup by field count).
    first_missing = pl.col("_n").clip(0, ncols).replace_strict(
        list(range(ncols + 1)), names + ["<extra>"], return_dtype=pl.Utf8
    )
    body = body.with_columns(
        pl.when(pl.col("_oddq")).then(pl.lit("column ?: unbalanced quote"))
        .when(pl.col("_n") < ncols)
        .then(pl.format("column {}: line has {} of {} fields (truncated?)", first_missing, pl.col("_n"), pl.lit(ncols)))
        .when(pl.col("_n") > ncols)
        .then(pl.format("column <extra>: line has {} fields, header has {}", pl.col("_n"), pl.lit(ncols)))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
        .alias("parse_error")
    )
    good = body.filter(pl.col("parse_error").is_null())
    bad = body.filter(pl.col("parse_error").is_not_null())
    if good.height:
        parsed = pl.read_csv(
            "\n".join(good["line"].to_list()).encode(),
            has_header=False, new_columns=names, infer_schema=False, quote_char='"',
        ).with_columns(pl.all().str.strip_chars())
        parsed = parsed.with_columns(good["line_no"], pl.lit(None, dtype=pl.Utf8).alias("parse_error"))
    else:
        parsed = pl.DataFrame(schema={**{n: pl.Utf8 for n in names}, "line_no": pl.Int64, "parse_error": pl.Utf8})
    bad_rows = bad.select("line_no", "parse_error").with_columns([pl.lit(None, dtype=pl.Utf8).alias(n) for n in names])
    out = pl.concat([parsed, bad_rows.select(parsed.columns)]).sort("line_no")
    return out


def _cast_numeric(df: pl.DataFrame, names: list[str], missing: list[str]) -> pl.DataFrame:
    present = [n for n in names if n in df.columns]
    nums, errs = _numeric({n: pl.col(n) for n in present}, present, missing)
    return df.with_columns(
        pl.coalesce(pl.col("parse_error"), _first_error(errs)).alias("parse_error")
    ).with_columns(**{k: pl.when(pl.col("parse_error").is_null()).then(v) for k, v in nums.items()})


def parse_gsod(text: str, file: str) -> pl.DataFrame:
    df = _csv(text, file, GSOD_REQUIRED, upper=True)
    num = [c for c in ("LATITUDE", "LONGITUDE", "ELEVATION", "STP", *GSOD_MISSING) if c in df.columns]
    df = _cast_numeric(df, num, [])
    df = df.with_columns(
        **{c: pl.when(pl.col(c) == s).then(None).otherwise(pl.col(c)) for c, s in GSOD_MISSING.items() if c in df.columns}
    )
    if "STP" in df.columns:
        count = (pl.col("STP_ATTRIBUTES").str.strip_chars().cast(pl.Int64, strict=False)
                 if "STP_ATTRIBUTES" in df.columns else pl.lit(None, dtype=pl.Int64))
        stp = pl.col("STP")
        df = df.with_columns(
            pl.when((stp == GSOD_STP_AMBIGUOUS) & ~(count > 0).fill_null(False)).then(None)   # the 9999.9 sentinel
            .when(stp < 200).then(stp + 1000)
            .otherwise(stp).alias("STP"))
    date = pl.col("DATE").str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    df = df.with_columns(
        pl.coalesce(pl.col("parse_error"), pl.when(date.is_null() & pl.col("parse_error").is_null())
                    .then(pl.format("column DATE: {} is not a YYYY-MM-DD date", pl.col("DATE")))).alias("parse_error"),
        date.alias("date"),
    ).drop("DATE")
    return _finish(df, Format.GSOD_CSV)


def parse_iem_asos(text: str, file: str) -> pl.DataFrame:
    df = _csv(text, file, ASOS_REQUIRED, upper=False)
    df = _cast_numeric(df, ASOS_NUMERIC, ["M", "T"])
    # "T" (trace) in p01m/p01i is a trace of precipitation: kept as 0.0 would be a guess; null.
    valid = pl.col("valid").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M", strict=False).dt.replace_time_zone("UTC")
    df = df.with_columns(
        pl.coalesce(pl.col("parse_error"), pl.when(valid.is_null())
                    .then(pl.format("column valid: {} is not a 'YYYY-MM-DD HH:MM' UTC time", pl.col("valid")))).alias("parse_error"),
        valid.alias("valid_utc"),
    )
    return _finish(df, Format.IEM_ASOS_CSV)


def parse_ghcnd(text: str, file: str) -> pl.DataFrame:
    df = _csv(text, file, GHCND_REQUIRED, upper=True)
    num = [c for c in df.columns if c in GHCND_NUMERIC or (c.startswith("WT") and c[2:].isdigit())]
    df = _cast_numeric(df, num, ["-9999", "-9999.0"])
    date = pl.coalesce(
        pl.col("DATE").str.strptime(pl.Date, "%Y%m%d", strict=False),
        pl.col("DATE").str.strptime(pl.Date, "%Y-%m-%d", strict=False),
    )
    df = df.with_columns(
        pl.coalesce(pl.col("parse_error"), pl.when(date.is_null())
                    .then(pl.format("column DATE: {} is not a date", pl.col("DATE")))).alias("parse_error"),
        date.alias("date"),
    ).drop("DATE")
    return _finish(df, Format.GHCND_CDO_CSV)


def ghcnd_units(native: pl.DataFrame) -> str:
    """'tenths' (raw GHCN-Daily units) or 'metric' (CDO-converted degC / mm / m/s)."""
    temps = [c for c in ("tmax", "tmin", "tavg", "prcp") if c in native.columns]
    if not temps:
        return "tenths"
    vals = pl.concat([native[c].drop_nulls() for c in temps])
    if vals.len() == 0:
        return "tenths"
    has_decimals = bool(((vals - vals.round(0)).abs() > 1e-9).any())
    if has_decimals:
        return "metric"
    return "tenths" if float(vals.abs().max()) >= 130 or "prcp" in native.columns else "metric"


RWIS_REQUIRED = ["time_local", "time_utc", "utc_offset_h", "pavement_temp_f", "air_temp_f", "dewpoint_f", "precip_code"]
RWIS_TIME_ZONE = "America/Indiana/Indianapolis"
RWIS_PRECIP_CODES = {"1": True, "2": False}  # 1 = precipitation detected, 2 = none


def parse_indot_rwis(text: str, file: str) -> pl.DataFrame:
    df = _csv(text, file, RWIS_REQUIRED, upper=False)
    df = _cast_numeric(df, ["pavement_temp_f", "air_temp_f", "dewpoint_f", "utc_offset_h"], [])
    local = pl.col("time_local").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False)
    utc = pl.col("time_utc").str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%MZ", strict=False)
    # The local clock read in Indiana's zone (DST-aware); null where the clock time does not exist
    # or is ambiguous, so such a line is refused rather than guessed.
    expected = (local.dt.replace_time_zone(RWIS_TIME_ZONE, ambiguous="null", non_existent="null")
                .dt.convert_time_zone("UTC"))
    offset_h = (local - utc.dt.replace_time_zone(None)).dt.total_minutes() / 60.0
    code = pl.col("precip_code")
    err = _first_error([
        (local.is_null(), pl.format("column time_local: {} is not a 'YYYY-MM-DD HH:MM:SS' local time", pl.col("time_local"))),
        (utc.is_null(), pl.format("column time_utc: {} is not a 'YYYY-MM-DDTHH:MMZ' UTC time", pl.col("time_utc"))),
        (expected.is_null(), pl.format(f"column time_local: {{}} does not exist or is ambiguous in {RWIS_TIME_ZONE} "
                                       "(daylight-saving change)", pl.col("time_local"))),
        (expected != utc, pl.format(f"column time_utc: {{}} does not match time_local {{}} in {RWIS_TIME_ZONE} "
                                    "(expected {})", pl.col("time_utc"), pl.col("time_local"),
                                    expected.dt.strftime("%Y-%m-%dT%H:%MZ"))),
        (pl.col("utc_offset_h").is_not_null() & (pl.col("utc_offset_h") != offset_h),
         pl.format("column utc_offset_h: {} does not match time_local - time_utc = {} h", pl.col("utc_offset_h"), offset_h)),
        (code.is_not_null() & ~code.is_in(list(RWIS_PRECIP_CODES)),
         pl.format("column precip_code: {} is not 1 (precipitation detected) or 2 (none)", code)),
    ])
    df = df.with_columns(pl.coalesce(pl.col("parse_error"), err).alias("parse_error"))
    df = df.with_columns(pl.when(pl.col("parse_error").is_null()).then(utc).alias("timestamp_utc"),
                         code.replace_strict(RWIS_PRECIP_CODES, default=None, return_dtype=pl.Boolean).alias("precip_detected"))
    return _finish(df, Format.INDOT_RWIS_CSV)


PARSERS = {
    Format.USCRN_HOURLY02: parse_uscrn_hourly02,
    Format.USCRN_DAILY01: parse_uscrn_daily01,
    Format.GSOD_CSV: parse_gsod,
    Format.IEM_ASOS_CSV: parse_iem_asos,
    Format.GHCND_CDO_CSV: parse_ghcnd,
    Format.INDOT_RWIS_CSV: parse_indot_rwis,
}


def parse_native(data: bytes, file: str) -> tuple[Format, pl.DataFrame]:
    """Detect and parse; a file that cannot be read as a whole raises ``StationFileError``."""
    fmt = None
    if data.isascii():  # valid UTF-8 as it is: a USCRN file is read from the bytes, never decoded whole
        head = data[:data.find(b"\n") + 1] if b"\n" in data else data
        try:
            fmt = detect_format(head.decode(), file)  # USCRN is recognised by the first line
        except StationFileError:
            fmt = None
    if fmt in (Format.USCRN_HOURLY02, Format.USCRN_DAILY01):
        native = PARSERS[fmt](None, file, data=data)
    else:
        text = decode_utf8(data, file)
        fmt = detect_format(text, file)
        native = PARSERS[fmt](text, file)
    if native.height and native["parse_error"].null_count() == 0:
        first = native.row(0, named=True)
        raise StationFileError(
            file, f"no line could be read as {fmt.value}; first problem: {first['parse_error']}", line=first["line_no"]
        )
    return fmt, native


# ---------------------------------------------------------------------------------------------
def to_clean(native: pl.DataFrame, fmt: Format | str, station_id: str) -> pl.DataFrame:
    """The native frame in ``schema.CLEAN`` (SI units), one row per source line, unvalidated.

    Lines with a ``parse_error`` keep their row (values null) so validation can reject them.
    """
    fmt = Format(fmt)
    c = pl.col
    if fmt is Format.USCRN_HOURLY02:
        cols = {
            "timestamp_utc": c("utc_datetime"),
            "air_temp_c": c("t_hr_avg"), "air_temp_max_c": c("t_max"), "air_temp_min_c": c("t_min"),
            "precip_mm": c("p_calc"), "relative_humidity_pct": c("rh_hr_avg"),
            "solar_radiation_wm2": c("solarad"), "surface_temp_c": c("sur_temp"),
            "soil_moisture_5cm_m3m3": c("soil_moisture_5"), "soil_temp_5cm_c": c("soil_temp_5"),
            "qc_solar_radiation": c("solarad_flag"), "qc_surface_temp": c("sur_temp_flag"),
            "qc_relative_humidity": c("rh_hr_avg_flag"), "surface_temp_type": c("sur_temp_type"),
        }
    elif fmt is Format.USCRN_DAILY01:
        cols = {
            "timestamp_utc": c("lst_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "air_temp_c": c("t_daily_avg"), "air_temp_max_c": c("t_daily_max"), "air_temp_min_c": c("t_daily_min"),
            "precip_mm": c("p_daily_calc"), "relative_humidity_pct": c("rh_daily_avg"),
            # SOLARAD_DAILY is a daily total in MJ/m^2: the mean irradiance is MJ * 1e6 / 86400 s.
            "solar_radiation_wm2": c("solarad_daily") * (1e6 / 86400.0), "surface_temp_c": c("sur_temp_daily_avg"),
            "soil_moisture_5cm_m3m3": c("soil_moisture_5_daily"), "soil_temp_5cm_c": c("soil_temp_5_daily"),
            "surface_temp_type": c("sur_temp_daily_type"),
        }
    elif fmt is Format.GSOD_CSV:
        cols = {
            "timestamp_utc": c("date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "air_temp_c": _f_to_c(c("temp")), "air_temp_max_c": _f_to_c(c("max")), "air_temp_min_c": _f_to_c(c("min")),
            "dew_point_c": _f_to_c(c("dewp")), "precip_mm": c("prcp") * INCH_MM, "snow_depth_mm": c("sndp") * INCH_MM,
            "wind_speed_ms": c("wdsp") * KNOT_MS, "wind_speed_max_ms": c("mxspd") * KNOT_MS,
            "wind_gust_ms": c("gust") * KNOT_MS if "gust" in native.columns else pl.lit(None),
            "pressure_hpa": c("slp") if "slp" in native.columns else pl.lit(None),
            "station_pressure_hpa": c("stp") if "stp" in native.columns else pl.lit(None),
            "visibility_m": c("visib") * MILE_M if "visib" in native.columns else pl.lit(None),
            "precip_flag": c("prcp_attributes") if "prcp_attributes" in native.columns else pl.lit(None),
            "weather_flags": c("frshtt") if "frshtt" in native.columns else pl.lit(None),
        }
    elif fmt is Format.IEM_ASOS_CSV:
        def opt(name, expr):
            return expr if name in native.columns else pl.lit(None)
        temp = c("tmpc") if "tmpc" in native.columns else (_f_to_c(c("tmpf")) if "tmpf" in native.columns else pl.lit(None))
        dew = c("dwpc") if "dwpc" in native.columns else (_f_to_c(c("dwpf")) if "dwpf" in native.columns else pl.lit(None))
        precip = c("p01m") if "p01m" in native.columns else (c("p01i") * INCH_MM if "p01i" in native.columns else pl.lit(None))
        cols = {
            "timestamp_utc": c("valid_utc"), "air_temp_c": temp, "dew_point_c": dew, "precip_mm": precip,
            "relative_humidity_pct": opt("relh", c("relh")), "wind_dir_deg": opt("drct", c("drct")),
            "wind_speed_ms": opt("sknt", c("sknt") * KNOT_MS), "wind_gust_ms": opt("gust", c("gust") * KNOT_MS),
            "pressure_hpa": opt("mslp", c("mslp")), "visibility_m": opt("vsby", c("vsby") * MILE_M),
            "snow_depth_mm": opt("snowdepth", c("snowdepth") * INCH_MM),
        }
    elif fmt is Format.GHCND_CDO_CSV:
        tenths = ghcnd_units(native) == "tenths"
        k = 0.1 if tenths else 1.0

        def opt(name, factor):
            return c(name) * factor if name in native.columns else pl.lit(None)
        wt = sorted(x for x in native.columns if x.startswith("wt") and x[2:].isdigit())
        flags = (
            pl.concat_str([pl.when(c(w) == 1).then(pl.lit(w.upper())) for w in wt], separator=",", ignore_nulls=True)
            if wt else pl.lit(None)
        )
        cols = {
            "timestamp_utc": c("date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "air_temp_c": opt("tavg", k), "air_temp_max_c": opt("tmax", k), "air_temp_min_c": opt("tmin", k),
            "precip_mm": opt("prcp", k), "snow_depth_mm": opt("snwd", 1.0), "snowfall_mm": opt("snow", 1.0),
            "wind_speed_ms": opt("awnd", k), "wind_speed_max_ms": opt("wsf2", k), "wind_gust_ms": opt("wsf5", k),
            "wind_dir_deg": opt("wdf2", 1.0),
            "weather_flags": pl.when(flags == "").then(None).otherwise(flags) if wt else flags,
        }
    elif fmt is Format.INDOT_RWIS_CSV:
        cols = {
            "timestamp_utc": c("timestamp_utc"), "air_temp_c": _f_to_c(c("air_temp_f")),
            "dew_point_c": _f_to_c(c("dewpoint_f")), "surface_temp_c": _f_to_c(c("pavement_temp_f")),
            "precip_detected": c("precip_detected"),
        }
    else:  # pragma: no cover - Format is closed
        raise ValueError(fmt)
    out = native.select(
        pl.lit(station_id).alias("station_id"),
        pl.lit(fmt.value).alias("source_format"),
        pl.lit(RESOLUTION[fmt]).alias("resolution"),
        c("line_no"),
        c("parse_error"),
        **{k_: v for k_, v in cols.items()},
    )
    return schema.conform(out, {**schema.CLEAN, "parse_error": pl.Utf8()})


def claimed_period(native: pl.DataFrame, fmt: Format | str):
    """Inclusive (start, end) UTC datetimes a file claims to cover, or None when the format claims none.

    A USCRN file holds one year: daily01 by LST date (Y-01-01 .. Y-12-31); hourly02 by UTC,
    end-stamped (Y-01-01 01:00 .. Y+1-01-01 00:00 UTC; the real CO Nunn file starts at
    2023-01-01 01:00 UTC = 2022-12-31 18:00 LST). Y is the most common year of the rows.
    The CSV formats carry no claimed period.
    """
    import datetime as dt

    fmt = Format(fmt)
    utc = dt.timezone.utc
    ok = native.filter(pl.col("parse_error").is_null())
    if fmt is Format.USCRN_DAILY01 and ok.height:
        year = int(ok["lst_date"].dt.year().mode().min())
        return dt.datetime(year, 1, 1, tzinfo=utc), dt.datetime(year, 12, 31, tzinfo=utc)
    if fmt is Format.USCRN_HOURLY02 and ok.height:
        year = int((ok["utc_datetime"] - dt.timedelta(hours=1)).dt.year().mode().min())
        return dt.datetime(year, 1, 1, 1, tzinfo=utc), dt.datetime(year + 1, 1, 1, tzinfo=utc)
    return None
