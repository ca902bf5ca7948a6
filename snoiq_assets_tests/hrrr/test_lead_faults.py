"""Bad leads of one cycle (issue 13, "Bad input"): each lead decodes on its own in the decoder
child and is checked for plausibility; a bad one is quarantined with its reason naming file and
message, the other leads of the cycle are written and the cycle recorded, and the step fails
naming every bad lead."""

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid
from snoiq_assets.lib.hrrr import synth
from snoiq_assets.lib.hrrr.decode import idx_text, scan_grib
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets_tests.helpers import STATION_INDEX_SPEC, failure_messages
from snoiq_assets_tests.hrrr.archive import COLUMNS, lead_specs, write_lead
from snoiq_assets_tests.hrrr.corrupt import crashing

UTC = dt.timezone.utc
RUN = dt.datetime(2023, 1, 1, 1, tzinfo=UTC)
PK = "2023-01-01T01"
FIELDS = dg.AssetKey("hrrr_fields")


def _land(store, fh: int, path: Path, idx: str | None = None) -> None:
    store.put_file(landing_key(RUN, fh), path)
    store.put(landing_key(RUN, fh) + ".idx", (idx if idx is not None else idx_text(scan_grib(path))).encode())


@pytest.mark.slow   # six CONUS lead files written with ecCodes and decoded
def test_bad_leads_are_quarantined_and_the_others_are_written(store, resources, instance, tmp_path):
    good = {fh: write_lead(tmp_path / "good", RUN, fh) for fh in (0, 1, 5)}
    for fh in (0, 1):
        _land(store, fh, good[fh])
    # f02: decodes, but 2 m temperature is 500 K everywhere (a unit or packing mistake)
    hot = [replace(s, values=np.full_like(s.values, 500.0)) if (s.category, s.number) == (0, 0) else s
           for s in lead_specs(2)]
    _land(store, 2, synth.write_grib(tmp_path / "f02.grib2", hot, RUN, 2, packing="grid_ccsds"))
    # f03: a flipped byte that makes ecCodes abort (in the child; the step survives)
    # (HRRR's own complex packing, as the real files: the byte CRASH_OFFSET is one of its parameters)
    f03 = synth.write_grib(tmp_path / "f03.grib2", lead_specs(3), RUN, 3)
    crashed = tmp_path / "f03_crash.grib2"
    crashed.write_bytes(crashing(f03.read_bytes()))
    _land(store, 3, crashed, idx=idx_text(scan_grib(f03)))
    # f04: landed as f04, but its accumulations (and steps) are f03's: the window does not match the lead
    _land(store, 4, synth.write_grib(tmp_path / "f04.grib2", lead_specs(3), RUN, 3, packing="grid_ccsds"))
    # f05: its own GRIB, but the .idx of f01 (it lists f01's messages, which the file lacks)
    _land(store, 5, good[5], idx=Path(str(good[1]) + ".idx").read_text())

    grid = dg.materialize([hrrr_grid], resources=resources, instance=instance,
                          run_config={"ops": {"hrrr_grid": {"config": {"source_key": landing_key(RUN, 0)}}}})
    assert grid.success
    res = dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], partition_key=PK, resources=resources,
                         instance=instance, raise_on_error=False,
                         run_config={"ops": {"hrrr_fields": {"config": {"leads": list(range(6)), "variables": list(COLUMNS),
                                                                        "engine": "eccodes"}}}})
    assert not res.success
    text = failure_messages(res)
    assert f"hrrr_fields: 4 of 6 leads failed ({PK} f02, {PK} f03, {PK} f04, {PK} f05); the good leads are written" in text
    quarantine = {fh: f"quarantine/{landing_key(RUN, fh)}" for fh in (2, 3, 4, 5)}
    expected = {
        2: "implausible decoded values (corrupt GRIB or wrong units): tmp_2m_k: values 500 .. 500 outside the "
           "plausible [170, 340]",
        3: "ecCodes crashed while decoding the file (decoder process killed by SIGABRT): ecCodes assertion failed",
        4: "message 3: asnow_m accumulation window 0-3 hour does not match the lead f04",
        5: ".idx",
    }
    for fh, words in expected.items():
        assert f"hrrr_fields {PK} f{fh:02d}: {landing_key(RUN, fh)}" in text, fh
        assert words in text, (fh, text)
        assert f"(moved to {quarantine[fh]})" in text
        reason = store.get_json(quarantine[fh] + ".reason.json")
        assert reason["asset"] == "hrrr_fields" and reason["partition"] == PK and words in reason["reason"]
        assert reason["file"] == landing_key(RUN, fh) and not store.exists(landing_key(RUN, fh))
        assert store.exists(quarantine[fh] + ".idx")   # its .idx went with it
    # the good leads are written and the cycle recorded: lake and catalogue agree
    assert [store.exists(lead_object_key(FIELDS.path, PK, fh)) for fh in range(6)] == [True, True] + [False] * 4
    assert instance.get_materialized_partitions(FIELDS) == {PK}
    with store.local_path(lead_object_key(FIELDS.path, PK, 1)) as p:
        f01 = pq.read_table(p)
    assert f01.schema.metadata[b"forecast_hour"] == b"1"
    hourly = json.loads(f01.schema.metadata[b"hourly_accumulations"])
    assert hourly["apcp_1h_kg_m2"]["method"] == "first hour (0-1 accumulation)"
