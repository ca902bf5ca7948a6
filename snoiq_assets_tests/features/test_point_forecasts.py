"""Point forecasts (Herbie pick_points-like CSVs) as grid_join_features rows: the real HRRR
extractions at the road-weather stations, and every bad-input path with its reason."""

import datetime as dt
import gzip

import polars as pl
import pytest

from snoiq_assets.lib.features.point_forecasts import PointForecastError, parse_point_forecasts

UTC = dt.timezone.utc
GAS_CITY = "road_weather/hrrr_points_gas_city_2018-12_2019-03.csv.gz"


def _real(sample_dir) -> bytes:
    return gzip.decompress((sample_dir / GAS_CITY).read_bytes())


def test_real_extraction_gives_grid_join_feature_rows(sample_dir):
    rows, rejects, info = parse_point_forecasts(_real(sample_dir), GAS_CITY)
    assert rows.height == 55_176 and rejects.height == 0 and info["stations"] == ["gas_city"]
    assert rows.columns[:4] == ["station_id", "run_time", "forecast_hour", "valid_time"]
    # The same names grid_join_features gives the station cell (HRRR's own units: K).
    assert {"tmp_2m_k__centre", "dpt_2m_k__centre", "ugrd_10m_m_s__centre", "snod_m__centre", "tmp_sfc_k__centre"} <= set(rows.columns)
    r = rows.filter((pl.col("run_time") == dt.datetime(2018, 12, 1, tzinfo=UTC)) & (pl.col("forecast_hour") == 1)).row(0, named=True)
    # gas_city,2018-12-01T00:00Z,1,2018-12-01T01:00Z,275.645,2.6230000000000473,275.563,99.1,...
    assert r["valid_time"] == dt.datetime(2018, 12, 1, 1, tzinfo=UTC)
    assert r["tmp_2m_k__centre"] == pytest.approx(275.645, abs=1e-4)
    assert r["tmp_sfc_k__centre"] == pytest.approx(2.623 + 273.15, abs=1e-4)  # degC in the file -> K
    assert r["rh_2m_pct__centre"] == pytest.approx(99.1, abs=1e-4)
    assert rows.group_by("run_time").len()["len"].unique().to_list() == [19]  # f00..f18 of every cycle


def test_herbie_style_columns_are_understood():
    text = ("point_stid,time,step,valid_time,t2m_K\n"
            "KPDX,2023-01-01 00:00:00,0 days 01:00:00,2023-01-01 01:00:00,271.5\n"
            "KPDX,2023-01-01 00:00:00,0 days 02:00:00,2023-01-01 02:00:00,272.0\n")
    rows, rejects, _ = parse_point_forecasts(text.encode(), "herbie.csv")
    assert rows["forecast_hour"].to_list() == [1, 2] and rows["t2m_k__centre"].to_list() == [271.5, 272.0]
    assert rejects.height == 0


def test_bad_rows_are_rejected_with_reasons_and_the_rest_carry_on(sample_dir):
    lines = _real(sample_dir).decode().split("\n")
    header, good = lines[0], lines[1:20]  # the 2018-12-01 00Z cycle, leads 0..18
    wrong_valid = good[3].replace("2018-12-01T03:00Z", "2018-12-01T04:00Z")
    dup = good[5]
    unsafe = "../etc" + good[6][len("gas_city"):]
    bad_lead = good[7].replace(",7,", ",7.5,", 1)
    bad_value = lines[20].replace(",27", ",abc", 1)  # the next cycle's f00, tmp_2m_K unreadable
    text = "\n".join([header, *good[:3], wrong_valid, *good[4:], dup, unsafe, bad_lead, bad_value]) + "\n"
    rows, rejects, info = parse_point_forecasts(text.encode(), "bad.csv")
    by_rule = {r["rule"]: r for r in rejects.iter_rows(named=True)}
    assert by_rule["valid_time_mismatch"]["line_no"] == 5
    assert "valid time 2018-12-01T04:00Z is not cycle 2018-12-01T00:00Z + 3 h = 2018-12-01T03:00Z" in by_rule["valid_time_mismatch"]["reason"]
    assert by_rule["duplicate"]["line_no"] == 21 and "second row for site gas_city" in by_rule["duplicate"]["reason"]
    assert by_rule["unsafe_id"]["line_no"] == 22 and by_rule["unsafe_id"]["station_id"] == "../etc"
    assert rejects.filter(pl.col("rule") == "parse")["reason"].to_list() == [
        "lead 7.5 is not a whole number of hours >= 0", "tmp_2m_K=abc5.584 is not a finite number"]
    # 19 good lines minus the wrong valid time; the bad value's row stays with the value nulled.
    assert rows.height == 18 + 1 and info["rejected_rows"] == 4
    assert rows.filter(pl.col("tmp_2m_k__centre").is_null()).height == 1


@pytest.mark.parametrize("text, match", [
    ("site,forecast_hour,valid_time_utc,tmp_2m_K\nx,1,2019-01-01T01:00Z,270\n", "no cycle column"),
    ("site,init_time_utc,valid_time_utc,tmp_2m_K\nx,2019-01-01T00:00Z,2019-01-01T01:00Z,270\n", "no lead column"),
    ("init_time_utc,forecast_hour,valid_time_utc,tmp_2m_K\n2019-01-01T00:00Z,1,2019-01-01T01:00Z,270\n", "no site column"),
    ("site,init_time_utc,forecast_hour,valid_time_utc\nx,2019-01-01T00:00Z,1,2019-01-01T01:00Z\n", "no variable columns"),
    ("site,init_time_utc,forecast_hour,valid_time_utc,tmp_2m_K\n", "header but no rows"),
])
def test_unreadable_files_raise_naming_what_is_missing(text, match):
    with pytest.raises(PointForecastError, match=match):
        parse_point_forecasts(text.encode(), "f.csv")
