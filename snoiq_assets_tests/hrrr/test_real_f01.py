"""The real full-CONUS HRRR f01 messages (2026-02-28 00Z) and that file's complete .idx."""

import datetime as dt

import eccodes
import numpy as np
import pytest

from snoiq_assets.lib.hrrr.accum import decode_lead, finish_lead, with_buckets
from snoiq_assets.lib.hrrr.decode import ENGINES, decode_fields, scan_grib
from snoiq_assets.lib.hrrr.isolation import DecoderProcess
from snoiq_assets.lib.hrrr.inventory import IdxError, group_ranges, parse_idx, select
from snoiq_assets.lib.hrrr.leads import completeness, messages_present
from snoiq_assets.lib.hrrr.multifetch import check_idx_lead
from snoiq_assets.lib.hrrr.plausibility import check_plausible
from snoiq_assets.lib.hrrr.variables import CATALOGUE, resolve, search_pattern

RUN = dt.datetime(2026, 2, 28, 0, tzinfo=dt.timezone.utc)
# file part -> (catalogue column, message number and offset in the full f01 file)
REAL = {"asnow": ("asnow_m", 65, 40_707_939), "snod": ("snod_m", 70, 42_990_802),
        "t2m": ("tmp_2m_k", 71, 43_471_054), "apcp": ("apcp_kg_m2", 84, 59_048_206)}


@pytest.fixture(scope="module")
def real_dir(sample_dir):
    return sample_dir / "hrrr"


@pytest.fixture(scope="module")
def full_idx(real_dir):
    return parse_idx((real_dir / "radarcheck_hrrr_20260228_00z_f01.idx").read_text(), source="f01.idx")


def _ecc(path):
    with open(path, "rb") as fh:
        h = eccodes.codes_grib_new_from_file(fh)
    try:
        return eccodes.codes_get_values(h).astype(np.float32)
    finally:
        eccodes.codes_release(h)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("part", list(REAL))
def test_real_f01_decodes_bit_exactly(real_dir, part, engine):
    column, _, _ = REAL[part]
    path = real_dir / f"radarcheck_hrrr_20260228_00z_f01_{part}.grib2"
    table, stats = decode_fields(path, [CATALOGUE[column]], 1, run_time=RUN, engine=engine)
    got = table.column(column).to_numpy()
    want = _ecc(path)
    assert got.dtype == np.float32 and got.size == 1059 * 1799
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    md = table.schema.metadata
    assert md[b"run_time"] == b"2026-02-28T00:00:00+00:00" and md[b"valid_time"] == b"2026-02-28T01:00:00+00:00"
    expected_max = {"asnow": 0.0543, "snod": 44.74, "t2m": 309.19, "apcp": 77.83}[part]
    assert stats[column]["max"] == pytest.approx(expected_max, abs=0.01) and stats[column]["null_count"] == 0


def test_real_f01_accumulations_and_hourly(real_dir):
    """At f01 the 0-1 h accumulation is the hour itself: hourly equals it, bit for bit, decoded
    here and as hrrr_fields decodes a lead (ecCodes in the decoder child, plausibility, hourly
    amounts in the caller)."""
    with DecoderProcess() as decoder:
        for part in ("apcp", "asnow"):
            column = REAL[part][0]
            variables = [CATALOGUE[column]]
            path = real_dir / f"radarcheck_hrrr_20260228_00z_f01_{part}.grib2"
            table, stats = decode_lead(path, variables, 1, run_time=RUN, engine="eccodes")
            decoded, checked = decoder.decode_lead_fields(path, variables, 1, run_time=RUN, engine="eccodes")
            check_plausible(checked, decoded.num_rows, 1, path.name)
            isolated, isolated_stats = finish_lead(decoded, checked, variables, 1)
            assert isolated.equals(table) and isolated.schema.metadata == table.schema.metadata
            assert isolated_stats == stats
            hourly = table.column(1).to_numpy()
            assert table.column_names == [column, {"apcp": "apcp_1h_kg_m2", "asnow": "asnow_1h_m"}[part]]
            assert np.array_equal(hourly.view(np.uint32), _ecc(path).view(np.uint32))
            assert np.array_equal(isolated.column(column).to_numpy().view(np.uint32), _ecc(path).view(np.uint32))
            assert table.schema.field(column).metadata[b"accumulation_window"] == b"0-1 hour"
            assert table.schema.field(1).metadata[b"accumulation_window"] == b"0-1 hour"


def test_real_full_idx_parses_and_plans(real_dir, full_idx):
    assert len(full_idx) == 170 and {e.date for e in full_idx} == {"2026022800"}
    assert full_idx[-1].msg == "170" and full_idx[-1].variable == "SBT114" and full_idx[-1].start == 135_477_163
    assert full_idx[2].variable == "var discipline=0 center=7 local_table=1 parmcat=16 parm=201"
    by_number = {e.number: e for e in full_idx}
    for part, (column, number, offset) in REAL.items():
        e = by_number[number]
        size = (real_dir / f"radarcheck_hrrr_20260228_00z_f01_{part}.grib2").stat().st_size
        assert e.start == offset and e.length == size, part   # the next offset minus its own = the file
        m = scan_grib(real_dir / f"radarcheck_hrrr_20260228_00z_f01_{part}.grib2")[0]
        assert (m.wgrib2_name, m.wgrib2_level) == (e.variable, e.level)
    variables = resolve([c for c, _, _ in REAL.values()])
    check_idx_lead(select(full_idx, search_pattern(with_buckets(variables), 1)), 1, "f01.idx")
    ranges = group_ranges(select(full_idx, search_pattern(with_buckets(variables), 1)))
    # SNOD (70) and TMP 2 m (71) are neighbours: three requests for four messages
    assert [[e.number for e in r.entries] for r in ranges] == [[65], [70, 71], [84]]
    assert [r.header for r in ranges] == ["bytes=40707939-40846148", "bytes=42990802-44687146",
                                          "bytes=59048206-59238419"]
    # all ten default variables at f01: WEASD is the instant "1 hour fcst" (68), not the 0-1 acc (85)
    present = messages_present(full_idx, resolve(CATALOGUE), 1)
    assert present == set(CATALOGUE)
    assert [e.number for e in select(full_idx, CATALOGUE["weasd_kg_m2"].idx_pattern(1))] == [68]
    with pytest.raises(IdxError, match=r"f01.idx message 65 \(ASNOW:surface:0-1 hour acc fcst\) is for f01, "
                                       r"not the file's lead f02"):
        check_idx_lead(select(full_idx, ":ASNOW:"), 2, "f01.idx")
    report = completeness(RUN, [0, 1, 2], resolve(CATALOGUE), {1: present, 2: present - {"apcp_kg_m2"}})
    assert report.missing_leads == [0] and report.missing_messages == {2: ["apcp_kg_m2"]}
    assert report.describe() == ("cycle 2026-02-28T00: 11 of 30 messages missing: missing leads f00; "
                                 "f02 lacks apcp_kg_m2")
