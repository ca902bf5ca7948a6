"""Registration of landed files survives bad names, accepts upper-case suffixes, and the local
raw zone refuses symbolic links (issue 14, items 3, 7, 9)."""

import datetime as dt
import os

import dagster as dg
import pytest

from snoiq_assets.defs.stations.schedules import daily_cleaning_sweep
from snoiq_assets.defs.stations.assets import register_outcome_files, register_station_files
from snoiq_assets.defs.stations.checks import OBSERVATIONS_CHECKS
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, outcome_of_interest
from snoiq_assets.lib.keys import safe_stand_in
from snoiq_assets.lib.storage import LocalStore, StorageError
from snoiq_assets_tests.automation.test_sensors import put_unchecked

ORD = "station_obs/iem_asos_ORD_2010-10.csv"
LONG = "S" * 246 + ".csv"   # 250 characters: longer than a key segment may be
BAD_NAMES = ["%2e%2e.csv", "a b.csv", LONG, "x;rm -rf.csv"]


def test_bad_names_are_quarantined_and_the_good_files_register(store, resources, instance, sample_dir):
    for name in BAD_NAMES:
        put_unchecked(store, f"raw/observations/{name}", b"station,valid,tmpc\n")
    store.put_file("raw/observations/ORD.csv", sample_dir / ORD)
    store.put_file("raw/observations/CLE.CSV", sample_dir / "station_obs/iem_asos_CLE_2010-10.csv")
    store.put("raw/observations/MIX.Csv", b"x")
    assert register_station_files(instance, store) == ["CLE", "ORD"]
    for name in BAD_NAMES:
        key = f"raw/observations/{name}"
        dest = "quarantine/unsafe/" + safe_stand_in(key)
        reason = store.get_json(dest + ".reason.json")
        assert reason["original_key"] == key and reason["reason"].startswith("unsafe file name: ")
        assert store.get(dest) == b"station,valid,tmpc\n"
    assert store.get_json("quarantine/raw/observations/MIX.Csv.reason.json")["reason"].endswith(
        "must end in one of .csv, .txt, .CSV, .TXT")
    assert sorted(i.key for i in store.list("raw/observations/")) == ["raw/observations/CLE.CSV",
                                                                        "raw/observations/ORD.csv"]
    # the upper-case suffix is found by its run
    res = dg.materialize([observations_raw, observations_clean, *OBSERVATIONS_CHECKS], resources=resources,
                         instance=instance, partition_key="CLE")
    assert res.success
    assert res.asset_materializations_for_node("observations_raw")[0].metadata["source_key"].value == \
        "raw/observations/CLE.CSV"


def test_outcomes_and_the_daily_sweep_carry_on_past_bad_names(store, resources, instance):
    put_unchecked(store, "raw/outcomes/%2e%2e.csv", b"date,v\n")
    put_unchecked(store, "raw/outcomes/" + LONG, b"date,v\n")
    store.put("raw/outcomes/SEA.CSV", b"date,snow_depth_mm\n2020-01-01,10\n2020-01-02,3\n")
    assert register_outcome_files(instance, store) == ["SEA"]
    res = dg.materialize([outcome_of_interest], resources=resources, instance=instance, partition_key="SEA")
    assert res.success

    put_unchecked(store, "raw/observations/a b.csv", b"x")
    store.put("raw/observations/GRB.TXT", b"x")
    from snoiq_assets.definitions import defs

    with dg.build_schedule_context(instance=instance, resources={"store": resources["store"]},
                                   repository_def=defs.get_repository_def(),
                                   scheduled_execution_time=dt.datetime(2026, 1, 5, 6, tzinfo=dt.timezone.utc)) as ctx:
        requests = list(daily_cleaning_sweep.evaluate_tick(ctx).run_requests)
    assert [(r.run_key, r.partition_key) for r in requests] == [("2026-01-05:GRB", "GRB")]
    assert store.exists("quarantine/unsafe/" + safe_stand_in("raw/observations/a b.csv"))


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_local_raw_zone_refuses_links(store, instance, tmp_path):
    assert isinstance(store, LocalStore)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:canary\n")
    obs = store.root / "raw/observations"
    obs.mkdir(parents=True)
    os.symlink(secret, obs / "LINK.csv")
    os.symlink(tmp_path, obs / "elsewhere")
    (tmp_path / "INNER.csv").write_text("canary\n")
    assert register_station_files(instance, store) == []          # links are not objects
    assert list(store.list("raw/")) == []
    for key in ("raw/observations/LINK.csv", "raw/observations/elsewhere/INNER.csv"):
        with pytest.raises(StorageError, match="is a symbolic link or lies under one; links are refused") as err:
            store.get(key)
        assert "canary" not in str(err.value)
    with pytest.raises(StorageError, match="links are refused"):
        store.put("raw/observations/elsewhere/new.csv", b"x")      # nor written through
    assert not (tmp_path / "new.csv").exists() and secret.read_text() == "root:x:0:0:canary\n"
