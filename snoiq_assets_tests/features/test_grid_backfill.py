"""A single-run backfill of hrrr_raw + hrrr_fields + grid_join_features over three hours, in one
run on a real instance, on both storage backends; and a bad partition inside such a range."""

import datetime as dt

import dagster as dg
import polars as pl
import pyarrow.parquet as pq

from snoiq_assets.lib.lake import lead_object_key, partition_object_key
from snoiq_assets.lib.parquet import read_parquet_bytes
from snoiq_assets.defs.features.assets import grid_join_features, station_grid_index
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw
from snoiq_assets.defs.hrrr.demo import seed_demo as seed_hrrr
from snoiq_assets.defs.stations.assets import register_station_files
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, station_metadata
from snoiq_assets.defs.stations.demo import seed_demo as seed_stations
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES

UTC = dt.timezone.utc
PKS = ["2023-01-01T00", "2023-01-01T01", "2023-01-01T02"]
NUNN = "94074"  # USCRN CO Nunn 7 NNE: hourly rows from 2023-01-01T01 to 2023-01-03T00 UTC
FIELDS = dg.AssetKey("hrrr_fields")
JOIN = dg.AssetKey("grid_join_features")
ASSETS = [hrrr_raw, hrrr_grid, hrrr_fields, station_metadata, observations_raw, observations_clean,
          station_grid_index, grid_join_features]
SEL = {"leads": [0], "variables": list(DEFAULT_VARIABLES)}
RUN_CONFIG = {"ops": {"hrrr_raw": {"config": dict(SEL)}, "hrrr_fields": {"config": dict(SEL)}}}


def _range_tags(start: str, end: str) -> dict:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def _hour(pk: str) -> dt.datetime:
    return dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=UTC)


def _mat(selection, resources, instance, **kwargs):
    return dg.materialize(ASSETS, selection=selection, resources=resources, instance=instance, **kwargs)


def _read(store, key: dg.AssetKey, pk=None) -> pl.DataFrame:
    # hrrr_fields and grid_join_features keep one file per lead; these runs decode f00
    path = lead_object_key(key, pk, 0) if key in (FIELDS, JOIN) else partition_object_key(key, pk)
    return pl.read_parquet(store.get(path))


def _prepare(store, resources, instance) -> None:
    seed_hrrr(store)  # the three synthetic 2023-01-01 hours (+ the real 2020 subset)
    seed_stations(store)
    register_station_files(instance, store)
    grid_cfg = {"ops": {"hrrr_grid": {"config": {"source_key": landing_key(_hour(PKS[0]), 0)}}}}
    assert _mat([hrrr_grid], resources, instance, run_config=grid_cfg).success
    assert _mat([station_metadata], resources, instance).success
    assert _mat([station_grid_index], resources, instance).success
    assert _mat([observations_raw, observations_clean], resources, instance, partition_key=NUNN).success


def test_three_hour_single_run_of_raw_fields_and_join(store, resources, instance):
    _prepare(store, resources, instance)
    res = _mat([hrrr_raw, hrrr_fields, grid_join_features], resources, instance,
               tags=_range_tags(PKS[0], PKS[-1]), run_config=RUN_CONFIG)
    assert res.success
    # one run, one step per asset, covering the whole range
    steps = sorted(e.step_key for e in res.all_events if e.event_type_value == "STEP_SUCCESS")
    assert steps == ["grid_join_features", "hrrr_fields", "hrrr_raw"]
    for key in ("hrrr_raw", "hrrr_fields", "grid_join_features"):
        assert instance.get_materialized_partitions(dg.AssetKey(key)) == set(PKS), key
    mats = res.asset_materializations_for_node("grid_join_features")
    assert sorted(m.partition for m in mats) == PKS
    metas = {m.partition: m.metadata for m in mats}
    for pk, meta in metas.items():
        assert meta["partition_count"].value == 3 and meta["partitions_written"].value == 3
        assert meta["valid_time"].value.startswith(pk)
    # each hour its own count: Nunn observed at T01 and T02, not at T00
    assert [metas[pk]["stations_with_observation"].value for pk in PKS] == [0, 1, 1]
    assert {metas[pk]["dagster/row_count"].value for pk in PKS} == {metas[PKS[0]]["stations"].value}

    index = _read(store, dg.AssetKey("station_grid_index"))
    included = index.filter(pl.col("included"))
    nunn_obs = _read(store, dg.AssetKey("observations_clean"), NUNN)
    for pk in PKS:
        feats = _read(store, JOIN, pk)
        assert feats.height == included.height and feats["station_id"].to_list() == sorted(included["station_id"])
        assert feats["valid_time"].unique().to_list() == [_hour(pk)]
        assert feats["run_time"].unique().to_list() == [_hour(pk)]
        # each hour's features come from that hour's own fields file
        fields_table = read_parquet_bytes(store.get(lead_object_key(FIELDS, pk, 0)))
        assert fields_table.schema.metadata[b"valid_time"].decode() == _hour(pk).isoformat()
        fields = pl.from_arrow(fields_table)
        nunn_idx = included.filter(pl.col("station_id") == NUNN).row(0, named=True)
        nx = 1799
        row = feats.filter(pl.col("station_id") == NUNN).row(0, named=True)
        assert row["tmp_2m_k__centre"] == fields["tmp_2m_k"][nunn_idx["grid_y"] * nx + nunn_idx["grid_x"]]
        others = feats.filter(pl.col("station_id") != NUNN)
        assert others["obs_timestamp_utc"].null_count() == others.height
        if pk == PKS[0]:
            assert row["obs_timestamp_utc"] is None and row["obs_air_temp_c"] is None  # Nunn starts at T01
        else:
            expected = nunn_obs.filter(pl.col("timestamp_utc") == _hour(pk)).row(0, named=True)
            assert row["obs_timestamp_utc"] == _hour(pk)
            assert row["obs_air_temp_c"] == expected["air_temp_c"] and row["obs_air_temp_c"] is not None
    # the hours differ (the synthetic fields carry a diurnal phase)
    t00, t02 = _read(store, JOIN, PKS[0]), _read(store, JOIN, PKS[2])
    assert not t00["tmp_2m_k__mean"].equals(t02["tmp_2m_k__mean"])


def test_bad_partition_in_a_join_range_fails_naming_it_and_writes_nothing(store, resources, instance):
    _prepare(store, resources, instance)
    assert _mat([hrrr_raw, hrrr_fields], resources, instance,
                tags=_range_tags(PKS[0], PKS[-1]), run_config=RUN_CONFIG).success
    # T01's fields now claim another grid
    key = lead_object_key(FIELDS, PKS[1], 0)
    table = read_parquet_bytes(store.get(key))
    md = dict(table.schema.metadata)
    md[b"grid_id"] = b"f" * 64
    with store.atomic_local_file(key) as path:
        pq.write_table(table.replace_schema_metadata(md), path)
    res = _mat([grid_join_features], resources, instance, tags=_range_tags(PKS[0], PKS[-1]), raise_on_error=False)
    assert not res.success
    fail = [e for e in res.all_events if e.is_step_failure][0].step_failure_data
    text = fail.error.message
    assert "grid_join_features: 1 of 3 partitions failed (2023-01-01T01); nothing is written" in text
    assert f"hrrr_fields partition {PKS[1]} f00 is on grid ffffffffffffffff" in text
    assert fail.user_failure_data.metadata["good_partitions"].value == [PKS[0], PKS[2]]
    assert not any(store.exists(lead_object_key(JOIN, pk, 0)) for pk in PKS)
    assert instance.get_materialized_partitions(JOIN) == set()
