"""Bad input: each case gives a clear error or reject naming file, line and column."""

import polars as pl
import pytest

from snoiq_assets.lib.keys import UnsafeNameError
from snoiq_assets.lib.stations import outcomes, parsers
from snoiq_assets.lib.stations.formats import StationFileError
from snoiq_assets.lib.stations.rawkeys import location_for_raw_key, partition_for_raw_key
from snoiq_assets.lib.stations.validate import validate

NUNN = "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt"
ASOS = "station_obs/iem_asos_CLE_2010-10.csv"
GSOD = "station_obs/gsod_72698024229_KPDX_2016-2024.csv"


def _clean(data: bytes, name="f"):
    fmt, n = parsers.parse_native(data, name)
    return validate(parsers.to_clean(n, fmt, "S"), claimed_period=parsers.claimed_period(n, fmt))


def test_unknown_format_names_file_and_line(sample_dir):
    data = (sample_dir / "wandb/olmo_wandb_history_peteish-final-new_7B-28xC.csv").read_bytes()
    with pytest.raises(StationFileError, match=r"^wandb\.csv line 1: no known station format") as e:
        parsers.parse_native(data, "wandb.csv")
    assert e.value.line == 1


def test_non_utf8_bytes_name_line_and_position(sample_dir):
    data = bytearray((sample_dir / ASOS).read_bytes())
    pos = data.index(b"\n", data.index(b"\n") + 1) + 5  # inside line 3
    data[pos] = 0xFF
    with pytest.raises(StationFileError, match=r"cle\.csv line 3 column char 5: byte 0xff is not UTF-8"):
        parsers.parse_native(bytes(data), "cle.csv")


def test_truncated_uscrn_line_is_rejected_with_line_and_column(sample_dir):
    lines = (sample_dir / NUNN).read_text().splitlines()
    lines[4] = lines[4][:100]  # cut inside SOLARAD (cols 98-103)
    clean, rej = _clean(("\n".join(lines) + "\n").encode())
    r = rej.filter(pl.col("rule") == "parse").row(0, named=True)
    assert (r["line_no"], r["column"], r["action"]) == (5, "SOLARAD", "dropped")
    assert "truncated at 96 of 243" in r["reason"]  # trailing blanks (cols 97-100) dropped
    assert clean.height == 47


def test_truncated_last_csv_line_and_extra_field(sample_dir):
    text = (sample_dir / ASOS).read_text()
    lines = text.splitlines()
    lines[3] = lines[3] + ",99"
    lines[-1] = lines[-1][:20]  # "CLE,2010-10-28 23:51" -> 2 of 8 fields
    clean, rej = _clean(("\n".join(lines)).encode())
    parse = rej.filter(pl.col("rule") == "parse").sort("line_no")
    assert parse["line_no"].to_list() == [4, len(lines)]
    assert parse["column"].to_list() == ["<extra>", "tmpc"]
    assert clean.height == len(lines) - 3


def test_non_numeric_value_names_its_column(sample_dir):
    lines = (sample_dir / ASOS).read_text().splitlines()
    lines[2] = lines[2].replace(",1021.50,", ",10x1.5,", 1)
    _, rej = _clean("\n".join(lines).encode())
    r = rej.filter(pl.col("rule") == "parse").row(0, named=True)
    assert (r["line_no"], r["column"]) == (3, "mslp") and "10x1.5" in r["reason"]


def test_wrong_or_missing_header(sample_dir):
    lines = (sample_dir / GSOD).read_text().splitlines()
    lines[0] = lines[0].replace('"TEMP",', '"TEMPX",')
    with pytest.raises(StationFileError, match=r"line 1 column TEMP: header lacks required column"):
        parsers.parse_native("\n".join(lines).encode(), "gsod.csv")
    # no header at all: the first data line is not a known header
    with pytest.raises(StationFileError, match="no known station format"):
        parsers.parse_native("\n".join(lines[1:]).encode(), "gsod.csv")


def test_fahrenheit_in_celsius_column_caught_by_range(sample_dir):
    lines = (sample_dir / ASOS).read_text().splitlines()
    lines[1] = lines[1].replace(",7.20,", ",75.00,", 1)  # 75 F written into tmpc
    clean, rej = _clean("\n".join(lines).encode())
    r = rej.filter(pl.col("rule") == "range").row(0, named=True)
    assert (r["line_no"], r["column"], r["value"], r["action"]) == (2, "air_temp_c", "75.0", "nulled")
    assert clean.filter(pl.col("line_no") == 2)["air_temp_c"][0] is None
    assert clean.filter(pl.col("line_no") == 2)["dew_point_c"][0] == 1.7  # the rest of the row stays


def test_qc_flag_3_nulls_the_value_and_consistency(sample_dir):
    lines = (sample_dir / NUNN).read_text().splitlines()
    l0 = lines[0]
    lines[0] = l0[:134] + "3" + l0[135:]  # SUR_TEMP_FLAG (col 135) -> erroneous
    l1 = lines[1]
    lines[1] = l1[:73] + "    1.0" + l1[80:]  # T_MAX 1.0 < T_HR_AVG 4.1
    clean, rej = _clean(("\n".join(lines) + "\n").encode())
    q = rej.filter(pl.col("rule") == "qc_flag").row(0, named=True)
    assert (q["line_no"], q["column"], q["value"]) == (1, "surface_temp_c", "0.9")
    assert clean.filter(pl.col("line_no") == 1)["surface_temp_c"][0] is None
    cons = rej.filter(pl.col("rule") == "consistency")
    assert set(cons["column"]) == {"air_temp_c", "air_temp_max_c", "air_temp_min_c"} and set(cons["line_no"]) == {2}


def test_out_of_order_and_outside_period(sample_dir):
    lines = (sample_dir / NUNN).read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    lines.append(lines[-1].replace("20230103 0000", "20250103 0000", 1))  # not in the file's year
    clean, rej = _clean(("\n".join(lines) + "\n").encode())
    assert rej.filter(pl.col("rule") == "out_of_order")["line_no"].to_list() == [4]
    assert rej.filter(pl.col("rule") == "outside_period")["line_no"].to_list() == [49]
    assert clean["timestamp_utc"].is_sorted() and clean.height == 48


def test_unsafe_station_ids_are_refused():
    assert partition_for_raw_key("raw/observations/USW00024233.csv") == "USW00024233"
    assert partition_for_raw_key("raw/observations/94074.txt") == "94074"
    for bad in ["raw/observations/../etc.csv", "raw/observations/a b.csv", "raw/observations/sub/x.csv",
                "raw/observations/x=1.csv", "raw/observations/x.tar.csv", "raw/observations/x.json",
                "raw/other/x.csv", "raw/observations/.csv"]:
        with pytest.raises(UnsafeNameError):
            partition_for_raw_key(bad)
    with pytest.raises(UnsafeNameError):
        location_for_raw_key("raw/outcomes/sea$.csv")


def test_outcome_bad_inputs():
    with pytest.raises(StationFileError, match="one timestamp column"):
        outcomes.parse_outcome(b"a,b,c\n1,2,3\n", "o.csv", "SEA")
    with pytest.raises(StationFileError, match="line 2: no line could be read"):
        outcomes.parse_outcome(b"date,v\nnot-a-date,1\n", "o.csv", "SEA")
    with pytest.raises(UnsafeNameError):
        outcomes.parse_outcome(b"date,v\n2020-01-01,1\n", "o.csv", "../x")
    df = outcomes.parse_outcome(b"date,snow_depth_mm\n2020-01-01,10\n2020-01-02,99999\n2020-01-02,3\n", "o.csv", "SEA")
    clean, rej = outcomes.validate_outcome(df)
    assert sorted(rej["rule"].to_list()) == ["duplicate_timestamp", "range"]
    assert clean["value"].to_list() == [10.0, None]


def test_every_reject_has_a_reason_even_when_min_mean_or_max_is_null(sample_dir):
    """GHCN-D has no daily mean: a min > max row used to be rejected with reason null."""
    lines = (sample_dir / "station_obs/ghcnd_USW00024233_BicycleWeather_2012-2015.csv").read_text().splitlines()
    f = lines[1].split(",")
    f[6], f[7] = "50", "128"        # TMAX 5.0 C, TMIN 12.8 C
    lines[1] = ",".join(f)
    clean, rej = _clean(("\n".join(lines) + "\n").encode(), "ghcnd.csv")
    assert rej["reason"].null_count() == 0
    cons = rej.filter(pl.col("rule") == "consistency").sort("column")
    assert cons["column"].to_list() == ["air_temp_max_c", "air_temp_min_c"]
    assert cons["reason"].to_list() == ["air_temp_min_c=12.8 <= air_temp_c=null <= air_temp_max_c=5.0 does not hold"] * 2
