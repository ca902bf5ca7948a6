"""Files in other units than their format says are refused as a whole (issue 14, item 5)."""

import csv
import io
import re

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.stations.assets import register_station_files
from snoiq_assets.defs.stations.checks import OBSERVATIONS_CHECKS
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw
from snoiq_assets.lib.stations import parsers
from snoiq_assets.lib.stations.units import StationPlace, monthly_bounds, station_place, unit_problems

ASOS = "station_obs/iem_asos_CLE_2010-10.csv"
USCRN_DAILY = "uscrn/CRND0103-2020-AK_Aleknagik_1_NNE.txt"
GSOD = "station_obs/gsod_72698024229_KPDX_2016-2024.csv"
GHCND = "station_obs/ghcnd_USW00024233_BicycleWeather_2012-2015.csv"


def _gsod_in_c(sample_dir) -> bytes:
    """The real Portland GSOD file with TEMP, DEWP, MAX and MIN written in °C under its °F columns."""
    rows = list(csv.reader(io.StringIO((sample_dir / GSOD).read_text())))
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(rows[0])
    cols = [rows[0].index(c) for c in ("TEMP", "DEWP", "MAX", "MIN")]
    for row in rows[1:]:
        for i in cols:
            if row[i].strip() and not row[i].strip().startswith("999"):
                row[i] = f"{(float(row[i]) - 32) / 1.8:.1f}"
        writer.writerow(row)
    return out.getvalue().encode()


def _ghcnd_in_whole_f(sample_dir) -> bytes:
    """The real Seattle GHCN-Daily file with TMAX and TMIN in whole °F instead of tenths of °C
    (PRCP stays in tenths of mm, so the file still reads as raw GHCN units)."""
    rows = list(csv.reader(io.StringIO((sample_dir / GHCND).read_text())))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rows[0])
    cols = [rows[0].index(c) for c in ("TMAX", "TMIN")]
    for row in rows[1:]:
        for i in cols:
            if row[i] != "-9999":
                row[i] = str(round(int(row[i]) / 10 * 1.8 + 32))
        writer.writerow(row)
    return out.getvalue().encode()


def _problems(data: bytes, name: str) -> list[str]:
    fmt, native = parsers.parse_native(data, name)
    return unit_problems(parsers.to_clean(native, fmt, "S"), station_place(native, "S"))


def _asos_in_f(sample_dir, columns=(2, 3)) -> bytes:
    """The real Cleveland October file with tmpc (and dwpc) written in °F under the °C header."""
    lines = (sample_dir / ASOS).read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        f = line.split(",")
        for i in columns:
            if f[i].strip() not in ("M", ""):
                f[i] = f"{float(f[i]) * 9 / 5 + 32:.2f}"
        out.append(",".join(f))
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("name", [ASOS, USCRN_DAILY, GSOD, "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt",
                                  "station_obs/ghcnd_USW00024233_BicycleWeather_2012-2015.csv"])
def test_real_files_pass(sample_dir, name):
    assert _problems((sample_dir / name).read_bytes(), name) == []


def test_fahrenheit_read_as_celsius_is_caught(sample_dir):
    problems = _problems(_asos_in_f(sample_dir), "cle.csv")
    assert len(problems) == 1 and problems[0].startswith("month 10: median ")
    assert "outside the climatological [-45, 33] °C for latitude 40 assumed (°F read as °C, or the reverse?)" \
        in problems[0]


def test_uscrn_year_in_fahrenheit_is_caught_in_summer(sample_dir):
    lines = (sample_dir / USCRN_DAILY).read_text().splitlines()
    out = []
    for line in lines:   # T_DAILY_MAX/MIN/MEAN/AVG: fields 6-9 (1-based), fixed width kept
        f = re.findall(r"\s*\S+", line)
        for i in (5, 6, 7, 8):
            if f[i].strip() != "-9999.0":
                f[i] = f"{float(f[i]) * 9 / 5 + 32:.1f}".rjust(len(f[i]))
        out.append("".join(f))
    fmt, native = parsers.parse_native(("\n".join(out) + "\n").encode(), "ak.txt")
    problems = unit_problems(parsers.to_clean(native, fmt, "S"), station_place(native, "S"))
    months = [p[:8] for p in problems]
    assert {"month 06", "month 07", "month 08"} <= set(months)
    assert "for latitude 59.28" in problems[0]


def test_dew_point_in_other_units_than_temperature(sample_dir):
    problems = _problems(_asos_in_f(sample_dir, columns=(3,)), "cle.csv")
    assert problems == [p for p in problems if p.startswith("dew point above temperature in ")]
    assert len(problems) == 1 and "dew_point_c and air_temp_c in different units?" in problems[0]


def test_gsod_in_celsius_read_as_fahrenheit_is_caught(sample_dir):
    problems = _problems(_gsod_in_c(sample_dir), "pdx.csv")
    assert [p[:8] for p in problems] == ["month 05", "month 06", "month 07", "month 08", "month 09"]
    assert problems[2].startswith("month 07: median -6.1 °C over 248 values, outside the climatological [0, 40] °C "
                                  "for latitude 45.5958, elevation 6.7 m (from the file)")


def test_ghcnd_in_whole_fahrenheit_read_as_tenths_is_caught(sample_dir):
    """Squeezed into 1-8 °C, every month stays inside its bounds; the daily range gives it away."""
    problems = _problems(_ghcnd_in_whole_f(sample_dir), "sea.csv")
    assert problems == ["median daily range (maximum - minimum) 1.4 °C over 1340 days, below the 2 °C of any real "
                        "station: temperatures squeezed (whole °F read as tenths of °C?)"]


def test_station_place_from_the_file_then_the_station_lists(sample_dir):
    lists = pl.DataFrame({"station_id": ["USW00024233", "72698024229"], "latitude": [47.4444, 10.0],
                          "elevation_m": [112.8, 9999.0]})
    _, seattle = parsers.parse_native((sample_dir / GHCND).read_bytes(), GHCND)
    _, portland = parsers.parse_native((sample_dir / GSOD).read_bytes(), GSOD)
    assert station_place(seattle, "USW00024233", lists) == StationPlace(47.4444, 112.8, "from the station lists")
    assert station_place(seattle, "USW00024233") == StationPlace()        # unknown: 40 N at sea level assumed
    assert station_place(portland, "72698024229", lists) == StationPlace(45.59578, 6.7, "from the file")


def test_bounds_follow_hemisphere_and_latitude():
    assert monthly_bounds(1, 40.0) == (-50.0, 28.0)
    assert monthly_bounds(7, -40.0) == (-50.0, 28.0)   # July is winter in the south
    assert monthly_bounds(7, 45.0) == (0.0, 40.0) and monthly_bounds(7, 70.0) == (-15.0, 40.0)
    assert monthly_bounds(1, 10.0) == (-10.0, 38.0)
    assert monthly_bounds(7, 40.8, 1600.0) == (0.0, 29.6)   # Nunn, CO: the upper bound 1.6 km up


def test_min_above_max_frame():
    frame = pl.DataFrame({"timestamp_utc": pl.datetime_range(
        pl.datetime(2020, 1, 1, time_zone="UTC"), pl.datetime(2020, 1, 10, time_zone="UTC"), "1d", eager=True)})
    frame = frame.with_columns(air_temp_c=pl.lit(None, pl.Float64), air_temp_max_c=pl.lit(-5.0),
                               air_temp_min_c=pl.lit(3.0))
    assert unit_problems(frame) == ["daily minimum above maximum in 10 of 10 rows (100%): air_temp_min_c and "
                                    "air_temp_max_c in different units?"]


def test_observations_clean_quarantines_the_file(store, resources, instance, sample_dir):
    store.put("raw/observations/CLE.csv", _asos_in_f(sample_dir))
    register_station_files(instance, store)
    res = dg.materialize([observations_raw, observations_clean, *OBSERVATIONS_CHECKS], resources=resources,
                         instance=instance, partition_key="CLE", raise_on_error=False)
    assert not res.success
    reason = store.get_json("quarantine/raw/observations/CLE.csv.reason.json")
    assert reason["reason"].startswith("raw/observations/CLE.csv: temperatures not in the units of its format "
                                       "(iem_asos_csv): month 10: median ")
    assert not store.exists("raw/observations/CLE.csv")
    assert instance.get_materialized_partitions(dg.AssetKey("observations_clean")) == set()


@pytest.mark.parametrize("backend", ["local"], indirect=True)
@pytest.mark.parametrize("station, make, expect", [
    ("CLE", _asos_in_f, "(iem_asos_csv): month 10: median 61.0 °C over 150 values, outside the climatological "
                        "[-45, 31.4] °C for latitude 41.4117, elevation 241 m (from the station lists)"),
    ("72698024229", _gsod_in_c, "(gsod_csv): month 05: median -9.3 °C over 248 values, outside the climatological "
                                "[0, 40] °C for latitude 45.5958, elevation 6.7 m (from the file)"),
    ("USW00024233", _ghcnd_in_whole_f, "(ghcnd_cdo_csv): median daily range (maximum - minimum) 1.4 °C over 1340 "
                                       "days, below the 2 °C of any real station"),
], ids=["asos-F-as-C", "gsod-C-as-F", "ghcnd-whole-F-as-tenths"])
def test_each_wrong_unit_file_is_quarantined_with_the_reason(store, resources, instance, sample_dir, station, make,
                                                             expect):
    """The station lists in the raw zone give ASOS and GHCN-D stations their place; each file in
    the wrong unit is quarantined naming what gave it away, and nothing reaches the lake."""
    store.put_file("raw/metadata/station_metadata_extra.csv", sample_dir / "station_metadata_extra.csv")
    key = f"raw/observations/{station}.csv"
    store.put(key, make(sample_dir))
    register_station_files(instance, store)
    res = dg.materialize([observations_raw, observations_clean, *OBSERVATIONS_CHECKS], resources=resources,
                         instance=instance, partition_key=station, raise_on_error=False)
    assert not res.success
    reason = store.get_json(f"quarantine/{key}.reason.json")["reason"]
    assert reason.startswith(f"{key}: temperatures not in the units of its format {expect}"), reason
    assert not store.exists(key) and list(store.list("lake/observations_clean")) == []
