"""Every parser on every real sample file, with values checked against the file's text."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from snoiq_assets.lib.stations import parsers, schema
from snoiq_assets.lib.stations.formats import Format, detect_format
from snoiq_assets.lib.stations.validate import validate

REAL = {
    "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt": (Format.USCRN_HOURLY02, 48),
    "uscrn/CRND0103-2020-AK_Aleknagik_1_NNE.txt": (Format.USCRN_DAILY01, 366),
    "station_obs/gsod_72698024229_KPDX_2016-2024.csv": (Format.GSOD_CSV, 2923),
    "station_obs/ghcnd_USW00024233_BicycleWeather_2012-2015.csv": (Format.GHCND_CDO_CSV, 1340),
    "station_obs/iem_asos_CLE_2010-10.csv": (Format.IEM_ASOS_CSV, 150),
    "station_obs/iem_asos_GRB_2010-10.csv": (Format.IEM_ASOS_CSV, 206),
    "station_obs/iem_asos_MSP_2010-10.csv": (Format.IEM_ASOS_CSV, 237),
    "station_obs/iem_asos_ORD_2010-10.csv": (Format.IEM_ASOS_CSV, 165),
    "road_weather/rwis_obs_fort_wayne_2018-12_2019-03.csv": (Format.INDOT_RWIS_CSV, 17706),
    "road_weather/rwis_obs_gas_city_2018-12_2019-03.csv": (Format.INDOT_RWIS_CSV, 17688),
    "road_weather/rwis_obs_jeffersonville_2018-12_2019-03.csv": (Format.INDOT_RWIS_CSV, 12771),
    "road_weather/rwis_obs_scottsburg_2018-12_2019-03.csv": (Format.INDOT_RWIS_CSV, 17820),
}
UTC = dt.timezone.utc


def _parse(sample_dir, rel):
    return parsers.parse_native((sample_dir / rel).read_bytes(), rel)


@pytest.mark.parametrize("rel", sorted(REAL))
def test_every_real_file_parses_to_the_clean_schema(sample_dir, rel):
    fmt, native = _parse(sample_dir, rel)
    assert fmt == REAL[rel][0]
    assert native.height == REAL[rel][1]
    assert native["parse_error"].null_count() == native.height  # every real line is readable
    clean, rejects = validate(parsers.to_clean(native, fmt, "S1"), claimed_period=parsers.claimed_period(native, fmt))
    assert list(clean.schema.items()) == list(schema.CLEAN.items())
    assert list(rejects.schema.items()) == list(schema.REJECTS.items())
    assert clean["timestamp_utc"].is_sorted()
    assert clean.height + rejects.filter(pl.col("action") == "dropped").height == native.height


def test_format_is_recognised_from_content_not_name(sample_dir):
    text = (sample_dir / "station_obs/iem_asos_CLE_2010-10.csv").read_text()
    assert detect_format(text, "misleading_gsod_name.txt") is Format.IEM_ASOS_CSV


def test_uscrn_hourly02_all_38_fields(sample_dir):
    _, n = _parse(sample_dir, "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt")
    assert [f.lower() for f, _, _ in parsers.USCRN_HOURLY02_FIELDS] == [c for c in n.columns if c in
                                                                       {f.lower() for f, _, _ in parsers.USCRN_HOURLY02_FIELDS}]
    first = n.row(0, named=True)
    # 94074 20230101 0100 20221231 1800  2.622 -104.76 40.81 4.6 4.5 5.1 4.1 0.0 0 0 0 0 0 0 C 0.9 0 ...
    assert first["wbanno"] == "94074" and first["crx_vn"] == "2.622"
    assert first["utc_datetime"] == dt.datetime(2023, 1, 1, 1, tzinfo=UTC)
    assert first["lst_datetime"] == dt.datetime(2022, 12, 31, 18)
    assert (first["longitude"], first["latitude"]) == (-104.76, 40.81)
    assert (first["t_calc"], first["t_hr_avg"], first["t_max"], first["t_min"]) == (4.6, 4.5, 5.1, 4.1)
    assert first["sur_temp_type"] == "C" and first["sur_temp"] == 0.9 and first["sur_temp_flag"] == "0"
    assert first["rh_hr_avg"] == 48 and first["rh_hr_avg_flag"] == "0"
    # -99.000 soil moisture is missing, real values kept
    assert first["soil_moisture_5"] is None and first["soil_moisture_50"] == 0.063 and first["soil_temp_100"] == 2.6
    assert n["p_calc"].max() == pytest.approx(0.6)


def test_uscrn_daily01_28_fields_and_missing(sample_dir):
    fmt, n = _parse(sample_dir, "uscrn/CRND0103-2020-AK_Aleknagik_1_NNE.txt")
    first = n.row(0, named=True)
    assert first["lst_date"] == dt.date(2020, 1, 1)
    assert (first["t_daily_max"], first["t_daily_min"], first["t_daily_mean"], first["t_daily_avg"]) == (-19.0, -27.8, -23.4, -21.0)
    assert first["solarad_daily"] == 0.31 and first["sur_temp_daily_type"] == "C" and first["rh_daily_avg"] == 62.6
    assert first["soil_moisture_5_daily"] is None and first["soil_temp_100_daily"] is None  # -99.000 / -9999.0
    assert parsers.claimed_period(n, fmt) == (dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2020, 12, 31, tzinfo=UTC))


def test_gsod_imperial_to_si_and_sentinels(sample_dir):
    fmt, n = _parse(sample_dir, "station_obs/gsod_72698024229_KPDX_2016-2024.csv")
    c = parsers.to_clean(n, fmt, "72698024229")
    day = c.filter(pl.col("timestamp_utc") == dt.datetime(2017, 1, 11, tzinfo=UTC)).row(0, named=True)
    assert day["snow_depth_mm"] == 7.1 * 25.4
    first = c.row(0, named=True)  # 2016-01-01: TEMP 33.9F, DEWP 18.1F, PRCP 0.00 G, SNDP 999.9, WDSP 19.8 kn, STP "028.2"
    assert first["air_temp_c"] == pytest.approx((33.9 - 32) * 5 / 9)
    assert first["dew_point_c"] == pytest.approx((18.1 - 32) * 5 / 9)
    assert first["precip_mm"] == 0.0 and first["precip_flag"] == "G" and first["snow_depth_mm"] is None
    assert first["wind_speed_ms"] == 19.8 * (1852 / 3600)   # the international knot, exactly
    assert first["station_pressure_hpa"] == pytest.approx(1028.2) and first["pressure_hpa"] == 1032.0
    assert first["weather_flags"] == "000000" and first["visibility_m"] == 10 * 1609.344
    assert n["max"].max() < 9999  # 9999.9 sentinel nulled
    assert c["air_temp_max_c"].null_count() == n["max"].null_count() > 0


def test_ghcnd_units_detected_as_tenths(sample_dir):
    fmt, n = _parse(sample_dir, "station_obs/ghcnd_USW00024233_BicycleWeather_2012-2015.csv")
    assert parsers.ghcnd_units(n) == "tenths"
    c = parsers.to_clean(n, fmt, "USW00024233")
    first = c.row(0, named=True)  # 20120101: PRCP 0, TMAX 128, TMIN 50, AWND 47, WT14 = 1
    assert (first["air_temp_max_c"], first["air_temp_min_c"], first["wind_speed_ms"]) == (12.8, 5.0, pytest.approx(4.7))
    assert first["weather_flags"] == "WT14"
    assert c["snow_depth_mm"].max() == 80 and c["snowfall_mm"].null_count() > 0  # SNWD mm, SNOW -9999 -> null
    second = c.row(1, named=True)
    assert second["precip_mm"] == pytest.approx(10.9)


def test_ghcnd_converted_metric_export_detected():
    text = "STATION,STATION_NAME,DATE,PRCP,TMAX,TMIN\nGHCND:X,X,20200101,1.2,12.8,5.0\nGHCND:X,X,20200102,0.0,10.6,-9999\n"
    fmt, n = parsers.parse_native(text.encode(), "metric.csv")
    assert parsers.ghcnd_units(n) == "metric"
    c = parsers.to_clean(n, fmt, "X")
    assert c["air_temp_max_c"].to_list() == [12.8, 10.6] and c["air_temp_min_c"].to_list() == [5.0, None]


def test_iem_asos_padded_header_and_missing(sample_dir):
    fmt, n = _parse(sample_dir, "station_obs/iem_asos_CLE_2010-10.csv")
    assert {"tmpc", "dwpc", "drct", "sknt", "mslp", "p01m"} <= set(n.columns)
    c = parsers.to_clean(n, fmt, "CLE")
    first = c.row(0, named=True)  # CLE,2010-10-23 00:51,7.20,1.70,190.00,4.00,1021.60,M
    assert first["timestamp_utc"] == dt.datetime(2010, 10, 23, 0, 51, tzinfo=UTC)
    assert (first["air_temp_c"], first["dew_point_c"], first["wind_dir_deg"], first["pressure_hpa"]) == (7.2, 1.7, 190.0, 1021.6)
    assert first["wind_speed_ms"] == 4 * (1852 / 3600) and first["precip_mm"] is None


def test_real_grb_file_has_duplicate_timestamps_rejected(sample_dir):
    fmt, n = _parse(sample_dir, "station_obs/iem_asos_GRB_2010-10.csv")
    clean, rejects = validate(parsers.to_clean(n, fmt, "GRB"))
    dup = rejects.filter(pl.col("rule") == "duplicate_timestamp")
    assert dup.height == 4 and 42 in dup["line_no"].to_list()  # lines 41-43 are three 06:53 reports
    assert clean.filter(pl.struct("station_id", "timestamp_utc").is_duplicated()).height == 0


# --- the USCRN fast path (``parsers._fixed_width_fast``) must equal the general path ---------
NUNN = "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt"
DAILY = "uscrn/CRND0103-2020-AK_Aleknagik_1_NNE.txt"


def _general(text, fields, text_fields, stamps):
    """The general (line-by-line expressions) path on the whole file."""
    return parsers._fixed_width_lines(parsers._lines(text), fields, text_fields).with_columns(
        **{k: parsers._stamp_expr(*v) for k, v in stamps.items()})


def _same(a: pl.DataFrame, b: pl.DataFrame):
    assert a.schema == b.schema
    for c in a.columns:  # floats bit for bit (-0.0, NaN), nulls in the same places
        if a[c].dtype == pl.Float64:
            assert a[c].is_null().equals(b[c].is_null()), c
            assert (a[c].fill_null(0.5).to_numpy().view("i8") == b[c].fill_null(0.5).to_numpy().view("i8")).all(), c
        else:
            assert a[c].equals(b[c]), c


@pytest.mark.parametrize("rel,fields,text_fields,stamps", [
    (NUNN, parsers.USCRN_HOURLY02_FIELDS, parsers.USCRN_HOURLY02_TEXT, parsers.USCRN_HOURLY02_STAMPS),
    (DAILY, parsers.USCRN_DAILY01_FIELDS, parsers.USCRN_DAILY01_TEXT, parsers.USCRN_DAILY01_STAMPS),
])
def test_uscrn_fast_path_equals_general_path_on_real_and_edited_lines(sample_dir, rel, fields, text_fields, stamps):
    text = (sample_dir / rel).read_text()
    assert parsers._fixed_width_fast(text, fields, text_fields, stamps) is not None  # real files take it
    lines = text.splitlines()
    f = {name: (a - 1, b) for name, a, b in fields}

    def put(i, name, value):  # right-aligned unless the value fills the field
        a, b = f[name]
        assert len(value) <= b - a
        lines[i] = lines[i][:a] + value.rjust(b - a) + lines[i][b:]

    num = [n_ for n_, _, _ in fields if n_ not in text_fields]
    edits = ["1e2", "nan", "-inf", "+4", "4.", ".5", "-0", "-0.0", "007", "-9999", "-099.0", "-999.00", "-99.00",
             "x.1", "1-2", "", "4 5", "-", "1.2.3"]
    for i, v in enumerate(edits):
        k = (3 * i) % len(num)
        put(i % len(lines), next(x for x in num[k:] + num if f[x][1] - f[x][0] >= len(v)), v)
    put(20, num[1], "-9999" + " " * 2)  # left-aligned sentinel: trailing blanks -> general path for the line
    date = "UTC_DATE" if "UTC_DATE" in f else "LST_DATE"
    for i, v in zip(range(21, 29), ["20230230", "2023x101", "2023 101", "+2023101", "00000101", "20241301", "20240229", "20230229"]):
        put(i, date, v)
    if "UTC_TIME" in f:
        for i, v in zip(range(29, 35), ["2400", "2359", "0060", "1 00", "+100", "9999"]):
            put(i, "UTC_TIME", v)
    put(35, "CRX_VN", "-9999")  # a sentinel in a text field stays text
    edited = "\n".join(lines) + "\n"
    fast = parsers._fixed_width_fast(edited, fields, text_fields, stamps)
    assert fast is not None and 0 < fast[1].sum() < len(lines)  # some lines re-read by the general path
    no_sentinels = text.replace("-99.000", "  0.000").replace("-9999.0", "    0.0")
    for variant in (text, edited, edited.rstrip("\n"), no_sentinels):
        _same(parsers._fixed_width(variant, "f", fields, text_fields, stamps), _general(variant, fields, text_fields, stamps))
    # files the fast path refuses (the general path reads them): CRLF, a tab, a short line, non-ASCII
    for bad in (edited.replace("\n", "\r\n"), edited.replace(" ", "\t", 1), edited.replace(lines[3] + "\n", lines[3][:50] + "\n"),
                edited.replace(" ", "\u00a0", 1)):
        assert parsers._fixed_width_fast(bad, fields, text_fields, stamps) is None
        _same(parsers._fixed_width(bad, "f", fields, text_fields, stamps), _general(bad, fields, text_fields, stamps))


def test_uscrn_stamps_from_bytes_equal_strptime_on_every_digit_string():
    """``_stamp_numpy`` (all-digit fields, from the bytes) == ``_stamp_expr`` (strptime): every
    month/day 00-99 over several years, every HHMM 0000-9999."""
    dates = [f"{y:04d}{mo:02d}{d:02d}" for y in (0, 1, 1582, 1900, 1970, 2000, 2023, 2024, 9999)
             for mo in range(100) for d in range(100)]
    rows = [(d, "0130") for d in dates] + [("20240229", f"{t:04d}") for t in range(10000)]
    lines = "".join(f"{d} {t}\n" for d, t in rows).encode()
    m = np.frombuffer(lines, dtype=np.uint8).reshape(len(rows), 14)
    pos = {"D": (1, 8), "T": (10, 13)}
    frame = pl.DataFrame({"D": [d for d, _ in rows], "T": [t for _, t in rows]})
    for spec in [("D", None, None), ("D", "T", None), ("D", "T", "UTC")]:
        ours = parsers._stamp_numpy(m, pos, *spec)
        assert ours.equals(frame.select(parsers._stamp_expr(*spec)).to_series(), check_names=False), spec


def test_uscrn_hourly02_known_values_on_real_lines(sample_dir):
    """Values of real CO Nunn lines (checked by eye against the text) through the fast path."""
    _, n = _parse(sample_dir, NUNN)
    # line 13: 94074 20230101 1300 20230101 0600  2.622 -104.76 40.81 ... (SOIL_MOISTURE_5..20 -99.000)
    rows = {r["line_no"]: r for r in n.filter(pl.col("line_no").is_in([1, 13, 48])).iter_rows(named=True)}
    lines = (sample_dir / NUNN).read_text().splitlines()
    for no, r in rows.items():
        raw = lines[no - 1]
        for name, a, b in parsers.USCRN_HOURLY02_FIELDS:
            s = raw[a - 1:b].strip()
            got = r[name.lower()]
            if name in parsers.USCRN_HOURLY02_TEXT:
                assert got == s, (no, name)
            elif s in parsers.USCRN_MISSING:
                assert got is None, (no, name)
            else:
                assert got == float(s), (no, name)
        hh, mm = int(raw[15:17]), int(raw[17:19])
        assert r["utc_datetime"] == dt.datetime(int(raw[6:10]), int(raw[10:12]), int(raw[12:14]), tzinfo=UTC) + dt.timedelta(hours=hh, minutes=mm)
    assert n["utc_datetime"].diff().drop_nulls().unique().to_list() == [dt.timedelta(hours=1)]


def test_uscrn_parse_native_from_bytes_equals_general_path(sample_dir):
    """``parse_native`` reads an ASCII USCRN file from its bytes (never decoded whole): same
    frame as the general path, also when lines go to the general path or the file is refused
    (CRLF, non-ASCII: decoded then)."""
    text = (sample_dir / NUNN).read_text()
    lines = text.splitlines()
    lines[5] = lines[5][:60] + "x" + lines[5][61:]  # T_CALC not a number -> general path for the line
    edited = "\n".join(lines) + "\n"
    f, tf, st = parsers.USCRN_HOURLY02_FIELDS, parsers.USCRN_HOURLY02_TEXT, parsers.USCRN_HOURLY02_STAMPS
    for variant in (text, edited, edited.replace("\n", "\r\n"), edited.replace("  ", " \u00e9", 1)):
        fmt, native = parsers.parse_native(variant.encode(), "f")
        assert fmt is Format.USCRN_HOURLY02
        _same(native.drop("source_format"), parsers._finish(_general(variant, f, tf, st), fmt).drop("source_format"))
    errors = parsers.parse_native(edited.encode(), "f")[1].filter(pl.col("parse_error").is_not_null())
    assert errors["line_no"].to_list() == [6] and errors["parse_error"][0].startswith("column T_CALC: ")


def test_digits_swar_equals_reference_on_every_byte():
    """``_digits`` on 8-byte windows (SWAR) == the per-digit sum, and None as soon as one byte
    of the field is no digit (every byte value tried in every position)."""
    rng = np.random.default_rng(0)
    rows = rng.integers(48, 58, size=(4096, 14), dtype=np.uint8)
    for a, b in [(1, 8), (3, 8), (8, 8), (10, 13), (7, 14)]:
        d = rows[:, a - 1:b] - np.uint8(48)
        ref = (d.astype(np.float64) @ (10.0 ** np.arange(b - a, -1, -1))).astype(np.int64)
        assert (parsers._digits(rows, a, b) == ref).all(), (a, b)
        for col in range(a - 1, b):
            for byte in range(256):
                if 48 <= byte <= 57:
                    continue
                bad = rows.copy()
                bad[17, col] = byte
                assert parsers._digits(bad, a, b) is None, (a, b, col, byte)
        outside = rows.copy()
        outside[:, max(b - 8, 0):a - 1] = ord(" ")  # bytes of the window outside the field do not matter
        assert (parsers._digits(outside, a, b) == ref).all(), (a, b)
