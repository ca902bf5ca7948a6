"""Files in other units than their format says are refused as a whole (issue 14, item 5)."""

import re

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.stations.assets import register_station_files
from snoiq_assets.defs.stations.checks import ALL_CHECKS
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw
from snoiq_assets.lib.stations import parsers
from snoiq_assets.lib.stations.units import file_latitude, monthly_bounds, unit_problems

ASOS = "station_obs/iem_asos_CLE_2010-10.csv"
USCRN_DAILY = "uscrn/CRND0103-2020-AK_Aleknagik_1_NNE.txt"
GSOD = "station_obs/gsod_72698024229_KPDX_2016-2024.csv"


def _problems(data: bytes, name: str) -> list[str]:
    fmt, native = parsers.parse_native(data, name)
    return unit_problems(parsers.to_clean(native, fmt, "S"), file_latitude(native))


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
    problems = unit_problems(parsers.to_clean(native, fmt, "S"), file_latitude(native))
    months = [p[:8] for p in problems]
    assert {"month 06", "month 07", "month 08"} <= set(months)
    assert "for latitude 59.28" in problems[0]


def test_dew_point_in_other_units_than_temperature(sample_dir):
    problems = _problems(_asos_in_f(sample_dir, columns=(3,)), "cle.csv")
    assert problems == [p for p in problems if p.startswith("dew point above temperature in ")]
    assert len(problems) == 1 and "dew_point_c and air_temp_c in different units?" in problems[0]


def test_bounds_follow_hemisphere_and_latitude():
    assert monthly_bounds(1, 40.0) == (-50.0, 28.0)
    assert monthly_bounds(7, -40.0) == (-50.0, 28.0)   # July is winter in the south
    assert monthly_bounds(7, 45.0) == (0.0, 40.0) and monthly_bounds(7, 70.0) == (-15.0, 40.0)
    assert monthly_bounds(1, 10.0) == (-10.0, 38.0)


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
    res = dg.materialize([observations_raw, observations_clean, *ALL_CHECKS[:3]], resources=resources,
                         instance=instance, partition_key="CLE", raise_on_error=False)
    assert not res.success
    reason = store.get_json("quarantine/raw/observations/CLE.csv.reason.json")
    assert reason["reason"].startswith("raw/observations/CLE.csv: temperatures not in the units of its format "
                                       "(iem_asos_csv): month 10: median ")
    assert not store.exists("raw/observations/CLE.csv")
    assert instance.get_materialized_partitions(dg.AssetKey("observations_clean")) == set()
