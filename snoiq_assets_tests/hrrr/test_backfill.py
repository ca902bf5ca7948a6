"""Single-run backfills of hrrr_raw / hrrr_fields over a range of hourly partitions."""

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw
from snoiq_assets.defs.hrrr.demo import seed_demo
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES
from snoiq_assets.lib.storage import LocalStore
from snoiq_assets_tests.hrrr.corrupt import crashing
from snoiq_assets_tests.hrrr.test_grid_decode import ec_values
from snoiq_assets_tests.helpers import STATION_INDEX_SPEC

UTC = dt.timezone.utc
REPO = Path(__file__).resolve().parents[2]
PKS = ["2023-01-01T00", "2023-01-01T01", "2023-01-01T02"]
SEL = {"leads": [0], "variables": list(DEFAULT_VARIABLES)}
STORED_COLUMNS = [*DEFAULT_VARIABLES, "asnow_1h_m", "apcp_1h_kg_m2"]   # the decoded, then the hourly amounts
FIELDS = dg.AssetKey("hrrr_fields")


def _run(pk: str) -> dt.datetime:
    return dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=UTC)


def _range_tags(start: str, end: str) -> dict:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def _cfg(*assets, raw_extra=None) -> dict:
    ops = {}
    for a in assets:
        ops[a] = {"config": {**SEL, **(raw_extra or {})} if a == "hrrr_raw" else dict(SEL)}
    return {"ops": ops}


def _failure(result):
    ev = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(ev) == 1
    data = ev[0].step_failure_data
    return data.error.message, data.user_failure_data.metadata


def _assert_no_spill_left(store) -> None:
    """hrrr_fields encodes each lead into a spill folder (on the local lake's file system) as it
    decodes; after the run, succeeded or failed, the files are in the lake and the folder is gone."""
    if isinstance(store, LocalStore):
        spill = store.root / LocalStore.SPILL_DIR
        assert not spill.exists() or list(spill.iterdir()) == []


def _materialise_grid(store, resources, instance, pk="2023-01-01T00"):
    cfg = {"ops": {"hrrr_grid": {"config": {"source_key": landing_key(_run(pk), 0)}}}}
    assert dg.materialize([hrrr_grid], resources=resources, instance=instance, run_config=cfg).success


def test_single_run_backfill_three_hours(store, resources, instance):
    seed_demo(store)   # the three 2023-01-01 hours (+ the real 2020 subset)
    _materialise_grid(store, resources, instance)
    res = dg.materialize([hrrr_raw, hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_raw, hrrr_fields], resources=resources, instance=instance,
                         tags=_range_tags(PKS[0], PKS[-1]), run_config=_cfg("hrrr_raw", "hrrr_fields"))
    assert res.success
    # one step per asset covers the whole range
    steps = [e.step_key for e in res.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert sorted(steps) == ["hrrr_fields", "hrrr_raw"]

    raw_mats = {m.partition: m.metadata for m in res.asset_materializations_for_node("hrrr_raw")}
    assert sorted(raw_mats) == PKS
    for pk, rmeta in raw_mats.items():   # each hour its own file, size and digest
        assert rmeta["partition_count"].value == 3 and rmeta["source"].value == "landed"
        assert rmeta["key"].value == landing_key(_run(pk), 0)
        assert rmeta["size_bytes"].value == store.stat(landing_key(_run(pk), 0)).size

    mats = {m.partition: m.metadata for m in res.asset_materializations_for_node("hrrr_fields")}
    assert sorted(mats) == PKS
    for pk, meta in mats.items():
        assert meta["partition_count"].value == 3 and meta["partitions_written"].value == 3
        assert meta["valid_time"].value == _run(pk).isoformat()
        assert meta["source_key"].value == landing_key(_run(pk), 0)
        assert meta["dagster/row_count"].value == 1059 * 1799   # this hour's cells, not the range's
    assert instance.get_materialized_partitions(FIELDS) == set(PKS)

    for pk in PKS:
        with store.local_path(lead_object_key(FIELDS, pk, 0)) as p:
            t = pq.read_table(p)
        md = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
        assert md["run_time"] == _run(pk).isoformat() and t.schema.names == STORED_COLUMNS
        with store.local_path(landing_key(_run(pk), 0)) as p:
            for n, col in enumerate(DEFAULT_VARIABLES, 1):
                assert np.array_equal(t.column(col).to_numpy(), ec_values(p, n).astype(np.float32)), (pk, col)
        # this hour's statistics, rounded to 3 decimals for the UI
        values = t.column("tmp_2m_k").to_numpy()
        meta = mats[pk]
        assert meta["tmp_2m_k/min"].value == round(float(values.min()), 3)
        assert meta["tmp_2m_k/max"].value == round(float(values.max()), 3)
        assert meta["tmp_2m_k/mean"].value == pytest.approx(float(values.mean(dtype=np.float64)), abs=5e-4)
        assert meta["tmp_2m_k/null_count"].value == 0
    # the stored records agree (what the UI's partition view shows)
    for pk in PKS:
        record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=FIELDS, asset_partitions=[pk]),
                                                 limit=1).records[0]
        assert record.asset_materialization.metadata["dagster/row_count"].value == 1059 * 1799
    _assert_no_spill_left(store)


def test_bad_partition_in_range(store, resources, instance):
    seed_demo(store, synth_partitions=(PKS[0], PKS[2]))
    bad_key = landing_key(_run(PKS[1]), 0)
    good = store.get(landing_key(_run(PKS[0]), 0))
    store.put(bad_key, good[: len(good) // 3])          # truncated inside a message

    # hrrr_raw over T00..T03: T01 is corrupt (quarantined), T03 is nowhere (no source given)
    res = dg.materialize([hrrr_raw], resources=resources, instance=instance, raise_on_error=False,
                         tags=_range_tags(PKS[0], "2023-01-01T03"), run_config=_cfg("hrrr_raw", raw_extra={"sources": []}))
    assert not res.success
    text, meta = _failure(res)
    assert "hrrr_raw: 2 of 4 partitions failed (2023-01-01T01, 2023-01-01T03)" in text
    assert "hrrr_raw 2023-01-01T01: " + bad_key in text and "truncated" in text
    assert "hrrr_raw 2023-01-01T03: no source could provide hrrr.20230101/conus/hrrr.t03z.wrfsfcf00.grib2: " \
        "no sources configured" in text
    assert meta["good_partitions"].value == [PKS[0], PKS[2]]
    assert not store.exists(bad_key) and store.exists("quarantine/" + bad_key)
    reason = store.get_json("quarantine/" + bad_key + ".reason.json")
    assert reason["partition"] == PKS[1] and reason["asset"] == "hrrr_raw" and "truncated" in reason["reason"]
    assert store.exists(landing_key(_run(PKS[0]), 0)) and store.exists(landing_key(_run(PKS[2]), 0))
    assert instance.get_materialized_partitions(dg.AssetKey("hrrr_raw")) == set()

    # hrrr_fields over T00..T02: T01 now holds T00's GRIB (wrong run cycle) -> quarantined,
    # the good hours are written and recorded, the bad one quarantined
    _materialise_grid(store, resources, instance)
    store.put(bad_key, good)
    res = dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], resources=resources, instance=instance, raise_on_error=False,
                         tags=_range_tags(PKS[0], PKS[2]), run_config=_cfg("hrrr_fields"))
    assert not res.success
    text, meta = _failure(res)
    assert ("Failure: hrrr_fields: 1 of 3 leads failed (2023-01-01T01 f00); the good leads are written and their "
            "cycles recorded") in text
    assert "the file is for another run cycle; expected run 2023-01-01T01Z (the partition), found run 2023-01-01T00Z" in text
    assert meta["good_leads"].value == [f"{PKS[0]} f00", f"{PKS[2]} f00"] and meta["message_number"].value == 1
    reason = store.get_json("quarantine/" + bad_key + ".reason.json")
    assert reason["partition"] == PKS[1] and reason["asset"] == "hrrr_fields"
    assert not store.exists(bad_key)
    # lake and catalogue agree: exactly the good partitions are stored and recorded
    assert [store.exists(lead_object_key(FIELDS, pk, 0)) for pk in PKS] == [True, False, True]
    assert instance.get_materialized_partitions(FIELDS) == {PKS[0], PKS[2]}
    with store.local_path(lead_object_key(FIELDS, PKS[2], 0)) as p:
        written = pq.read_table(p)
    with store.local_path(landing_key(_run(PKS[2]), 0)) as p:
        assert np.array_equal(written.column("tmp_2m_k").to_numpy(), ec_values(p, 1).astype(np.float32))
    _assert_no_spill_left(store)


def test_ecCodes_crash_fails_one_partition_of_a_range(store, resources, instance):
    """A flipped byte that makes ecCodes abort: the step survives, names the file and ecCodes'
    message, quarantines it; the good hours of the range are written and recorded."""
    seed_demo(store)
    _materialise_grid(store, resources, instance)
    bad_key = landing_key(_run(PKS[1]), 0)
    store.put(bad_key, crashing(store.get(bad_key), message_offset=0))
    res = dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], resources=resources, instance=instance,
                         raise_on_error=False, tags=_range_tags(PKS[0], PKS[2]), run_config=_cfg("hrrr_fields"))
    assert not res.success
    text, meta = _failure(res)
    assert (f"hrrr_fields 2023-01-01T01 f00: {bad_key}: ecCodes crashed while decoding the file (decoder process "
            "killed by SIGABRT): ecCodes assertion failed") in text
    assert f"(moved to quarantine/{bad_key})" in text and meta["good_leads"].value == [f"{PKS[0]} f00", f"{PKS[2]} f00"]
    reason = store.get_json("quarantine/" + bad_key + ".reason.json")
    assert "grib_bits_any_endian" in reason["reason"] and reason["partition"] == PKS[1]
    assert not store.exists(bad_key) and store.exists("quarantine/" + bad_key + ".idx")
    assert instance.get_materialized_partitions(FIELDS) == {PKS[0], PKS[2]}
    assert [store.exists(lead_object_key(FIELDS, pk, 0)) for pk in PKS] == [True, False, True]
    _assert_no_spill_left(store)


def _cli(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "dagster", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_cli_partition_range(tmp_path):
    """`dagster asset materialize --partition-range` over the full code location (local profile)."""
    home, dhome = tmp_path / "snoiq", tmp_path / "dagster_home"
    dhome.mkdir()
    shutil.copy(REPO / "dagster.local.yaml", dhome / "dagster.yaml")
    seed_demo(LocalStore(home))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNOIQ_", "AWS_", "DAGSTER_"))}
    env.update(SNOIQ_HOME=str(home), SNOIQ_PROFILE="local", DAGSTER_HOME=str(dhome))
    grid_cfg = tmp_path / "grid.yaml"
    grid_cfg.write_text(f"ops:\n  hrrr_grid:\n    config:\n      source_key: {landing_key(_run(PKS[0]), 0)}\n")
    r = _cli(["asset", "materialize", "-m", "snoiq_assets.definitions", "--select", "hrrr_grid",
              "--config", str(grid_cfg)], env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _cli(["asset", "materialize", "-m", "snoiq_assets.definitions", "--select", "hrrr_raw,hrrr_fields",
              "--partition-range", f"{PKS[0]}...{PKS[-1]}"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    store = LocalStore(home)
    for pk in PKS:
        with store.local_path(lead_object_key(FIELDS, pk, 0)) as p:
            t = pq.read_table(p)
        assert t.num_rows == 1059 * 1799 and t.schema.names == STORED_COLUMNS
    with dg.DagsterInstance.from_config(str(dhome)) as inst:
        assert inst.get_materialized_partitions(FIELDS) == set(PKS)
        assert inst.get_materialized_partitions(dg.AssetKey("hrrr_raw")) == set(PKS)
