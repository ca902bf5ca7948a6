"""The object-store layer: the same cases on the local folder and on the S3 test server."""

import datetime as dt
import json
import time

import pytest

from snoiq_assets.lib.keys import UnsafeNameError, check_key, safe_identifier
from snoiq_assets.lib.storage import ObjectNotFound


def test_put_get_stat_list(store):
    info = store.put("raw/observations/KPDX.csv", b"a,b\n1,2\n")
    assert info.size == 8 and info.etag
    assert info.last_modified.tzinfo is not None
    assert abs((dt.datetime.now(dt.timezone.utc) - info.last_modified).total_seconds()) < 120
    store.put("raw/observations/KSEA.csv", b"x")
    store.put("raw/other/KSEA.csv", b"y")
    assert store.get("raw/observations/KPDX.csv") == b"a,b\n1,2\n"
    keys = [o.key for o in store.list("raw/observations/")]
    assert keys == ["raw/observations/KPDX.csv", "raw/observations/KSEA.csv"]
    assert [o.key for o in store.list("raw/obs")] == keys  # a prefix need not end at a folder
    assert store.stat("raw/observations/missing.csv") is None
    with pytest.raises(ObjectNotFound, match="missing.csv"):
        store.get("raw/observations/missing.csv")


def test_ranged_get_matches_slices(store):
    data = bytes(range(256)) * 40
    store.put("raw/hrrr/x.grib2", data)
    assert store.get_range("raw/hrrr/x.grib2", 0, 9) == data[:10]
    assert store.get_range("raw/hrrr/x.grib2", 1000, 2047) == data[1000:2048]
    assert store.get_range("raw/hrrr/x.grib2", 10000) == data[10000:]


def test_overwrite_changes_version_token(store):
    first = store.put("raw/outcomes/loc.csv", b"v1")
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    second = store.put("raw/outcomes/loc.csv", b"v2-longer")
    assert first.version_token != second.version_token
    assert store.get("raw/outcomes/loc.csv") == b"v2-longer"


def test_failed_atomic_write_publishes_nothing(store):
    store.put("lake/a/p.parquet", b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with store.atomic_local_file("lake/a/p.parquet") as path:
            path.write_bytes(b"half of a new fi")
            raise RuntimeError("boom")
    assert store.get("lake/a/p.parquet") == b"old"
    assert [o.key for o in store.list("lake/")] == ["lake/a/p.parquet"]  # no temp file visible


def test_write_atomically_publishes_only_a_complete_parquet(store):
    """The lake's write path: a local temp file renamed, or on S3 one upload from memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from snoiq_assets.lib.lake import write_parquet

    table = pa.table({"v": pa.array([1.5, None, 3.25], pa.float32()), "s": ["a", "b", "a"]})
    size = store.write_atomically("lake/a/p.parquet", lambda sink: write_parquet(table, sink, "zstd"))
    assert store.stat("lake/a/p.parquet").size == size
    with store.local_path("lake/a/p.parquet") as path:
        assert pq.read_table(path).equals(table)

    def half_then_fail(sink):
        write_parquet(table, sink, "zstd")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.write_atomically("lake/a/q.parquet", half_then_fail)
    assert [o.key for o in store.list("lake/")] == ["lake/a/p.parquet"]  # nothing else visible


def test_quarantine_moves_file_and_writes_reason(store):
    store.put("raw/observations/BAD.csv", b"garbage")
    dest = store.quarantine("raw/observations/BAD.csv", "unknown format", line=1)
    assert dest == "quarantine/raw/observations/BAD.csv"
    assert store.stat("raw/observations/BAD.csv") is None
    assert store.get(dest) == b"garbage"
    reason = json.loads(store.get(dest + ".reason.json"))
    assert reason["reason"] == "unknown format" and reason["line"] == 1
    assert reason["original_key"] == "raw/observations/BAD.csv"


def test_local_path_gives_real_file(store):
    store.put("raw/hrrr/20201214/f.grib2", b"GRIB....7777")
    with store.local_path("raw/hrrr/20201214/f.grib2") as path:
        assert path.read_bytes() == b"GRIB....7777"


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "raw//x", "raw/a b", "raw/x;rm", "", "raw/./x", "a/..\\b"])
def test_unsafe_keys_refused(store, bad):
    with pytest.raises(UnsafeNameError):
        check_key(bad)
    with pytest.raises(UnsafeNameError):
        store.put(bad, b"x")


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "x y", "", "caf\u00e9", "a" * 201])
def test_safe_identifier_refuses(bad):
    with pytest.raises(UnsafeNameError, match="not a safe identifier"):
        safe_identifier(bad, "station id")


def test_safe_identifier_accepts():
    assert safe_identifier("USW00024233") == "USW00024233"
    assert safe_identifier("72698024229_KPDX-2.v1") == "72698024229_KPDX-2.v1"
