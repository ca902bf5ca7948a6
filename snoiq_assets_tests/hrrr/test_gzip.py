"""Gzip-compressed GRIB2 (MRMS is distributed as .grib2.gz): decompressed on landing by
hrrr_raw, decoded by both engines; a gzip file given as GRIB, or a broken gzip stream, fails
with an error that says gzip."""

import pyproj  # noqa: F401  isort: skip  (before eccodes)

import datetime as dt
import gzip

import dagster as dg
import eccodes
import numpy as np
import pyarrow.parquet as pq
import pytest

from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw
from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import ENGINES, decode_fields, gunzip_grib, scan_grib
from snoiq_assets.lib.hrrr.rawkeys import landing_key, partition_for_landed_key
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, Variable, resolve
from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets_tests.helpers import STATION_INDEX_SPEC

UTC = dt.timezone.utc
MRMS = "MRMS_MultiSensor_QPE_01H_Pass2_00.00_20201015-000000.grib2.gz"
# MultiSensor_QPE_01H_Pass2: MRMS local table (UserTable_MRMS_v12.2.csv) 209/6/37, mm
QPE_01H = Variable("qpe_01h_mm", "var discipline=209 center=161 local_table=1 parmcat=6 parm=37",
                   "level type 102 value 0", "anl", 209, 6, 37, 102, 0, "instant", "mm")


@pytest.fixture(scope="module")
def mrms(sample_dir, tmp_path_factory):
    dest = tmp_path_factory.mktemp("mrms") / MRMS.removesuffix(".gz")
    assert gunzip_grib(sample_dir / "noaa_grib2" / MRMS, dest, MRMS) == 403_519
    return dest


def test_gzip_given_as_grib_is_an_error_that_says_gzip(sample_dir):
    with pytest.raises(HrrrDataError, match=r"message 1: the file is gzip-compressed \(it starts with the gzip "
                       r"magic bytes 1f 8b\).*found gzip data"):
        scan_grib(sample_dir / "noaa_grib2" / MRMS)


@pytest.mark.parametrize("engine", ENGINES)
def test_real_mrms_decodes_after_gunzip(mrms, engine):
    msgs = scan_grib(mrms)
    assert len(msgs) == 1 and msgs[0].keys["discipline"] == 209 and msgs[0].run_time == dt.datetime(2020, 10, 15, tzinfo=UTC)
    table, stats = decode_fields(mrms, [QPE_01H], 0, engine=engine)
    h = eccodes.codes_new_from_message(mrms.read_bytes())
    try:
        ref = eccodes.codes_get_values(h).astype(np.float32)
        assert (eccodes.codes_get(h, "Ni"), eccodes.codes_get(h, "Nj")) == (7000, 3500)
    finally:
        eccodes.codes_release(h)
    col = table.column("qpe_01h_mm").to_numpy()
    assert np.array_equal(col, ref)
    assert stats["qpe_01h_mm"]["max"] == pytest.approx(59.1, abs=0.05)
    assert stats["qpe_01h_mm"]["min"] == 0.0 and int((col > 0).sum()) == 1_137_951   # cells with rain in the hour


def test_broken_gzip_streams(tmp_path, sample_dir):
    data = (sample_dir / "noaa_grib2" / MRMS).read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(HrrrDataError, match=r"cut.gz: gzip cannot decompress the file: EOFError"):
        gunzip_grib(tmp_path / "cut.gz", tmp_path / "out", "cut.gz")
    bad = bytearray(data)
    bad[1000:1010] = b"\0" * 10
    (tmp_path / "bad.gz").write_bytes(bytes(bad))
    with pytest.raises(HrrrDataError, match=r"bad.gz: gzip cannot decompress the file"):
        gunzip_grib(tmp_path / "bad.gz", tmp_path / "out", "bad.gz")
    with pytest.raises(HrrrDataError, match=r"plain: not gzip data"):
        gunzip_grib(sample_dir / "noaa_grib2" / "gfs.t12z.pgrbf120.2p5deg.grib2", tmp_path / "out", "plain")


def test_landed_grib2_gz_is_decompressed_by_hrrr_raw(store, resources, instance, hrrr_hour):
    good_pk, bad_pk = "2023-01-01T00", "2023-01-01T01"
    run = lambda pk: dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=UTC)  # noqa: E731
    key = landing_key(run(good_pk), 0)
    packed = gzip.compress(hrrr_hour.read_bytes())
    store.put(key + ".gz", packed)
    bad_key = landing_key(run(bad_pk), 0)
    store.put(bad_key + ".gz", packed[: len(packed) // 3])
    sel = {"leads": [0], "variables": list(DEFAULT_VARIABLES)}

    res = dg.materialize([hrrr_raw], resources=resources, instance=instance, partition_key=good_pk,
                         run_config={"ops": {"hrrr_raw": {"config": sel}}})
    meta = res.asset_materializations_for_node("hrrr_raw")[0].metadata
    assert meta["decompressed_from"].value == key + ".gz" and meta["compressed_bytes"].value == len(packed)
    assert meta["decompressed_bytes"].value == hrrr_hour.stat().st_size == meta["size_bytes"].value
    assert store.get(key) == hrrr_hour.read_bytes() and store.exists(key + ".gz")   # the raw .gz stays
    assert len(store.get(key + ".idx").decode().splitlines()) == 10
    assert dg.materialize([hrrr_grid], resources=resources, instance=instance).success
    assert dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], resources=resources, instance=instance, partition_key=good_pk,
                          run_config={"ops": {"hrrr_fields": {"config": sel}}}).success
    with store.local_path(lead_object_key(dg.AssetKey("hrrr_fields"), good_pk, 0)) as p:
        table = pq.read_table(p)
    want, _ = decode_fields(hrrr_hour, resolve(DEFAULT_VARIABLES), 0, engine="eccodes")
    assert table.select(list(DEFAULT_VARIABLES)).equals(want.select(list(DEFAULT_VARIABLES)))

    res = dg.materialize([hrrr_raw], resources=resources, instance=instance, partition_key=bad_pk,
                         run_config={"ops": {"hrrr_raw": {"config": sel}}}, raise_on_error=False)
    assert not res.success
    failure = [e for e in res.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "gzip cannot decompress the file" in failure.step_failure_data.error.message
    assert not store.exists(bad_key) and not store.exists(bad_key + ".gz")
    reason = store.get_json("quarantine/" + bad_key + ".gz.reason.json")
    assert reason["original_key"] == bad_key + ".gz" and "gzip" in reason["problem"]


def test_landing_sensor_takes_grib2_gz():
    assert partition_for_landed_key("raw/hrrr/20230101/hrrr.t05z.wrfsfcf02.grib2.gz") == ("2023-01-01T05", 2)
