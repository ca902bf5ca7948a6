"""Each (cycle, lead) its own stored unit: hrrr_raw lands several leads of one cycle from the S3
test server laid out like the NOAA bucket, hrrr_fields and grid_join_features keep one file per
lead, the completeness check names the missing leads; bad leads are quarantined, others carry on."""

import datetime as dt
import shutil

import boto3
import dagster as dg
import numpy as np
import polars as pl
import pyarrow.parquet as pq

from snoiq_assets.defs.features.assets import grid_join_features, station_grid_index
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_leads_complete, hrrr_raw
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, register_station_files, station_metadata
from snoiq_assets.defs.stations.demo import seed_demo as seed_stations
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.lake import lead_object_key, partition_object_key
from snoiq_assets_tests.helpers import failure_messages
from snoiq_assets_tests.hrrr.archive import COLUMNS, upload_cycle, write_cycle

UTC = dt.timezone.utc
RUN = dt.datetime(2023, 1, 1, 1, tzinfo=UTC)      # overlaps the bundled USCRN Nunn hourly file
PK = "2023-01-01T01"
ASSETS = [hrrr_raw, hrrr_grid, hrrr_fields, hrrr_leads_complete, station_metadata, observations_raw,
          observations_clean, station_grid_index, grid_join_features]


def _mat(selection, resources, instance, **kw):
    return dg.materialize(ASSETS, selection=selection, resources=resources, instance=instance, **kw)


def _sel(leads, **extra):
    return {"leads": leads, "variables": list(COLUMNS), **extra}


def test_leads_of_one_cycle_coexist(store, resources, instance, seaweed, tmp_path, monkeypatch):
    files = write_cycle(tmp_path / "archive", RUN, [0, 1, 2, 3])
    bucket = seaweed.create_bucket()
    client = boto3.client("s3", endpoint_url=seaweed.endpoint, aws_access_key_id=seaweed.access_key,
                          aws_secret_access_key=seaweed.secret_key, region_name="us-east-1")
    upload_cycle(client, bucket, RUN, {fh: p for fh, p in files.items() if fh != 2})   # f02 not published yet
    monkeypatch.setenv("HRRR_TEST_KEY", seaweed.access_key)
    monkeypatch.setenv("HRRR_TEST_SECRET", seaweed.secret_key)
    sources = [{"name": "seaweed", "endpoint_url": seaweed.endpoint, "bucket": bucket,
                "access_key_env": "HRRR_TEST_KEY", "secret_key_env": "HRRR_TEST_SECRET", "timeout_s": 5.0}]
    # f04 already landed, but it is f01's file: the wrong lead, quarantined with its reason
    wrong = tmp_path / "wrong.grib2"
    shutil.copyfile(files[1], wrong)
    store.put_file(landing_key(RUN, 4), wrong)

    res = _mat([hrrr_raw], resources, instance, partition_key=PK,
               run_config={"ops": {"hrrr_raw": {"config": _sel([0, 1, 2, 3, 4], sources=sources)}}})
    assert res.success, failure_messages(res)
    meta = res.asset_materializations_for_node("hrrr_raw")[0].metadata
    assert meta["leads_landed"].value == [0, 1, 3] and meta["leads_missing"].value == [2]
    assert "hrrr.20230101/conus/hrrr.t01z.wrfsfcf02.grib2" in meta["errors"].value["f02"]
    quarantined = meta["quarantined"].value["f04"]
    assert quarantined == "quarantine/" + landing_key(RUN, 4)
    reason = store.get_json(quarantined + ".reason.json")
    assert "wrong forecast hour" in reason["reason"] and "expected f04, found f01" in reason["reason"]
    assert [store.exists(landing_key(RUN, fh)) for fh in range(5)] == [True, True, False, True, False]

    # the completeness check names the missing leads of the cycle (f00-f18 expected at 01Z)
    check = res.get_asset_check_evaluations()[0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == ("cycle 2023-01-01T01: 64 of 76 messages missing: missing leads "
                                 + ", ".join(f"f{fh:02d}" for fh in [2, *range(4, 19)]))

    assert _mat([hrrr_grid], resources, instance,
                run_config={"ops": {"hrrr_grid": {"config": {"source_key": landing_key(RUN, 0)}}}}).success
    # a lead outside the schedule (f19 at 01Z) fails naming it
    bad = _mat([hrrr_fields], resources, instance, partition_key=PK, raise_on_error=False,
               run_config={"ops": {"hrrr_fields": {"config": _sel([1, 19], engine="eccodes")}}})
    assert not bad.success and "2023-01-01T01: lead f19 is outside the configured leads of cycle 2023-01-01T01 " \
                               "(f00-f18)" in failure_messages(bad)
    # f00 and f01 first, then f03 alone: every stored lead file stays, none overwrites another
    for leads in ([0, 1], [3]):
        res = _mat([hrrr_fields], resources, instance, partition_key=PK,
                   run_config={"ops": {"hrrr_fields": {"config": _sel(leads, engine="eccodes")}}})
        assert res.success, failure_messages(res)
    stored = sorted(i.key for i in store.list("lake/hrrr_fields/"))
    assert stored == [lead_object_key("hrrr_fields", PK, fh) for fh in (0, 1, 3)]
    with store.local_path(lead_object_key("hrrr_fields", PK, 1)) as p:
        f01 = pq.read_table(p)
    with store.local_path(lead_object_key("hrrr_fields", PK, 3)) as p:
        f03 = pq.read_table(p)
    assert f01.schema.metadata[b"forecast_hour"] == b"1" and f03.schema.metadata[b"forecast_hour"] == b"3"
    assert f03.schema.metadata[b"valid_time"] == b"2023-01-01T04:00:00+00:00"
    assert f03.schema.field("apcp_1h_kg_m2").metadata[b"method"] == b"bucket"
    # f03's ASNOW hour needs f02, which has not landed: null, and said so
    assert f03.column("asnow_1h_m").null_count == f03.num_rows
    assert b"f02 not decoded" in f03.schema.field("asnow_1h_m").metadata[b"method"]
    assert not np.array_equal(f01.column("tmp_2m_k").to_numpy(), f03.column("tmp_2m_k").to_numpy())

    seed_stations(store)
    register_station_files(instance, store)
    assert _mat([station_metadata], resources, instance).success
    assert _mat([observations_raw, observations_clean], resources, instance, partition_key="94074").success
    assert _mat([station_grid_index], resources, instance).success
    res = _mat([grid_join_features], resources, instance, partition_key=PK)
    assert res.success, failure_messages(res)
    leads_meta = res.asset_materializations_for_node("grid_join_features")[0].metadata["leads"].value
    assert sorted(leads_meta) == ["f00", "f01", "f03"]
    frames = {}
    for fh in (0, 1, 3):
        with store.local_path(lead_object_key("grid_join_features", PK, fh)) as p:
            frames[fh] = pl.read_parquet(p)
    for fh, frame in frames.items():
        assert frame["forecast_hour"].unique().to_list() == [fh]
        assert frame["run_time"].unique().to_list() == [RUN]
        assert frame["valid_time"].unique().to_list() == [RUN + dt.timedelta(hours=fh)]
    nunn = {fh: f.filter(pl.col("station_id") == "94074").row(0, named=True) for fh, f in frames.items()}
    # each lead joins the observation of its own valid time
    assert [nunn[fh]["obs_timestamp_utc"] for fh in (0, 1, 3)] == [RUN + dt.timedelta(hours=fh) for fh in (0, 1, 3)]
    assert not store.exists(partition_object_key("grid_join_features", PK))
