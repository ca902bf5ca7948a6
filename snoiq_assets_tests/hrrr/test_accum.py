"""Accumulations: stored as given, de-accumulated per lead, windows checked, negatives handled."""

import datetime as dt
import json

import numpy as np
import pytest

from snoiq_assets.lib.hrrr import HrrrDataError, synth
from snoiq_assets.lib.hrrr.accum import TOLERANCE, decode_lead, deaccumulate
from snoiq_assets.lib.hrrr.synth import MessageSpec
from snoiq_assets.lib.hrrr.variables import CATALOGUE, resolve
from snoiq_assets_tests.hrrr.archive import COLUMNS, apcp_accumulation, write_cycle

UTC = dt.timezone.utc
RUN = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)
LEADS = list(range(0, 5))
LAST = LEADS[-1]
PACKING_ERROR = 2e-3     # the real APCP template's packing (binary scale factor -11 at these values) and more
VARS = resolve(COLUMNS)


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    """f00-f04 of one cycle; APCP carries its 1-hour bucket from f02 on, ASNOW never."""
    return write_cycle(tmp_path_factory.mktemp("acc"), RUN, LEADS)


def _decode_cycle(files, engine, variables=VARS):
    tables, previous = {}, None
    for fh in sorted(files):
        tables[fh], _ = decode_lead(files[fh], variables, fh, previous=previous, engine=engine)
        previous = tables[fh]
    return tables


@pytest.mark.parametrize("engine", ["cfgrib", "eccodes"])
def test_hourly_apcp_sums_back_to_the_accumulation(cycle, engine):
    tables = _decode_cycle(cycle, engine, [CATALOGUE["apcp_kg_m2"]])
    last = tables[LAST]
    acc = last.column("apcp_kg_m2").to_numpy()
    hourly = np.stack([tables[fh].column("apcp_1h_kg_m2").to_numpy() for fh in range(1, LAST + 1)])
    # f01: the 0-1 accumulation; f02 on: the files' 1-hour buckets
    methods = [json.loads(tables[fh].schema.metadata[b"hourly_accumulations"])["apcp_1h_kg_m2"]["method"]
               for fh in range(1, LAST + 1)]
    assert methods == ["first hour (0-1 accumulation)"] + ["bucket"] * (LAST - 1)
    assert np.allclose(hourly.sum(axis=0, dtype=np.float64), acc, atol=LAST * TOLERANCE["apcp_kg_m2"])
    assert (hourly >= 0).all() and hourly.sum() > 0
    # the accumulation as given, and each column's window in its field metadata
    assert np.abs(acc - apcp_accumulation(LAST)).max() <= PACKING_ERROR
    assert last.schema.field("apcp_kg_m2").metadata[b"accumulation_window"] == f"0-{LAST} hour".encode()
    assert last.schema.field("apcp_1h_kg_m2").metadata[b"accumulation_window"] == f"{LAST - 1}-{LAST} hour".encode()
    assert json.loads(last.schema.metadata[b"units"])["apcp_1h_kg_m2"] == "kg m-2"
    # f00: nothing has accumulated and no hour has passed
    f0 = tables[0]
    assert f0.column("apcp_1h_kg_m2").null_count == f0.num_rows
    assert f0.schema.field("apcp_kg_m2").metadata[b"accumulation_window"] == b"0-0 hour"


def test_difference_of_consecutive_leads_where_no_bucket(cycle):
    """ASNOW has no 1-hour bucket: hourly = this lead's accumulation minus the previous lead's."""
    tables = _decode_cycle(cycle, "eccodes", [CATALOGUE["asnow_m"], CATALOGUE["apcp_kg_m2"]])
    for fh in range(2, LAST + 1):
        md = tables[fh].schema.field("asnow_1h_m").metadata
        assert md[b"method"] == f"difference f{fh:02d}-f{fh - 1:02d}".encode()
        assert md[b"accumulation_window"] == f"{fh - 1}-{fh} hour".encode()
    total = sum(tables[fh].column("asnow_1h_m").to_numpy().astype(np.float64) for fh in range(1, LAST + 1))
    assert np.allclose(total, tables[LAST].column("asnow_m").to_numpy(), atol=LAST * TOLERANCE["asnow_m"])
    assert all(tables[fh].column("asnow_1h_m").null_count == 0 for fh in range(1, LAST + 1))
    # APCP by difference too (its buckets ignored): the same sums
    acc = {fh: tables[fh].column("apcp_kg_m2").to_numpy() for fh in LEADS}
    by_diff = [deaccumulate("apcp_kg_m2", fh, acc[fh], acc[fh - 1], None) for fh in range(2, LAST + 1)]
    total = acc[1].astype(np.float64) + sum(h.values.astype(np.float64) for h in by_diff)
    assert np.allclose(total, acc[LAST], atol=LAST * TOLERANCE["apcp_kg_m2"])
    bucket = tables[LAST].column("apcp_1h_kg_m2").to_numpy()
    assert np.allclose(by_diff[-1].values, bucket, atol=2 * TOLERANCE["apcp_kg_m2"])


def test_tiny_negatives_clipped_larger_ones_flagged():
    acc = np.array([1.0, 1.0, 5.0, 2.0, 3.0], np.float32)
    prev = np.array([1.0005, 0.5, 5.0015, 2.5, np.nan], np.float32)
    h = deaccumulate("apcp_kg_m2", 3, acc, prev, None)
    assert h.clipped == 2 and h.flagged == 1 and h.most_negative == pytest.approx(-0.5)
    assert h.values[0] == 0.0 and h.values[1] == pytest.approx(0.5) and h.values[2] == 0.0
    assert np.isnan(h.values[3]) and np.isnan(h.values[4])
    assert h.metadata() == {"accumulation_window": "2-3 hour", "method": "difference f03-f02", "clipped_cells": 2,
                            "flagged_cells": 1, "most_negative": pytest.approx(-0.5)}
    missing_prev = deaccumulate("apcp_kg_m2", 3, acc, None, None)
    assert np.isnan(missing_prev.values).all() and "f02 not decoded" in missing_prev.method


def test_packing_noise_never_gives_a_negative_hour(tmp_path):
    """A lead whose accumulation is, by packing, a hair below the previous lead's: clipped to 0."""
    n = synth.HRRR_SHAPE[0] * synth.HRRR_SHAPE[1]
    base = np.linspace(0.0, 40.0, n)
    files = {}
    for fh, values in ((2, base), (3, base - 0.0004)):      # 0.4 g m-2 below: under one packing step x2
        spec = MessageSpec.for_variable(CATALOGUE["apcp_kg_m2"], values)
        files[fh] = synth.write_grib(tmp_path / f"f{fh:02d}.grib2", [spec], RUN, fh)
    prev, _ = decode_lead(files[2], [CATALOGUE["apcp_kg_m2"]], 2, engine="eccodes")
    table, stats = decode_lead(files[3], [CATALOGUE["apcp_kg_m2"]], 3, previous=prev, engine="eccodes")
    hourly = table.column("apcp_1h_kg_m2").to_numpy(zero_copy_only=False)
    assert hourly.min() == 0.0 and table.column("apcp_1h_kg_m2").null_count == 0
    meta = json.loads(table.schema.metadata[b"hourly_accumulations"])["apcp_1h_kg_m2"]
    assert meta["flagged_cells"] == 0 and meta["clipped_cells"] > 0 and stats["apcp_1h_kg_m2"]["min"] == 0.0


def test_accumulation_window_not_matching_its_lead(tmp_path):
    apcp = CATALOGUE["apcp_kg_m2"]
    # a file landed as f05 whose APCP accumulates 0-4 h
    bad = synth.write_grib(tmp_path / "hrrr.t00z.wrfsfcf05.grib2",
                           [MessageSpec.for_variable(CATALOGUE["tmp_2m_k"], synth.demo_values("tmp_2m_k")),
                            MessageSpec.for_variable(apcp, apcp_accumulation(4))], RUN, 4, packing="grid_ccsds")
    with pytest.raises(HrrrDataError) as err:
        decode_lead(bad, [CATALOGUE["tmp_2m_k"], apcp], 5, name="raw/hrrr/20230101/hrrr.t00z.wrfsfcf05.grib2")
    text = str(err.value)
    assert text.startswith("raw/hrrr/20230101/hrrr.t00z.wrfsfcf05.grib2, message 2: apcp_kg_m2 accumulation "
                           "window 0-4 hour does not match the lead f05")
    assert "expected 0-5 hour (from the cycle start) or 4-5 hour (last hour), found 0-4 hour" in text
    # a 3-hour bucket (2-5) in an f05 file is neither window
    spec = MessageSpec(0, 1, 8, 1, 0, "accum", apcp_accumulation(3), window_hours=3)
    odd = synth.write_grib(tmp_path / "odd.grib2", [MessageSpec.for_variable(apcp, apcp_accumulation(5)), spec],
                           RUN, 5, packing="grid_ccsds")
    with pytest.raises(HrrrDataError, match="message 2: apcp_kg_m2 accumulation window 2-5 hour does not match"):
        decode_lead(odd, [apcp], 5)
