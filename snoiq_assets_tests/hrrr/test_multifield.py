"""GRIB2 messages holding several fields (NCEP packs 10 m U and V wind into one message, listed
as ``N.1`` and ``N.2`` in its .idx): every field is scanned, listed, decoded by both engines and
fetched by byte range. On the real GFS file (36 such messages) and on a two-field message
written with ecCodes' multi-field API on the HRRR grid."""

import datetime as dt
import json

import boto3
import dagster as dg
import eccodes
import numpy as np
import pyarrow.parquet as pq
import pytest

from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw
from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import ENGINES, decode_fields, idx_text, scan_framing, scan_grib
from snoiq_assets.lib.hrrr.fetch import S3Source, fetch_subset, hrrr_key
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.hrrr.inventory import parse_idx
from snoiq_assets.lib.hrrr.synth import real_messages
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve, search_pattern
from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets_tests.helpers import STATION_INDEX_SPEC

UTC = dt.timezone.utc
RUN = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)
PK = "2023-01-01T00"
WIND = ["ugrd_10m_m_s", "vgrd_10m_m_s"]
GFS_UV_OFFSET = 2518978   # the real GFS file's 10 m U/V message


def multi_field_reference(path, short_name: str) -> np.ndarray:
    """ecCodes' own reading of a multi-field file (multi-field support on): the values of the
    field named ``short_name``."""
    eccodes.codes_grib_multi_support_on()
    try:
        with open(path, "rb") as fh:
            while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
                try:
                    if eccodes.codes_get(h, "shortName") == short_name:
                        return eccodes.codes_get_values(h)
                finally:
                    eccodes.codes_release(h)
    finally:
        eccodes.codes_grib_multi_support_off()
    raise AssertionError(f"{short_name} not in {path}")


def write_uv_packed(hour_file, dest):
    """The ten-variable hour with U and V (messages 9 and 10) packed into one message, written
    with ecCodes' multi-field API (sections 4-7 of V appended after U's)."""
    msgs = real_messages(hour_file)
    handles = [eccodes.codes_new_from_message(m) for m in msgs[8:10]]
    multi = eccodes.codes_grib_multi_new()
    try:
        for h in handles:
            eccodes.codes_grib_multi_append(h, 4, multi)
        packed = dest.with_suffix(".uv")
        with open(packed, "wb") as fh:
            eccodes.codes_grib_multi_write(multi, fh)
    finally:
        eccodes.codes_grib_multi_release(multi)
        for h in handles:
            eccodes.codes_release(h)
    dest.write_bytes(b"".join(msgs[:8]) + packed.read_bytes())
    return dest


@pytest.fixture(scope="module")
def uv_packed(tmp_path_factory, hrrr_hour):
    return write_uv_packed(hrrr_hour, tmp_path_factory.mktemp("uv") / "hrrr.t00z.wrfsfcf00.grib2")


def test_real_gfs_every_field_scanned_and_listed(gfs):
    msgs = scan_grib(gfs)
    assert len(scan_framing(gfs.read_bytes(), str(gfs))) == 307
    assert len(msgs) == 343 and len({m.offset for m in msgs}) == 307   # 36 messages hold U and V
    uv = [m for m in msgs if m.offset == GFS_UV_OFFSET]
    assert [(m.label, m.wgrib2_name, m.wgrib2_level) for m in uv] == [
        ("196.1", "UGRD", "10 m above ground"), ("196.2", "VGRD", "10 m above ground")]
    lines = [line for line in idx_text(msgs).splitlines() if line.startswith("196.")]
    assert lines == [f"196.1:{GFS_UV_OFFSET}:d=2011011012:UGRD:10 m above ground:120 hour fcst:",
                            f"196.2:{GFS_UV_OFFSET}:d=2011011012:VGRD:10 m above ground:120 hour fcst:"]
    # the ranges of 196.1 and 196.2 are the same message
    e1, e2 = (e for e in parse_idx(idx_text(msgs), file_size=gfs.stat().st_size) if e.number == 196)
    assert (e1.start, e1.end) == (e2.start, e2.end) == (GFS_UV_OFFSET, GFS_UV_OFFSET + uv[0].length - 1)


def test_real_gfs_uv_decode_both_fields(gfs, engine):
    table, stats = decode_fields(gfs, resolve(WIND), 120, idx=idx_text(scan_grib(gfs)), engine=engine)
    for col, short in zip(WIND, ("10u", "10v")):
        ref = multi_field_reference(gfs, short).astype(np.float32)
        got = table.column(col).to_numpy()
        assert got.shape == (144 * 73,) and np.array_equal(got, ref), col
        assert stats[col]["max"] == pytest.approx(float(ref.max()))
    sources = json.loads(table.schema.metadata[b"messages"])
    assert (sources["ugrd_10m_m_s"]["message"], sources["ugrd_10m_m_s"]["field"]) == (196, 1)
    assert (sources["vgrd_10m_m_s"]["message"], sources["vgrd_10m_m_s"]["field"]) == (196, 2)
    assert sources["vgrd_10m_m_s"]["offset"] == GFS_UV_OFFSET
    assert float(np.abs(table.column("ugrd_10m_m_s").to_numpy() - table.column("vgrd_10m_m_s").to_numpy()).max()) > 1
    # from an earlier scan (the fields are re-read at their message's offset)
    again, _ = decode_fields(gfs, resolve(WIND), 120, messages=scan_grib(gfs), engine=engine)
    assert again.select(WIND).equals(table.select(WIND))


def test_idx_must_list_every_field(gfs):
    msgs = scan_grib(gfs)
    text = idx_text(msgs)
    no_v = "".join(line + "\n" for line in text.splitlines() if not line.startswith("196.2:"))
    with pytest.raises(HrrrDataError, match=r"message 196: fields \['196.2'\] are not listed in the .idx"):
        decode_fields(gfs, resolve(WIND), 120, idx=no_v)
    third = text.replace("196.2:", "196.3:")
    with pytest.raises(HrrrDataError, match=r".idx entry 196.3 names field 3 .*expected at most 2 field"):
        decode_fields(gfs, resolve(WIND), 120, idx=third)
    swapped = text.replace("196.1:", "196.X:").replace("196.2:", "196.1:").replace("196.X:", "196.2:")
    with pytest.raises(HrrrDataError, match=r"\.idx entry 196\.2 names the wrong variable.*expected UGRD \(from the \.idx\), found VGRD"):
        decode_fields(gfs, resolve(WIND), 120, idx=swapped)


def test_written_two_field_message(uv_packed, hrrr_hour, engine):
    msgs = scan_grib(uv_packed)
    assert len(msgs) == 10 and [m.label for m in msgs[8:]] == ["9.1", "9.2"]
    table, _ = decode_fields(uv_packed, resolve(DEFAULT_VARIABLES), 0, idx=idx_text(msgs), engine=engine)
    single, _ = decode_fields(hrrr_hour, resolve(DEFAULT_VARIABLES), 0, engine="eccodes")
    for col in DEFAULT_VARIABLES:
        assert table.column(col).equals(single.column(col)), col
    assert np.array_equal(table.column("vgrd_10m_m_s").to_numpy(),
                          multi_field_reference(uv_packed, "10v").astype(np.float32))


def _sections(data: bytes, offset: int, length: int) -> list[tuple[int, int, int]]:
    """(position, size, number) of each section of the message at ``offset``."""
    out, pos = [], offset + 16
    while pos < offset + length - 4:
        size = int.from_bytes(data[pos:pos + 4], "big")
        out.append((pos, size, data[pos + 4]))
        pos += size
    return out


def test_bitmap_of_an_earlier_field_applies(tmp_path, hrrr_hour, engine):
    """Field 2's bitmap indicator 254 ("the bitmap given earlier in this message applies") takes
    field 1's bitmap; without an earlier bitmap it is an error."""
    msgs = real_messages(hrrr_hour)
    handles = [eccodes.codes_new_from_message(m) for m in msgs[8:10]]
    multi = eccodes.codes_grib_multi_new()
    try:
        for h in handles:   # the first 1000 points missing in U and V: one bitmap for both
            values = eccodes.codes_get_values(h)
            values[:1000] = 9999.0
            eccodes.codes_set(h, "bitmapPresent", 1)
            eccodes.codes_set(h, "missingValue", 9999.0)
            eccodes.codes_set_values(h, values)
            eccodes.codes_grib_multi_append(h, 4, multi)
        v_alone = eccodes.codes_get_message(handles[1])
        with open(tmp_path / "uv.grib2", "wb") as fh:
            eccodes.codes_grib_multi_write(multi, fh)
    finally:
        eccodes.codes_grib_multi_release(multi)
        for h in handles:
            eccodes.codes_release(h)
    data = (tmp_path / "uv.grib2").read_bytes()
    sixes = [(pos, size) for pos, size, num in _sections(data, 0, len(data)) if num == 6]
    assert len(sixes) == 2 and data[sixes[0][0] + 5] == data[sixes[1][0] + 5] == 0
    pos, size = sixes[1]
    body = data[16:pos] + b"\x00\x00\x00\x06\x06\xfe" + data[pos + size:len(data) - 4]
    shared = data[:8] + (16 + len(body) + 4).to_bytes(8, "big") + body + b"7777"
    (tmp_path / "shared.grib2").write_bytes(shared)
    (tmp_path / "v.grib2").write_bytes(v_alone)

    table, stats = decode_fields(tmp_path / "shared.grib2", resolve(WIND), 0, engine=engine)
    alone, _ = decode_fields(tmp_path / "v.grib2", resolve(["vgrd_10m_m_s"]), 0, engine="eccodes")
    assert stats["vgrd_10m_m_s"]["null_count"] == stats["ugrd_10m_m_s"]["null_count"] == 1000
    assert table.column("vgrd_10m_m_s").equals(alone.column("vgrd_10m_m_s"))
    ref = multi_field_reference(tmp_path / "shared.grib2", "10v")
    assert np.array_equal(table.column("vgrd_10m_m_s").to_numpy(zero_copy_only=False)[1000:],
                          ref[1000:].astype(np.float32))

    no_bitmap = bytearray(shared)   # field 1 without a bitmap (indicator 255): nothing to refer to
    no_bitmap[sixes[0][0] + 5] = 255
    (tmp_path / "bad.grib2").write_bytes(bytes(no_bitmap))
    with pytest.raises(HrrrDataError, match="message 1: corrupt: field 2 refers to an earlier bitmap"):
        scan_grib(tmp_path / "bad.grib2")


def test_landed_multi_field_file_through_the_assets(store, resources, instance, uv_packed, hrrr_hour):
    key = landing_key(RUN, 0)
    store.put_file(key, uv_packed)
    sel = {"leads": [0], "variables": list(DEFAULT_VARIABLES)}
    assert dg.materialize([hrrr_raw], resources=resources, instance=instance, partition_key=PK,
                          run_config={"ops": {"hrrr_raw": {"config": sel}}}).success
    written = store.get(key + ".idx").decode().splitlines()
    assert [line.split(":")[0] for line in written] == ["1", "2", "3", "4", "5", "6", "7", "8", "9.1", "9.2"]
    assert written[8].split(":")[3:5] == ["UGRD", "10 m above ground"]
    assert written[9].split(":")[3:5] == ["VGRD", "10 m above ground"]
    assert written[8].split(":")[1] == written[9].split(":")[1]
    assert dg.materialize([hrrr_grid], resources=resources, instance=instance).success
    single, _ = decode_fields(hrrr_hour, resolve(WIND), 0, engine="eccodes")
    for engine in ENGINES:
        assert dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], resources=resources, instance=instance, partition_key=PK,
                              run_config={"ops": {"hrrr_fields": {"config": {**sel, "engine": engine}}}}).success
        with store.local_path(lead_object_key(dg.AssetKey("hrrr_fields"), PK, 0)) as p:
            table = pq.read_table(p)
        for col in WIND:
            assert table.column(col).equals(single.column(col)), (engine, col)


def test_byte_range_fetch_of_one_field_brings_its_message(tmp_path, seaweed, uv_packed, hrrr_hour, engine):
    bucket = seaweed.create_bucket()
    client = boto3.client("s3", endpoint_url=seaweed.endpoint, aws_access_key_id=seaweed.access_key,
                          aws_secret_access_key=seaweed.secret_key, region_name="us-east-1")
    remote = hrrr_key(RUN, 0)
    client.upload_file(str(uv_packed), bucket, remote)
    client.put_object(Bucket=bucket, Key=remote + ".idx", Body=idx_text(scan_grib(uv_packed)).encode())
    m = scan_grib(uv_packed)[9]
    result = fetch_subset([S3Source("seaweed", bucket, client)], remote,
                          search_pattern(resolve(["vgrd_10m_m_s"]), 0), tmp_path / "v.grib2")
    assert result.range_headers == [f"bytes={m.offset}-"]
    assert (tmp_path / "v.grib2").read_bytes() == uv_packed.read_bytes()[m.offset:]
    assert [line.split(":")[:2] for line in result.idx_text.splitlines()] == [["1.1", "0"], ["1.2", "0"]]
    table, _ = decode_fields(tmp_path / "v.grib2", resolve(["vgrd_10m_m_s"]), 0, idx=result.idx_text, engine=engine)
    single, _ = decode_fields(hrrr_hour, resolve(["vgrd_10m_m_s"]), 0, engine="eccodes")
    assert table.column("vgrd_10m_m_s").equals(single.column("vgrd_10m_m_s"))
