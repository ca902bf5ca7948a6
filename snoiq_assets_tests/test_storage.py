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


def test_spilled_parquet_is_stored_as_encoded_and_leaves_nothing_behind(store):
    """What hrrr_fields hands the IO manager for a long run: tables encoded to a spill folder as
    they are produced, then adopted into the store (a rename on the local folder, an upload on
    S3). Values bit-exact, schema metadata kept, the spill file gone, nothing listed but the
    object."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from snoiq_assets.lib.parquet import EncodedParquet, ParquetSpill

    rng = np.random.default_rng(7)
    tables = [pa.table({"t2m_k": pa.array(rng.normal(270, 8, 5000).astype("float32")),
                        "cell": pa.array(np.arange(5000, dtype="int32"))}).replace_schema_metadata({"lead": str(i)})
              for i in range(5)]
    with store.spill_folder() as folder:
        with ParquetSpill(folder, ahead=2) as spill:
            handles = [spill.add(t) for t in tables]
        assert all(isinstance(h, EncodedParquet) for h in handles)
        assert [h.num_rows for h in handles] == [5000] * 5
        assert handles[3].schema.metadata == {b"lead": b"3"}
        spilled = sorted(p.name for p in folder.iterdir())
        assert len(spilled) == 5
        for i, h in enumerate(handles):
            info = store.adopt_file(f"lake/spill_test/f{i:02d}.parquet", h.path)
            assert info.size > 0 and not h.path.exists()
        assert list(folder.iterdir()) == []
    assert not folder.exists()
    assert [o.key for o in store.list("lake/")] == [f"lake/spill_test/f{i:02d}.parquet" for i in range(5)]
    for i, t in enumerate(tables):
        with store.local_path(f"lake/spill_test/f{i:02d}.parquet") as path:
            back = pq.read_table(path)
        assert back.equals(t) and back.schema.metadata[b"lead"] == str(i).encode()
        assert np.array_equal(back["t2m_k"].to_numpy().view("uint32"), t["t2m_k"].to_numpy().view("uint32"))


def test_spill_threads_keep_each_table_with_its_handle(tmp_path):
    """Two encoder threads (the default): a small table added after a large one is finished
    first, yet every handle holds its own table's file, numbered in the order added, and the
    encoding time is summed over both threads."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from snoiq_assets.lib.parquet import ParquetSpill

    rng = np.random.default_rng(11)
    sizes = [400_000, 3, 5, 400_000, 7]
    tables = [pa.table({"v": pa.array(rng.normal(0, 1, n).astype("float32"))}).replace_schema_metadata({"i": str(i)})
              for i, n in enumerate(sizes)]
    (tmp_path / "spill").mkdir()
    with ParquetSpill(tmp_path / "spill", ahead=4) as spill:
        handles = [spill.add(t) for t in tables]
    assert [h.path.name for h in handles] == [f"{i:06d}.parquet" for i in range(1, 6)]
    for t, h in zip(tables, handles):
        back = pq.read_table(h.path)
        assert back.equals(t) and back.schema.metadata == t.schema.metadata and h.num_rows == t.num_rows
    assert spill.encode_s > 0


@pytest.mark.parametrize("sync", [True, False])
def test_a_syncing_spill_flushes_each_file_on_its_thread(tmp_path, monkeypatch, sync):
    """``sync=True`` (files to be stored by a rename): each finished file is flushed to disk by
    the spill's own thread, not by the caller; without it, nothing is flushed."""
    import os
    import threading

    import pyarrow as pa

    from snoiq_assets.lib.parquet import ParquetSpill

    flushed: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        flushed.append((os.readlink(f"/proc/self/fd/{fd}"), threading.current_thread().name))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    (tmp_path / "spill").mkdir()
    with ParquetSpill(tmp_path / "spill", sync=sync) as spill:
        handles = [spill.add(pa.table({"v": [float(i)]})) for i in range(3)]
    paths = [str(h.path) for h in handles]
    if not sync:
        assert flushed == []
        return
    assert sorted(p for p, _ in flushed) == sorted(paths)
    assert all(name.startswith("parquet-spill") for _, name in flushed)


def test_a_failed_spill_encoding_is_raised_from_its_handle(tmp_path):
    import pyarrow as pa

    from snoiq_assets.lib.parquet import ParquetSpill

    with ParquetSpill(tmp_path / "no-such-folder") as spill:
        handle = spill.add(pa.table({"v": [1.0]}))
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        handle.path


def test_local_spill_folder_is_on_the_lake_file_system_and_not_listed(tmp_path):
    import os

    from snoiq_assets.lib.storage import LocalStore

    store = LocalStore(tmp_path / "home")
    with store.spill_folder() as folder:
        (folder / "x.parquet").write_bytes(b"PAR1")
        assert os.stat(folder).st_dev == os.stat(store.root).st_dev
        assert list(store.list("")) == []
        ino = os.stat(folder / "x.parquet").st_ino
        store.adopt_file("lake/a/x.parquet", folder / "x.parquet")
        assert os.stat(store.root / "lake/a/x.parquet").st_ino == ino   # renamed, not copied
    assert [o.key for o in store.list("")] == ["lake/a/x.parquet"]


def test_reading_parquet_bytes_never_aborts_the_interpreter_at_exit(tmp_path):
    """pq.read_table over a Python-owned buffer (io.BytesIO, or pa.BufferReader(bytes)) lets an
    Arrow pool thread release that buffer after the read returns, which takes the GIL; during
    interpreter exit Python ends the thread inside a C++ destructor and the process aborts
    ("terminate called without an active exception", exit 134; 3 of 24 processes here under
    load, and 3 of 8 in a CI run of this very test when it read through pa.BufferReader(bytes)).
    lib/parquet.read_parquet_bytes (snapshots, experiment rows, the reproduce CLI) reads a copy
    in Arrow's own memory: every process exits 0, four at a time so they run under load."""
    import subprocess
    import sys

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    table = pa.table({f"c{i}": np.random.default_rng(i).random(400_000, dtype=np.float32) for i in range(8)})
    pq.write_table(table, path, compression="zstd")
    code = ("import sys; from pathlib import Path; import polars; from snoiq_assets.lib.parquet import read_parquet_bytes; "
            "t = read_parquet_bytes(Path(sys.argv[1]).read_bytes()); assert t.num_rows == 400_000")
    results = []
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        results += [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in results] == [0] * 12, [err[-300:] for rc, err in results if rc]
    from snoiq_assets.lib.parquet import read_parquet_bytes

    assert read_parquet_bytes(path.read_bytes()).equals(table)


def test_a_killed_runs_spill_folder_is_removed_a_day_later_and_a_live_one_kept(tmp_path):
    import os
    import time

    from snoiq_assets.lib.storage import LocalStore

    store = LocalStore(tmp_path / "home")
    base = store.root / LocalStore.SPILL_DIR
    stale, live = base / "run-killed", base / "run-live"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "000001.parquet").write_bytes(b"PAR1")
    day_ago = time.time() - LocalStore.STALE_SPILL_S - 60
    os.utime(stale, (day_ago, day_ago))
    os.utime(live, (time.time() - 3600, time.time() - 3600))   # an hour without a new lead: still kept
    with store.spill_folder() as folder:
        assert sorted(p.name for p in base.iterdir()) == sorted(["run-live", folder.name])
    assert sorted(p.name for p in base.iterdir()) == ["run-live"]
