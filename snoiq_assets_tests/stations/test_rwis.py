"""The INDOT road-weather station format on the real files: SI units, UTC from the DST-aware
local clock (checked against the file's derived UTC column), sensor spikes rejected with reasons,
bad lines refused with reasons, and the site list in station_metadata."""

import datetime as dt

import polars as pl
import pytest

from snoiq_assets.lib.stations import metadata as md
from snoiq_assets.lib.stations import parsers
from snoiq_assets.lib.stations.formats import Format, StationFileError
from snoiq_assets.lib.stations.validate import validate

UTC = dt.timezone.utc
GAS_CITY = "road_weather/rwis_obs_gas_city_2018-12_2019-03.csv"
HEADER = "time_local,time_utc,utc_offset_h,pavement_temp_F,air_temp_F,dewpoint_F,precip_code\n"


def _clean(data: bytes, station="gas_city"):
    fmt, native = parsers.parse_native(data, "rwis.csv")
    assert fmt is Format.INDOT_RWIS_CSV
    return native, validate(parsers.to_clean(native, fmt, station))


def test_real_file_values_in_si_and_utc(sample_dir):
    native, (clean, rejects) = _clean((sample_dir / GAS_CITY).read_bytes())
    first = clean.row(0, named=True)
    # line 2: 2018-11-30 00:10:00.00,2018-11-30T05:10Z,-5,37.76,35.96,35.96,2
    assert first["timestamp_utc"] == dt.datetime(2018, 11, 30, 5, 10, tzinfo=UTC)
    assert first["surface_temp_c"] == pytest.approx((37.76 - 32) * 5 / 9)
    assert first["air_temp_c"] == pytest.approx(2.2) and first["dew_point_c"] == pytest.approx(2.2)
    assert first["precip_detected"] is False and first["resolution"] == "subhourly"
    # Across the spring-forward: local 01:50 EST is 06:50Z, local 03:00 EDT is 07:00Z.
    around = clean.filter(pl.col("timestamp_utc").is_between(dt.datetime(2019, 3, 10, 6, 40, tzinfo=UTC),
                                                           dt.datetime(2019, 3, 10, 7, 10, tzinfo=UTC)))
    lines = {r["line_no"] for r in around.iter_rows(named=True)}
    text = (sample_dir / GAS_CITY).read_text().split("\n")
    assert {text[n - 1][:16] for n in lines} == {"2019-03-10 01:40", "2019-03-10 01:50", "2019-03-10 03:00", "2019-03-10 03:10"}
    assert native["parse_error"].null_count() == native.height


def test_real_pavement_spikes_are_rejected_with_reasons(sample_dir):
    _native, (clean, rejects) = _clean((sample_dir / GAS_CITY).read_bytes())
    spikes = rejects.filter(pl.col("rule").is_in(["spike", "pavement_below_air"]))
    # The -57.82 degF pavement reading of 2019-01-28 11:40 local (line 8564) under +36.68 degF air.
    row = spikes.filter(pl.col("line_no") == 8564).row(0, named=True)
    assert row["rule"] == "pavement_below_air" and row["action"] == "nulled" and row["column"] == "surface_temp_c"
    assert float(row["value"]) == pytest.approx((-57.82 - 32) * 5 / 9)
    assert "more than 20 degC below air_temp_c=2.6" in row["reason"]
    # 2019-01-27 04:00Z: -44.50 degF between -10.66 and +29.30 degF neighbours: a spike.
    row = spikes.filter(pl.col("line_no") == 8344).row(0, named=True)
    assert row["rule"] == "spike" and "(-23.7 and -1.5)" in row["reason"]
    assert sorted(spikes["line_no"].to_list()) == [8341, 8342, 8343, 8344, 8564, 8599]
    assert clean["surface_temp_c"].min() > -23  # what is left is weather
    assert clean.filter(pl.col("line_no") == 8564)["air_temp_c"].item() == pytest.approx((36.68 - 32) * 5 / 9)


def test_the_derived_utc_column_is_checked_against_the_local_clock():
    body = (
        "2019-01-05 10:00:00.00,2019-01-05T15:00Z,-5,30.0,28.0,20.0,2\n"  # good
        "2019-01-05 10:10:00.00,2019-01-05T16:10Z,-5,30.0,28.0,20.0,2\n"  # UTC one hour off
        "2019-03-10 02:30:00.00,2019-03-10T07:30Z,-5,30.0,28.0,20.0,2\n"  # local time that does not exist
        "2019-06-05 10:00:00.00,2019-06-05T14:00Z,-5,60.0,58.0,50.0,1\n"  # summer: UTC right, offset says -5
        "2019-01-05 10:20:00.00,2019-01-05T15:20Z,-5,30.0,abc,20.0,2\n"  # not a number
        "2019-01-05 10:30:00.00,2019-01-05T15:30Z,-5,30.0,28.0,20.0,7\n"  # unknown precipitation code
        "2019-01-05 10:40:00.00,2019-01-05T15:40Z,-5,30.0\n"  # truncated
    )
    native, (clean, rejects) = _clean((HEADER + body).encode())
    assert clean["line_no"].to_list() == [2]
    by_line = {r["line_no"]: r["reason"] for r in rejects.iter_rows(named=True)}
    assert "time_utc: 2019-01-05T16:10Z does not match time_local 2019-01-05 10:10:00.00" in by_line[3]
    assert "(expected 2019-01-05T15:10Z)" in by_line[3]
    assert "2019-03-10 02:30:00.00 does not exist or is ambiguous" in by_line[4]
    assert "utc_offset_h: -5.0 does not match time_local - time_utc = -4.0 h" in by_line[5]
    assert "air_temp_f: abc is not a number" in by_line[6]
    assert "precip_code: 7 is not 1" in by_line[7]
    assert "line has 4 of 7 fields" in by_line[8]
    assert set(rejects["action"]) == {"dropped"} and set(rejects["rule"]) == {"parse"}


def test_wrong_header_and_site_list(sample_dir):
    with pytest.raises(StationFileError, match="no known station format"):
        parsers.parse_native(b"time_local,air_temp_F\n2019-01-05 10:00:00.00,28\n", "x.csv")
    sites = md.from_rwis_sites((sample_dir / "road_weather/rwis_sites.csv").read_bytes())
    assert sites["station_id"].to_list() == ["fort_wayne", "gas_city", "jeffersonville", "scottsburg"]
    jeff = sites.row(2, named=True)
    assert (jeff["latitude"], jeff["longitude"], jeff["network"], jeff["state"]) == (38.3462, -85.7477, "INDOT RWIS", "IN")
    assert jeff["elevation_m"] is None  # the source has none (its height column is the model terrain)
    with pytest.raises(StationFileError, match="lacks column"):
        md.from_rwis_sites(b"site,name\nx,y\n")
    with pytest.raises(StationFileError, match="not a safe identifier"):
        md.from_rwis_sites(b"site,name,lat,lon\n../etc,y,40,-85\n")
    with pytest.raises(StationFileError, match="no valid lat/lon"):
        md.from_rwis_sites(b"site,name,lat,lon\nok,y,400,-85\n")
