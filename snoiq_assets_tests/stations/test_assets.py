"""Materialise the station assets on a real instance, on both storage backends."""

import warnings

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.lib.lake import partition_object_key
from snoiq_assets.defs.stations import build_defs
from snoiq_assets.defs.stations.assets import (
    observations_clean, observations_raw, outcome_of_interest, register_outcome_files, register_station_files,
    station_metadata,
)
from snoiq_assets.defs.stations.checks import ALL_CHECKS
from snoiq_assets.settings import Settings
from snoiq_assets.defs.stations.demo import OUTCOME_LOCATION, seed_demo

warnings.filterwarnings("ignore", category=dg.PreviewWarning) if hasattr(dg, "PreviewWarning") else None

OBS = [observations_raw, observations_clean, *ALL_CHECKS[:3]]


def _read(store, key: str, pk=None) -> pl.DataFrame:
    return pl.read_parquet(store.get(partition_object_key(dg.AssetKey(key), pk)))


def test_definitions_load_with_expected_keys():
    defs = build_defs(Settings())
    keys = {k.to_user_string() for k in defs.assets[0].keys} | {
        k.to_user_string() for a in defs.assets for k in a.keys}
    assert keys == {"station_metadata", "observations_raw", "observations_clean", "observations_rejects",
                    "outcome_of_interest", "outcome_rejects"}
    assert all(a.group_names_by_key[k] == "stations" for a in defs.assets for k in a.keys)


def test_demo_materialises_clean_rejects_metadata_outcome(store, resources, instance):
    keys = seed_demo(store)
    assert set(register_station_files(instance, store)) == set(keys)
    assert register_station_files(instance, store) == []  # idempotent
    assert register_outcome_files(instance, store) == [OUTCOME_LOCATION]
    for pk in ("94074", "GRB"):
        res = dg.materialize(OBS, resources=resources, instance=instance, partition_key=pk)
        assert res.success
        checks = {e.asset_check_key.name: e.passed for e in res.get_asset_check_evaluations()}
        assert checks == {"observations_reject_share": True, "observations_no_duplicate_keys": True,
                          "observations_within_claimed_period": True}
    clean = _read(store, "observations_clean", "GRB")
    rejects = _read(store, "observations_rejects", "GRB")
    assert clean.height == 202 and set(rejects["rule"]) == {"duplicate_timestamp"}
    assert _read(store, "observations_clean", "94074")["air_temp_c"][0] == 4.5
    assert store.exists("raw/observations/GRB.csv")  # the raw file stays

    res = dg.materialize([station_metadata], resources=resources, instance=instance)
    assert res.success
    meta = _read(store, "station_metadata")
    assert list(meta.columns) == ["station_id", "wban", "name", "latitude", "longitude", "elevation_m", "network", "state",
                                  "begin_date", "end_date"]
    got = {r["station_id"]: r for r in meta.iter_rows(named=True)}
    assert got["72698024229"]["latitude"] == pytest.approx(45.59578)  # from the GSOD file
    assert got["23583"]["elevation_m"] == pytest.approx(80 * 0.3048, abs=0.1)  # stations.tsv feet
    assert {"CLE", "GRB", "MSP", "ORD", "USW00024233", "94074"} <= set(got)
    # The road-weather stations from the bundled site list (raw/metadata/rwis_sites.csv).
    assert (got["gas_city"]["latitude"], got["gas_city"]["longitude"], got["gas_city"]["network"]) == (40.4797, -85.5486, "INDOT RWIS")

    res = dg.materialize([outcome_of_interest, *ALL_CHECKS[3:]], resources=resources, instance=instance,
                         partition_key=OUTCOME_LOCATION)
    assert res.success and all(e.passed for e in res.get_asset_check_evaluations())
    out = _read(store, "outcome_of_interest", OUTCOME_LOCATION)
    assert out.height == 1340 and out["variable"][0] == "snow_depth_mm" and out["value"].max() == 80


def test_bad_file_is_quarantined_and_others_carry_on(store, resources, instance, sample_dir):
    store.put("raw/observations/BAD.csv", b"\xff\xfenot,a,station,file\n1,2,3,4\n")
    store.put("raw/observations/bad=name.csv", b"x")
    store.put_file("raw/observations/ORD.csv", sample_dir / "station_obs/iem_asos_ORD_2010-10.csv")
    assert register_station_files(instance, store) == ["BAD", "ORD"]
    assert store.exists("quarantine/raw/observations/bad=name.csv.reason.json")

    bad = dg.materialize(OBS, resources=resources, instance=instance, partition_key="BAD", raise_on_error=False)
    assert not bad.success
    assert not store.exists("raw/observations/BAD.csv")
    reason = store.get_json("quarantine/raw/observations/BAD.csv.reason.json")
    assert "raw/observations/BAD.csv line 1" in reason["reason"] and "not UTF-8" in reason["reason"]
    assert dg.materialize(OBS, resources=resources, instance=instance, partition_key="ORD").success


def test_reject_share_check_blocks(store, resources, instance, sample_dir):
    text = (sample_dir / "station_obs/iem_asos_CLE_2010-10.csv").read_text()
    lines = text.splitlines()
    lines[1:31] = [ln.replace(",", ",9", 2).replace(",9", ",", 1) for ln in lines[1:31]]  # tmpc 7.20 -> 97.20
    store.put("raw/observations/CLE.csv", ("\n".join(lines) + "\n").encode())
    register_station_files(instance, store)
    res = dg.materialize(OBS, resources=resources, instance=instance, partition_key="CLE", raise_on_error=False)
    evals = {e.asset_check_key.name: e for e in res.get_asset_check_evaluations()}
    assert evals["observations_reject_share"].passed is False
    assert "air_temp_c" in evals["observations_reject_share"].description
    # a laxer threshold from run config passes
    cfg = {"ops": {"observations_clean_observations_reject_share": {"config": {"max_reject_share": 0.5}}}}
    res = dg.materialize(OBS, resources=resources, instance=instance, partition_key="CLE", run_config=cfg,
                         raise_on_error=False)
    evals = {e.asset_check_key.name: e for e in res.get_asset_check_evaluations()}
    assert evals["observations_reject_share"].passed is True
