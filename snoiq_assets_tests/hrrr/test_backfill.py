"""Single-run backfills of hrrr_raw / hrrr_fields over a range of hourly partitions."""

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
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
from snoiq_assets_tests.hrrr.test_grid_decode import ec_values

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


def _materialise_grid(store, resources, instance, pk="2023-01-01T00"):
    cfg = {"ops": {"hrrr_grid": {"config": {"source_key": landing_key(_run(pk), 0)}}}}
    assert dg.materialize([hrrr_grid], resources=resources, instance=instance, run_config=cfg).success


def test_single_run_backfill_three_hours(store, resources, instance):
    seed_demo(store)   # the three 2023-01-01 hours (+ the real 2020 subset)
    _materialise_grid(store, resources, instance)
    res = dg.materialize([hrrr_raw, hrrr_grid, hrrr_fields], selection=[hrrr_raw, hrrr_fields], resources=resources, instance=instance,
                         tags=_range_tags(PKS[0], PKS[-1]), run_config=_cfg("hrrr_raw", "hrrr_fields"))
    assert res.success
    # one step per asset covers the whole range
    steps = [e.step_key for e in res.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert sorted(steps) == ["hrrr_fields", "hrrr_raw"]

    raw_mats = res.asset_materializations_for_node("hrrr_raw")
    assert sorted(m.partition for m in raw_mats) == PKS
    rmeta = raw_mats[0].metadata
    assert rmeta["partition_count"].value == 3 and rmeta["sources"].value == ["landed"]
    assert sorted(rmeta["partitions"].value) == PKS
    assert rmeta["size_bytes"].value == sum(store.stat(landing_key(_run(pk), 0)).size for pk in PKS)

    mats = res.asset_materializations_for_node("hrrr_fields")
    assert sorted(m.partition for m in mats) == PKS
    meta = mats[0].metadata
    assert meta["partition_count"].value == 3 and meta["partitions_written"].value == 3
    assert sorted(meta["partitions"].value) == PKS
    assert meta["partitions"].value[PKS[1]]["valid_time"] == "2023-01-01T01:00:00+00:00"
    assert meta["dagster/row_count"].value == 3 * 1059 * 1799
    assert instance.get_materialized_partitions(FIELDS) == set(PKS)

    tmp_all = []
    for pk in PKS:
        with store.local_path(lead_object_key(FIELDS, pk, 0)) as p:
            t = pq.read_table(p)
        md = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
        assert md["run_time"] == _run(pk).isoformat() and t.schema.names == STORED_COLUMNS
        with store.local_path(landing_key(_run(pk), 0)) as p:
            for n, col in enumerate(DEFAULT_VARIABLES, 1):
                assert np.array_equal(t.column(col).to_numpy(), ec_values(p, n).astype(np.float32)), (pk, col)
        tmp_all.append(t.column("tmp_2m_k").to_numpy())
    # aggregate stats over the range: min of mins, max of maxes, mean over every cell
    allv = np.concatenate(tmp_all)
    assert meta["tmp_2m_k/min"].value == pytest.approx(float(allv.min()))
    assert meta["tmp_2m_k/max"].value == pytest.approx(float(allv.max()))
    assert meta["tmp_2m_k/mean"].value == pytest.approx(float(allv.mean(dtype=np.float64)), rel=1e-9)
    assert meta["tmp_2m_k/null_count"].value == 0


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
    # the good hours are decoded but nothing is written for the run
    _materialise_grid(store, resources, instance)
    store.put(bad_key, good)
    res = dg.materialize([hrrr_grid, hrrr_fields], selection=[hrrr_fields], resources=resources, instance=instance, raise_on_error=False,
                         tags=_range_tags(PKS[0], PKS[2]), run_config=_cfg("hrrr_fields"))
    assert not res.success
    text, meta = _failure(res)
    assert "Failure: hrrr_fields: 1 of 3 partitions failed (2023-01-01T01); nothing is written" in text
    assert "the file is for another run cycle; expected run 2023-01-01T01Z (the partition), found run 2023-01-01T00Z" in text
    assert meta["good_partitions"].value == [PKS[0], PKS[2]] and meta["message_number"].value == 1
    reason = store.get_json("quarantine/" + bad_key + ".reason.json")
    assert reason["partition"] == PKS[1] and reason["asset"] == "hrrr_fields"
    assert not store.exists(bad_key)
    assert not any(store.exists(lead_object_key(FIELDS, pk, 0)) for pk in PKS)
    assert instance.get_materialized_partitions(FIELDS) == set()

    # the good partitions alone still go through
    res = dg.materialize([hrrr_grid, hrrr_fields], selection=[hrrr_fields], resources=resources, instance=instance,
                         tags=_range_tags(PKS[2], PKS[2]), run_config=_cfg("hrrr_fields"))
    assert res.success and instance.get_materialized_partitions(FIELDS) == {PKS[2]}


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
    # Another domain may be mid-edit: give the code location a few tries to load.
    for attempt in range(3):
        r = _cli(["asset", "materialize", "-m", "snoiq_assets.definitions", "--select", "hrrr_grid",
                  "--config", str(grid_cfg)], env)
        if r.returncode == 0 or attempt == 2:
            break
        time.sleep(30)
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
