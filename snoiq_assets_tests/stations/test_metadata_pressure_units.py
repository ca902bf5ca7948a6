"""Every USCRN station kept (ids from fields every row has), GSOD station pressure 999.9 decided
by its observation count, and exact unit factors; on the real bundled files."""

import datetime as dt

import polars as pl
import pytest

from snoiq_assets.lib.stations import parsers
from snoiq_assets.lib.stations.formats import StationFileError
from snoiq_assets.lib.stations.metadata import from_uscrn_stations
from snoiq_assets.lib.units import FOOT_M, INCH_MM, KNOT_MS, MILE_M

UTC = dt.timezone.utc


def test_unit_factors_are_their_definitions():
    assert KNOT_MS == 1852 / 3600 and KNOT_MS != 0.514444
    assert INCH_MM == 25.4 and FOOT_M == 0.3048
    assert MILE_M == 1609.344 and MILE_M == pytest.approx(5280 * FOOT_M, rel=1e-15)


def test_every_uscrn_row_is_a_station(sample_dir):
    raw = pl.read_csv(sample_dir / "uscrn" / "stations.tsv", separator="\t", infer_schema=False)
    meta = from_uscrn_stations((sample_dir / "uscrn" / "stations.tsv").read_bytes())
    assert meta.height == raw.height == 250 and meta["station_id"].n_unique() == 250
    with_wban = raw.filter(pl.col("WBAN").str.contains(r"^\d{5}$"))
    assert with_wban.height == 235
    # ids of stations with a WBAN stay the WBAN (as before), which the observation files carry
    by_id = {r["station_id"]: r for r in meta.iter_rows(named=True)}
    assert all(by_id[w]["wban"] == w for w in with_wban["WBAN"])
    # the 15 without (UN / NA) take NCEI's STATION_ID
    without = meta.filter(pl.col("wban").is_null())
    assert without.height == 15
    assert sorted(without["station_id"]) == sorted(
        "uscrn-" + s for s in raw.filter(~pl.col("WBAN").str.contains(r"^\d{5}$"))["STATION_ID"])
    sterling, oakridge = by_id["uscrn-1305"], by_id["uscrn-1147"]
    assert (sterling["state"], sterling["latitude"], sterling["longitude"]) == ("VA", 38.97, -77.48)
    assert sterling["elevation_m"] == round(287 * 0.3048, 1) and sterling["end_date"] == dt.date(2008, 2, 19)
    assert (oakridge["state"], oakridge["latitude"], oakridge["elevation_m"]) == ("TN", 36.0, None)   # ELEVATION "UN"
    gustavus = meta.filter(pl.col("name").str.starts_with("Gustavus"))
    assert sorted(gustavus["station_id"]) == ["25380", "uscrn-7780"]


def test_uscrn_row_without_a_station_id_is_an_error_naming_the_line(sample_dir):
    lines = (sample_dir / "uscrn" / "stations.tsv").read_text().splitlines()
    cols = lines[5].split("\t")
    cols[-1] = ""
    lines[5] = "\t".join(cols)
    with pytest.raises(StationFileError, match=r"stations.tsv line 6.*STATION_ID"):
        from_uscrn_stations("\n".join(lines).encode())


def test_gsod_station_pressure_999_9_by_observation_count(sample_dir):
    text = (sample_dir / "station_obs" / "gsod_72698024229_KPDX_2016-2024.csv").read_text()
    fmt, native = parsers.parse_native(text.encode(), "kpdx.csv")
    clean = parsers.to_clean(native, fmt, "72698024229")
    stp = dict(zip(clean["timestamp_utc"], clean["station_pressure_hpa"]))
    day = lambda y, m, d: dt.datetime(y, m, d, tzinfo=UTC)  # noqa: E731
    # "999.9" with 24 observations: a real 999.9 hPa (sea-level pressure 1003.8-1006.4 that day)
    for d in (day(2020, 1, 16), day(2020, 11, 13), day(2022, 4, 11)):
        assert stp[d] == 999.9
    # "999.9" with 0 observations: the 9999.9 sentinel
    for d in (day(2022, 10, 2), day(2022, 10, 4), day(2022, 10, 5)):
        assert stp[d] is None
    assert stp[day(2016, 1, 1)] == 1028.2   # "028.2" drops its thousands digit
    assert clean["station_pressure_hpa"].null_count() == 3
    # without STP_ATTRIBUTES the ambiguous value cannot be vouched for: missing
    head, *rows = text.splitlines()
    cols = head.split(",")
    keep = [i for i, c in enumerate(cols) if c != '"STP_ATTRIBUTES"']
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for r in csv.reader(io.StringIO(text)):
        w.writerow([r[i] for i in keep])
    fmt, native = parsers.parse_native(buf.getvalue().encode(), "no_attrs.csv")
    clean = parsers.to_clean(native, fmt, "72698024229")
    assert clean["station_pressure_hpa"].null_count() == 6
