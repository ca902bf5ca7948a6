"""The synthetic HRRR writer the tests and the demo land hours with: a file written from the
per-process message cache is byte-for-byte what encoding its messages afresh gives."""

import pyproj  # noqa: F401  isort: skip  (before eccodes)

import datetime as dt
import shutil

import eccodes

from snoiq_assets.lib.hrrr.synth import CATALOGUE, REAL_SUBSET, MessageSpec, demo_values, write_grib, write_hrrr_hour

UTC = dt.timezone.utc
EST = dt.timezone(dt.timedelta(hours=-5))


def _fresh(path, run_time, forecast_hour, columns, template=REAL_SUBSET, packing=None):
    """The uncached way: every message encoded now."""
    specs = [MessageSpec.for_variable(CATALOGUE[c], demo_values(c, run_time.hour + forecast_hour)) for c in columns]
    return write_grib(path, specs, run_time, forecast_hour, template=template, packing=packing).read_bytes()


def _keys(path):
    with open(path, "rb") as fh:
        out = []
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            out.append((eccodes.codes_get(h, "dataDate"), eccodes.codes_get(h, "dataTime"), eccodes.codes_get(h, "shortName")))
            eccodes.codes_release(h)
    return out


def test_cached_messages_write_the_same_bytes_as_encoding_afresh(tmp_path):
    cases = [(dt.datetime(2023, 1, 1, 5, tzinfo=UTC), 3, ["tmp_2m_k", "apcp_kg_m2", "asnow_m"], None),
             (dt.datetime(2023, 1, 1, 5, tzinfo=UTC), 7, ["tmp_2m_k", "weasd_kg_m2"], "grid_ccsds"),
             (dt.datetime(2016, 2, 1, 6), 0, ["snod_m"], None)]
    for n, (run_time, fh, columns, packing) in enumerate(cases):
        expected = _fresh(tmp_path / f"fresh{n}.grib2", run_time, fh, columns, packing=packing)
        for attempt in range(2):   # a miss, then a hit
            got = write_hrrr_hour(tmp_path / f"sub{attempt}" / f"cached{n}.grib2", run_time, fh, columns=columns,
                                  packing=packing).read_bytes()
            assert got == expected, (n, attempt)


def test_hours_sharing_packed_values_are_redated_exactly(tmp_path):
    """Values depend on the valid hour of day only, so the hour of the next day (and 24 hours
    later in a cycle) reuses the packed values with the new date: still byte-for-byte a fresh
    encode there, accumulations' end-of-interval keys included, in both packings."""
    columns = ["tmp_2m_k", "apcp_kg_m2", "asnow_m", "csnow"]
    for packing in (None, "grid_ccsds"):
        for n, (run_time, fh) in enumerate([(dt.datetime(2023, 3, 9, 5, tzinfo=UTC), 2),
                                            (dt.datetime(2023, 3, 10, 5, tzinfo=UTC), 2),     # next day
                                            (dt.datetime(2023, 2, 28, 5, tzinfo=UTC), 2),     # across a month end
                                            (dt.datetime(2024, 2, 29, 5, tzinfo=UTC), 2)]):   # a leap day
            got = write_hrrr_hour(tmp_path / f"{packing}{n}.grib2", run_time, fh, columns=columns, packing=packing)
            expected = _fresh(tmp_path / f"fresh{packing}{n}.grib2", run_time, fh, columns, packing=packing)
            assert got.read_bytes() == expected, (packing, run_time, fh)
            assert {k[:2] for k in _keys(got)} == {(int(run_time.strftime("%Y%m%d")), 500)}


def test_the_same_instant_in_another_zone_is_written_as_given(tmp_path):
    """As before the cache: the run time's own wall clock goes into the message, so 00 UTC and
    19 EST the day before (one instant) are different files."""
    utc = write_hrrr_hour(tmp_path / "utc.grib2", dt.datetime(2023, 1, 1, 0, tzinfo=UTC), 0, columns=["tmp_2m_k"])
    est = write_hrrr_hour(tmp_path / "est.grib2", dt.datetime(2022, 12, 31, 19, tzinfo=EST), 0, columns=["tmp_2m_k"])
    assert _keys(utc) == [(20230101, 0, "2t")] and _keys(est) == [(20221231, 1900, "2t")]


def test_a_rewritten_template_is_not_served_from_the_cache(tmp_path):
    template = tmp_path / "template.grib2"
    shutil.copy(REAL_SUBSET, template)
    run_time = dt.datetime(2023, 1, 2, 0, tzinfo=UTC)
    first = write_hrrr_hour(tmp_path / "a.grib2", run_time, 0, columns=["tmp_2m_k"], template=template).read_bytes()
    # the same grid, but CCSDS-packed: a different template file at the same path
    template.write_bytes(_fresh(tmp_path / "ccsds.grib2", run_time, 0, ["apcp_kg_m2"], packing="grid_ccsds"))
    second = write_hrrr_hour(tmp_path / "b.grib2", run_time, 0, columns=["tmp_2m_k"], template=template).read_bytes()
    assert second != first
    assert second == _fresh(tmp_path / "c.grib2", run_time, 0, ["tmp_2m_k"], template=template)


def test_fields_packed_on_threads_write_the_same_bytes(tmp_path, monkeypatch):
    """An hour's fields not yet packed in the process are packed on threads (however many CPUs
    this machine has): the file is the sequential encode's, byte for byte."""
    from snoiq_assets.lib.hrrr import synth

    run_time, columns = dt.datetime(2021, 11, 30, 9, tzinfo=UTC), ["tmp_2m_k", "dpt_2m_k", "snod_m", "apcp_kg_m2"]
    expected = _fresh(tmp_path / "fresh.grib2", run_time, 1, columns)
    pools = []
    real_pool = synth.ThreadPoolExecutor
    monkeypatch.setattr(synth, "available_cpus", lambda: 4)
    monkeypatch.setattr(synth, "ThreadPoolExecutor", lambda **kw: pools.append(kw) or real_pool(**kw))
    synth._packed_message.cache_clear()
    got = write_hrrr_hour(tmp_path / "threads.grib2", run_time, 1, columns=columns).read_bytes()
    assert pools and pools[0]["max_workers"] == 4
    assert got == expected


def test_packed_fields_are_shared_between_processes_through_the_cache_folder(tmp_path, monkeypatch):
    """With CACHE_ENV set, a field packed once is read back by the next process (here: the
    memory cache cleared) instead of packed again, byte for byte; a torn or foreign file in the
    folder is packed anew and replaced; a folder that cannot be written only costs the packing."""
    from snoiq_assets.lib.hrrr import synth

    run_time, columns = dt.datetime(2022, 12, 5, 4, tzinfo=UTC), ["tmp_2m_k", "apcp_kg_m2"]
    expected = _fresh(tmp_path / "fresh.grib2", run_time, 2, columns, packing="grid_ccsds")
    folder = tmp_path / "packed"
    monkeypatch.setenv(synth.CACHE_ENV, str(folder))
    packed = []
    real_encode = synth.encode_message
    monkeypatch.setattr(synth, "encode_message", lambda *a, **kw: packed.append(a[1]) or real_encode(*a, **kw))

    def write(name):
        synth._packed_message.cache_clear()   # a new process: nothing packed in memory
        return write_hrrr_hour(tmp_path / name, run_time, 2, columns=columns, packing="grid_ccsds").read_bytes()

    assert write("first.grib2") == expected and len(packed) == 2
    files = sorted(folder.glob("*.grib2"))
    assert len(files) == 2 and not list(folder.glob(".*"))   # no temporary left behind
    assert write("second.grib2") == expected and len(packed) == 2    # both read from the folder
    files[0].write_bytes(files[0].read_bytes()[:-100])                # torn
    files[1].write_bytes(b"GRIB" + b"\0" * 60)                         # not a message
    assert write("third.grib2") == expected and len(packed) == 4
    assert write("fourth.grib2") == expected and len(packed) == 4     # replaced with whole messages
    # another packing is another message
    synth._packed_message.cache_clear()
    write_hrrr_hour(tmp_path / "complex.grib2", run_time, 2, columns=["tmp_2m_k"])
    assert len(packed) == 5 and len(list(folder.glob("*.grib2"))) == 3
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(synth.CACHE_ENV, str(blocked / "packed"))
    assert write("unwritable.grib2") == expected and len(packed) == 7
    synth._packed_message.cache_clear()
