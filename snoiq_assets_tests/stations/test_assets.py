"""Materialise the station assets on a real instance, on both storage backends."""

import warnings

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.partitions import station_file_partitions
from snoiq_assets.lib.lake import partition_object_key
from snoiq_assets_tests.helpers import failure_messages
from snoiq_assets.defs.stations import build_defs
from snoiq_assets.defs.stations.assets import (
    observations_clean, observations_raw, outcome_of_interest, register_outcome_files, register_station_files,
    station_metadata,
)
from snoiq_assets.defs.stations.checks import OBSERVATIONS_CHECKS, OUTCOME_CHECKS
from snoiq_assets.settings import Settings
from snoiq_assets.defs.stations.demo import OUTCOME_LOCATION, seed_demo

warnings.filterwarnings("ignore", category=dg.PreviewWarning) if hasattr(dg, "PreviewWarning") else None

OBS = [observations_raw, observations_clean, *OBSERVATIONS_CHECKS]


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

    res = dg.materialize([outcome_of_interest, *OUTCOME_CHECKS], resources=resources, instance=instance,
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


def _cle_with_bad_temperatures(sample_dir) -> bytes:
    lines = (sample_dir / "station_obs/iem_asos_CLE_2010-10.csv").read_text().splitlines()
    lines[1:31] = [ln.replace(",", ",9", 2).replace(",9", ",", 1) for ln in lines[1:31]]  # tmpc 7.20 -> 97.20
    return ("\n".join(lines) + "\n").encode()


@dg.asset(partitions_def=station_file_partitions, ins={"observations_clean": dg.AssetIn()})
def reads_clean(observations_clean: pl.DataFrame) -> pl.DataFrame:
    """A downstream asset of the clean table (a stand-in for the feature tables)."""
    return observations_clean.select("station_id", "air_temp_c")


def test_reject_share_over_the_limit_is_never_published(store, resources, instance, sample_dir):
    """Write-audit-publish: a partition over the reject-share limit is staged, audited, refused;
    it never appears under lake/, is not recorded as materialised, its rejects are, a downstream
    read fails naming the refusal; with a laxer limit the same file publishes."""
    store.put("raw/observations/CLE.csv", _cle_with_bad_temperatures(sample_dir))
    register_station_files(instance, store)
    res = dg.materialize(OBS, resources=resources, instance=instance, partition_key="CLE", raise_on_error=False)
    assert not res.success
    text = failure_messages(res)
    assert "observations_clean partition CLE not published: 20.00% of the rows rejected in column air_temp_c " \
           "(limit 5.00%; rules: range 30)" in text
    evals = {e.asset_check_key.name: e for e in res.get_asset_check_evaluations()}
    assert evals["observations_reject_share"].passed is False
    assert evals["observations_reject_share"].description == (
        "worst column air_temp_c: 20.00% rejected (limit 5.00%); the table was not published")
    clean_key = partition_object_key(dg.AssetKey("observations_clean"), "CLE")
    assert not store.exists(clean_key) and list(store.list("lake/observations_clean")) == []
    assert instance.get_materialized_partitions(dg.AssetKey("observations_clean")) == set()
    assert instance.get_materialized_partitions(dg.AssetKey("observations_rejects")) == {"CLE"}
    assert _read(store, "observations_rejects", "CLE").filter(pl.col("rule") == "range").height == 30
    staged = pl.read_parquet(store.get("staging/observations_clean/CLE.parquet"))   # kept for inspection
    assert staged.height == 150 and staged["air_temp_c"].null_count() == 30

    down = dg.materialize([reads_clean, observations_clean, observations_raw], selection=[reads_clean], resources=resources,
                          instance=instance, partition_key="CLE", raise_on_error=False)
    assert not down.success
    assert ("observations_clean has no stored data for 1 of 1 partitions (e.g. ['CLE']); materialise them first "
            "(CLE: refused by its audit and never published") in failure_messages(down)

    cfg = {"ops": {"observations_clean": {"config": {"max_reject_share": 0.25}}}}
    res = dg.materialize(OBS, resources=resources, instance=instance, partition_key="CLE", run_config=cfg)
    evals = {e.asset_check_key.name: e for e in res.get_asset_check_evaluations()}
    assert evals["observations_reject_share"].passed is True
    assert _read(store, "observations_clean", "CLE").equals(staged)
    assert not store.exists("staging/observations_clean/CLE.parquet")   # moved into the lake
    assert instance.get_materialized_partitions(dg.AssetKey("observations_clean")) == {"CLE"}
    assert dg.materialize([reads_clean, observations_clean, observations_raw], selection=[reads_clean], resources=resources,
                          instance=instance, partition_key="CLE").success
