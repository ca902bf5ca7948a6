"""hrrr_raw / hrrr_grid / hrrr_fields on both backends, fetching from the S3 test server."""

import datetime as dt
import json

import boto3
import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from minio import Minio

from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets.defs.hrrr import build_defs
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw
from snoiq_assets.defs.hrrr.demo import DEMO_RUN_CONFIG, seed_demo
from snoiq_assets.lib.lake import partition_object_key
from snoiq_assets.lib.hrrr.decode import scan_grib
from snoiq_assets.lib.hrrr.fetch import FetchError, S3Source, fetch_subset, hrrr_key
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.hrrr.inventory import group_ranges, parse_idx, select
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve, search_pattern
from snoiq_assets.settings import Settings
from snoiq_assets_tests.hrrr.test_grid_decode import ec_values
from snoiq_assets_tests.helpers import STATION_INDEX_SPEC

UTC = dt.timezone.utc
RUN = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)
PK = "2023-01-01T00"
REMOTE = hrrr_key(RUN, 0)


@pytest.fixture
def noaa_bucket(seaweed, noaa_like):
    """A bucket on the S3 server laid out like noaa-hrrr-bdp-pds, holding one wrfsfc file + .idx."""
    path, idx = noaa_like
    bucket = seaweed.create_bucket()
    client = boto3.client("s3", endpoint_url=seaweed.endpoint, aws_access_key_id=seaweed.access_key,
                          aws_secret_access_key=seaweed.secret_key, region_name="us-east-1")
    client.upload_file(str(path), bucket, REMOTE)
    client.put_object(Bucket=bucket, Key=REMOTE + ".idx", Body=idx.encode())
    return bucket, client


def test_fetch_ranges_from_s3(tmp_path, seaweed, noaa_bucket, noaa_like):
    bucket, client = noaa_bucket
    sent = []
    client.meta.events.register("before-send.s3.GetObject", lambda request, **kw: sent.append(request.headers.get("Range")))
    bad = S3Source("broken", bucket + "-missing", client)
    good = S3Source("seaweed", bucket, client)
    pattern = search_pattern(resolve(DEFAULT_VARIABLES), 0)
    result = fetch_subset([bad, good], REMOTE, pattern, tmp_path / "out.grib2")
    assert result.source == "seaweed" and "broken" in result.errors[0]
    expected = group_ranges(select(parse_idx(noaa_like[1]), pattern))
    # POT (1), GUST (4) and the real f12 APCP messages (11, 14) are skipped: three contiguous runs
    assert [[e.number for e in r.entries] for r in expected] == [[2, 3], [5, 6, 7, 8, 9, 10], [12, 13]]
    assert result.range_headers == [r.header for r in expected]
    ranged = [h for h in sent if h]
    assert [h.decode() if isinstance(h, bytes) else h for h in ranged] == result.range_headers
    data = noaa_like[0].read_bytes()
    want = b"".join(data[r.start:r.end + 1] for r in expected)
    assert (tmp_path / "out.grib2").read_bytes() == want
    landed = scan_grib(tmp_path / "out.grib2")
    assert [m.wgrib2_name for m in landed] == ["TMP", "DPT", "SNOD", "WEASD", "ASNOW", "APCP", "PRATE", "CSNOW",
                                              "UGRD", "VGRD"]
    assert [e.start for e in parse_idx(result.idx_text)] == [m.offset for m in landed]


def test_fetch_with_minio_client_and_all_sources_failing(tmp_path, seaweed, noaa_bucket):
    bucket, _ = noaa_bucket
    mc = Minio(seaweed.endpoint.removeprefix("http://"), access_key=seaweed.access_key,
               secret_key=seaweed.secret_key, secure=False)
    res = fetch_subset([S3Source("minio", bucket, mc)], REMOTE, ":SNOD:surface:", tmp_path / "s.grib2")
    assert res.range_headers and len(scan_grib(tmp_path / "s.grib2")) == 1
    anonymous = S3Source.anonymous_boto3("anon", bucket, endpoint_url=seaweed.endpoint)
    with pytest.raises(FetchError, match="no source could provide.*anon.*minio-missing"):
        fetch_subset([anonymous, S3Source("minio-missing", bucket, mc)], "hrrr.20230101/conus/nope.grib2",
                     ":SNOD:", tmp_path / "x.grib2")


def _cfg(forecast_hour=0, variables=DEFAULT_VARIABLES, sources=None):
    raw = {"leads": [forecast_hour], "variables": list(variables)}
    if sources is not None:
        raw["sources"] = sources
    return {"ops": {"hrrr_raw": {"config": raw},
                    "hrrr_fields": {"config": {"leads": [forecast_hour], "variables": list(variables)}}}}


def test_pipeline_fetches_from_s3(store, resources, instance, seaweed, noaa_bucket, monkeypatch):
    bucket, _ = noaa_bucket
    monkeypatch.setenv("HRRR_TEST_KEY", seaweed.access_key)
    monkeypatch.setenv("HRRR_TEST_SECRET", seaweed.secret_key)
    sources = [
        {"name": "down", "kind": "s3", "bucket": bucket, "endpoint_url": "http://127.0.0.1:9"},
        {"name": "seaweed", "kind": "s3", "bucket": bucket, "endpoint_url": seaweed.endpoint,
         "access_key_env": "HRRR_TEST_KEY", "secret_key_env": "HRRR_TEST_SECRET"},
    ]
    res = dg.materialize([hrrr_raw], resources=resources, instance=instance, partition_key=PK,
                         run_config={"ops": {"hrrr_raw": _cfg(sources=sources)["ops"]["hrrr_raw"]}})
    assert res.success
    meta = res.asset_materializations_for_node("hrrr_raw")[0].metadata
    assert meta["source"].value == "seaweed" and meta["range_requests"].value == 3
    assert "down" in meta["fallback_errors"].value[0]
    key = landing_key(RUN, 0)
    assert store.exists(key) and store.exists(key + ".idx")
    assert meta["size_bytes"].value == store.stat(key).size
    res = dg.materialize([hrrr_grid], resources=resources, instance=instance)
    assert res.success
    res = dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], resources=resources, instance=instance, partition_key=PK,
                         run_config={"ops": {"hrrr_fields": _cfg()["ops"]["hrrr_fields"]}})
    assert res.success
    with store.local_path(lead_object_key("hrrr_fields", PK, 0)) as p:
        table = pq.read_table(p)
    with store.local_path(key) as p:
        for n, col in enumerate(DEFAULT_VARIABLES, 1):
            assert np.array_equal(table.column(col).to_numpy(), ec_values(p, n).astype(np.float32)), col
    assert res.asset_materializations_for_node("hrrr_fields")[0].metadata["decode_engine"].value == "eccodes"
    assert table.schema.metadata[b"decode_engine"] == b"eccodes"
    # the xarray + cfgrib engine, chosen by config, writes the same values
    cfg = {**_cfg()["ops"]["hrrr_fields"]["config"], "engine": "cfgrib"}
    res = dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], resources=resources, instance=instance, partition_key=PK,
                         run_config={"ops": {"hrrr_fields": {"config": cfg}}})
    assert res.success
    assert res.asset_materializations_for_node("hrrr_fields")[0].metadata["decode_engine"].value == "cfgrib"
    with store.local_path(lead_object_key("hrrr_fields", PK, 0)) as p:
        again = pq.read_table(p)
    assert again.schema.metadata[b"decode_engine"] == b"cfgrib"
    assert again.select(DEFAULT_VARIABLES).equals(table.select(DEFAULT_VARIABLES))


def test_demo_materialises(store, resources, instance):
    seeded = seed_demo(store, synth_partitions=("2023-01-01T01",))
    assert seeded == ["2020-12-14T00", "2023-01-01T01"]
    res = dg.materialize([hrrr_grid], resources=resources, instance=instance)
    assert res.success
    grid_meta = res.asset_materializations_for_node("hrrr_grid")[0].metadata
    with store.local_path(partition_object_key(dg.AssetKey("hrrr_grid"), None)) as p:
        gtab = pq.read_table(p)
    md = gtab.schema.metadata
    assert md[b"shape"] == b"1059,1799" and md[b"grid_id"].decode() == grid_meta["grid_id"].value
    assert gtab.schema.names == ["y", "x", "latitude", "longitude"] and gtab.num_rows == 1059 * 1799
    for pk in seeded:
        for asset in (hrrr_raw, hrrr_fields):
            r = dg.materialize([hrrr_raw, hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[asset], resources=resources,
                               instance=instance, partition_key=pk,
                               run_config={"ops": {asset.op.name: DEMO_RUN_CONFIG[pk]["ops"][asset.op.name]}})
            assert r.success, pk
        fmeta = r.asset_materializations_for_node("hrrr_fields")[0].metadata
        assert fmeta["grid_id"].value == grid_meta["grid_id"].value
        assert "apcp_kg_m2/max" in fmeta and fmeta["apcp_kg_m2/null_count"].value == 0
        lead = DEMO_RUN_CONFIG[pk]["ops"]["hrrr_fields"]["config"]["leads"][0]
        with store.local_path(lead_object_key("hrrr_fields", pk, lead)) as p:
            t = pq.read_table(p)
        assert t.num_rows == gtab.num_rows and all(str(f.type) == "float" for f in t.schema)
        tmd = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
        assert tmd["grid_id"] == grid_meta["grid_id"].value
        assert tmd["run_time"].startswith(pk.replace("T", "T")) and "units" in tmd
    land_meta = instance.get_latest_materialization_event(dg.AssetKey("hrrr_raw")).asset_materialization.metadata
    assert land_meta["source"].value == "landed" and len(land_meta["sha256"].value) == 64


def _fields_run(resources, instance, pk, cfg, raise_on_error=False):
    return dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], resources=resources,
                          instance=instance, partition_key=pk, raise_on_error=raise_on_error,
                          run_config={"ops": {"hrrr_fields": {"config": cfg}}})


def _raw_run(resources, instance, pk, cfg):
    return dg.materialize([hrrr_raw], resources=resources,
                          instance=instance, partition_key=pk, raise_on_error=False,
                          run_config={"ops": {"hrrr_raw": {"config": cfg}}})


def _failure_text(result) -> str:
    ev = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return ev[0].step_failure_data.error.message if ev else ""


def test_bad_inputs_quarantined_others_unaffected(store, resources, instance, hrrr_hour, sample_dir):
    real = sample_dir / "hrrr" / "subset_20201214_hrrr.t00z.wrfsfcf12.grib2"
    good_pk, trunc_pk, idx_pk, grid_pk, absent_pk = ("2023-01-01T00", "2023-01-01T03", "2023-01-01T04",
                                                      "2023-01-01T05", "2023-01-01T06")
    run = lambda pk: dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=UTC)  # noqa: E731
    data = hrrr_hour.read_bytes()
    store.put_file(landing_key(run(good_pk), 0), hrrr_hour)
    store.put(landing_key(run(trunc_pk), 0), data[: len(data) // 2])
    store.put_file(landing_key(run(idx_pk), 0), hrrr_hour)
    idx = (hrrr_hour.parent / (hrrr_hour.name + ".idx")).read_text().replace(":TMP:", ":WEASD:", 1)
    store.put(landing_key(run(idx_pk), 0) + ".idx", idx.encode())
    store.put_file(landing_key(run(grid_pk), 0), sample_dir / "noaa_grib2" / "gfs.t12z.pgrbf120.2p5deg.grib2")
    store.put_file(landing_key(run(absent_pk), 12), real)
    sel = _cfg()["ops"]["hrrr_raw"]["config"]

    r = _raw_run(resources, instance, trunc_pk, sel)
    assert not r.success and "message 5" in _failure_text(r) and "truncated" in _failure_text(r)
    r = _raw_run(resources, instance, idx_pk, sel)
    assert not r.success and "message 1: .idx entry 1 names the wrong variable" in _failure_text(r)
    r = _raw_run(resources, instance, absent_pk, {**sel, "leads": [12]})
    assert not r.success and "requested variable tmp_2m_k is absent" in _failure_text(r)
    for pk in (trunc_pk, idx_pk):
        key = landing_key(run(pk), 0)
        assert not store.exists(key) and store.exists("quarantine/" + key)
        reason = store.get_json("quarantine/" + key + ".reason.json")
        assert reason["original_key"] == key and reason["file"] == key and reason["message_number"] in (1, 5)
    assert store.exists("quarantine/" + landing_key(run(idx_pk), 0) + ".idx")
    assert store.exists("quarantine/" + landing_key(run(absent_pk), 12))

    # the good partition still lands and decodes; the GFS file fails on its grid at hrrr_fields
    assert _raw_run(resources, instance, good_pk, sel).success
    assert dg.materialize([hrrr_grid], resources=resources, instance=instance,
                          run_config={"ops": {"hrrr_grid": {"config": {"source_key": landing_key(run(good_pk), 0)}}}}).success
    r = _fields_run(resources, instance, grid_pk, {"leads": [0], "variables": ["tmp_2m_k"]})
    assert not r.success and "message 1: the message is on a different grid" in _failure_text(r)
    assert store.exists("quarantine/" + landing_key(run(grid_pk), 0))
    reason = store.get_json("quarantine/" + landing_key(run(grid_pk), 0) + ".reason.json")
    assert "hrrr_grid" in reason["expected"]
    assert _fields_run(resources, instance, good_pk, _cfg()["ops"]["hrrr_fields"]["config"]).success


def test_definitions_load():
    hrrr_defs = build_defs(Settings())
    keys = {k.to_user_string() for a in hrrr_defs.assets for k in a.keys}
    assert {g for a in hrrr_defs.assets for g in a.group_names_by_key.values()} == {"hrrr"}
    assert keys == {"hrrr_raw", "hrrr_grid", "hrrr_fields", "hrrr_station_windows"}
    assert json.dumps(DEMO_RUN_CONFIG)
