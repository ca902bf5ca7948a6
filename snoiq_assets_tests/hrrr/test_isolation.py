"""Decoding in a child process: a native ecCodes crash fails one file, never the caller; and
physical plausibility catches the corruptions that decode "successfully"."""

import pyproj  # noqa: F401  isort: skip

import os

import numpy as np
import pytest

from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import DEFAULT_ENGINE, decode_fields, decode_threads, scan_framing
from snoiq_assets.lib.hrrr.isolation import DecoderProcess
from snoiq_assets.lib.hrrr.plausibility import check_plausible, problems
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve
from snoiq_assets_tests.hrrr.corrupt import corpus, crashing, flipped

APCP = resolve(["apcp_kg_m2"])
REAL = "hrrr/subset_20201214_hrrr.t00z.wrfsfcf12.grib2"


@pytest.mark.parametrize("engine", ["eccodes", "cfgrib"])
def test_ecCodes_abort_becomes_an_error_and_the_worker_recovers(tmp_path, sample_dir, engine):
    real = sample_dir / REAL
    bad = tmp_path / "bad.grib2"
    bad.write_bytes(crashing(real.read_bytes()))
    with DecoderProcess() as decoder:
        with pytest.raises(HrrrDataError) as err:
            decoder.decode_fields(bad, APCP, 12, engine=engine, name="raw/hrrr/20201214/bad.grib2")
        text = str(err.value)
        assert text.startswith("raw/hrrr/20201214/bad.grib2: ecCodes crashed while decoding the file "
                               "(decoder process killed by SIGABRT): ecCodes assertion failed: `e == 0' in ")
        assert "grib_bits_any_endian.cc" in text
        # the same decoder goes on with the next file, in a fresh child, with exact values
        table, stats = decoder.decode_fields(real, APCP, 12, engine=engine)
        assert decoder.starts == 2
    ref, ref_stats = decode_fields(real, APCP, 12, engine=engine)
    assert table.equals(ref) and table.schema.metadata == ref.schema.metadata and stats == ref_stats
    assert stats["apcp_kg_m2"]["max"] == pytest.approx(135.36, abs=1e-3)


def test_a_crash_among_parallel_decodes_fails_the_file_and_the_worker_recovers(tmp_path, hrrr_hour):
    """The default engine decodes the ten messages in parallel threads: one message that makes
    ecCodes abort (the seventh) still ends as the file's error, and the next file decodes
    with the values of the xarray + cfgrib engine."""
    data = hrrr_hour.read_bytes()
    seventh = scan_framing(data, "hour")[6][0]
    bad = tmp_path / "bad.grib2"
    bad.write_bytes(crashing(data, seventh))
    variables = resolve(DEFAULT_VARIABLES)
    assert decode_threads(len(variables)) == min(len(variables), len(os.sched_getaffinity(0)))   # Linux CI
    with DecoderProcess() as decoder:
        with pytest.raises(HrrrDataError, match=r"^raw/bad\.grib2: ecCodes crashed while decoding the file "
                           r"\(decoder process killed by SIGABRT\): ecCodes assertion failed"):
            decoder.decode_fields(bad, variables, 0, name="raw/bad.grib2")
        table, stats = decoder.decode_fields(hrrr_hour, variables, 0)
        assert decoder.starts == 2
    assert table.schema.metadata[b"decode_engine"] == DEFAULT_ENGINE.encode() == b"eccodes"
    ref, ref_stats = decode_fields(hrrr_hour, variables, 0, engine="cfgrib")
    assert table.select(DEFAULT_VARIABLES).equals(ref.select(DEFAULT_VARIABLES)) and stats == ref_stats


def test_data_errors_cross_the_process_boundary_unchanged(tmp_path, sample_dir):
    real = sample_dir / REAL
    with DecoderProcess() as decoder, pytest.raises(HrrrDataError) as err:
        decoder.decode_fields(real, APCP, 6, engine="eccodes", name="x.grib2")
    assert str(err.value) == "x.grib2, message 1: apcp_kg_m2 is for the wrong forecast hour; expected f06, found f12"
    assert err.value.message_number == 1 and err.value.expected == "f06"


def test_plausibility_bounds_on_real_and_corrupt_values(tmp_path, sample_dir):
    real = sample_dir / REAL
    table, stats = decode_fields(real, APCP, 12, engine="eccodes")
    assert problems(stats, table.num_rows, 12) == []
    # the reference value's exponent flipped: -1.7e36 in every cell
    bad = tmp_path / "scale.grib2"
    bad.write_bytes(flipped(real.read_bytes(), 5, 11))
    table, stats = decode_fields(bad, APCP, 12, engine="eccodes")
    assert stats["apcp_kg_m2"]["max"] == pytest.approx(-1.70141e36, rel=1e-4)
    with pytest.raises(HrrrDataError, match=r"^bad: implausible decoded values \(corrupt GRIB or wrong units\): "
                       r"apcp_kg_m2: values -1\.70141e\+36 \.\. -1\.70141e\+36 outside the plausible "
                       r"\[-0\.001, 4800\] for a 12 h accumulation"):
        check_plausible(stats, table.num_rows, 12, "bad")
    # the bitmap indicator flipped: 60 % of the cells null
    bad.write_bytes(flipped(real.read_bytes(), 6, 5))
    table, stats = decode_fields(bad, APCP, 12, engine="eccodes")
    assert problems(stats, table.num_rows, 12) == [
        "apcp_kg_m2: 1141627 of 1905141 cells are null (59.9%; at most 1% allowed)"]
    # bounds of instantaneous fields do not scale; infinities are refused
    assert problems({"tmp_2m_k": {"min": 150.0, "max": 300.0, "null_count": 0}}, 10, 12) == [
        "tmp_2m_k: values 150 .. 300 outside the plausible [170, 340]"]
    assert problems({"ugrd_10m_m_s": {"min": 0.0, "max": float("inf"), "null_count": 0}}, 10, 0) == [
        "ugrd_10m_m_s: non-finite values (min 0.0, max inf)"]


@pytest.mark.slow
def test_corrupt_corpus_never_kills_the_caller(tmp_path, sample_dir):
    """Every generated corruption of the real file ends as an error naming the file, or as
    values that pass plausibility; none takes the calling process down."""
    real = sample_dir / REAL
    ref, _ = decode_fields(real, APCP, 12, engine="eccodes")
    outcome: dict[str, str] = {}
    with DecoderProcess() as decoder:
        for case, data in corpus(real).items():
            path = tmp_path / f"{case}.grib2"
            path.write_bytes(data)
            try:
                table, stats = decoder.decode_fields(path, APCP, 12, engine="eccodes", name=case)
                check_plausible(stats, table.num_rows, 12, case)
                outcome[case] = "same values" if table.column(0).equals(ref.column(0)) else "plausible values"
            except HrrrDataError as exc:
                assert str(exc).startswith(case), exc
                outcome[case] = "crash" if "crashed" in str(exc) else (
                    "implausible" if "implausible" in str(exc) else "error")
    assert len(outcome) >= 60
    assert outcome["flip_section5_octet36"] == "crash"
    assert outcome["flip_section5_octet12"] == outcome["flip_section6_octet6"] == "implausible"
    assert outcome["flip_section7_octet6"] == outcome["flip_section7_octet10"] == "implausible"
    assert all(v == "error" for k, v in outcome.items() if k.startswith("truncated"))
    assert all(outcome[k] == "error" for k in ("empty", "text", "png", "grib1", "flip_section0_octet1",
                                                "flip_section8_octet1"))
    counts = {k: list(outcome.values()).count(k) for k in sorted(set(outcome.values()))}
    assert counts["crash"] >= 1 and counts["implausible"] >= 5, counts
    # a flip in a byte ecCodes ignores (or in the middle of the packed data) can stay unnoticed:
    # GRIB2 has no checksum; the values are then plausible, and the test only checks that
    assert set(counts) <= {"crash", "implausible", "error", "same values", "plausible values"}
    print("corrupt GRIB corpus:", counts)


def _memory_files(pid: int) -> list[str]:
    fds = f"/proc/{pid}/fd"
    return [t for t in (os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds)) if "snoiq-decoded-table" in t]


def test_shared_decoder_serves_consecutive_steps_and_survives_a_crash(tmp_path, sample_dir):
    """What hrrr_fields uses: one child for every step of a process (no interpreter start and
    imports per step); between steps it holds no decoded table; a file that crashes a used child
    is blamed only after it crashes a fresh one too; the next step gets a fresh child with
    exact values."""
    from snoiq_assets.lib.hrrr.isolation import shared_decoder

    real = sample_dir / REAL
    ref, _ = decode_fields(real, APCP, 12, engine="eccodes")
    with shared_decoder() as first:
        table, _ = first.decode_fields(real, APCP, 12, engine="eccodes")
        pid = first._proc.pid
        assert len(_memory_files(pid)) == 1   # the table handed back, mapped here
    assert table.equals(ref)
    assert _memory_files(pid) == []           # released between steps
    with shared_decoder() as second:
        assert second is first and second._proc.pid == pid
        starts = second.starts
        bad = tmp_path / "bad.grib2"
        bad.write_bytes(crashing(real.read_bytes()))
        with pytest.raises(HrrrDataError, match="ecCodes crashed while decoding the file"):
            second.decode_fields(bad, APCP, 12, engine="eccodes", name="raw/hrrr/bad.grib2")
        # the child had decoded a file before: the crash is confirmed in a fresh child first
        assert second.starts == starts + 1
    with shared_decoder() as third:
        table, _ = third.decode_fields(real, APCP, 12, engine="eccodes")
        assert third.starts == starts + 2 and third._proc.pid != pid
    assert table.equals(ref)
