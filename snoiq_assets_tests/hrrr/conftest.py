"""HRRR test fixtures: multi-variable GRIB2 on the real grid (built once per session)."""

import pyproj  # noqa: F401  isort: skip  (before eccodes, see the top-level conftest)

import datetime as dt
import shutil
from pathlib import Path

import pytest

from snoiq_assets.lib.hrrr import synth
from snoiq_assets.lib.hrrr.decode import ENGINES, idx_text, scan_grib
from snoiq_assets.lib.hrrr.synth import MessageSpec, demo_values
from snoiq_assets.lib.hrrr.variables import CATALOGUE

UTC = dt.timezone.utc
RUN = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def hrrr_hour(tmp_path_factory) -> Path:
    """Ten default variables, 2023-01-01T00 f00, on the real HRRR grid (+ its .idx)."""
    path = synth.write_hrrr_hour(tmp_path_factory.mktemp("hrrr") / "hrrr.t00z.wrfsfcf00.grib2", RUN, 0)
    Path(str(path) + ".idx").write_text(idx_text(scan_grib(path)))
    return path


@pytest.fixture(scope="session")
def noaa_like(tmp_path_factory, hrrr_hour) -> tuple[Path, str]:
    """A file laid out like the NOAA archive: unselected messages interleaved with the ten
    selected ones, the two real APCP messages, and a full .idx. Returns (path, idx text)."""
    msgs = synth.real_messages(hrrr_hour)               # ten ecCodes-written messages
    real = synth.real_messages(synth.REAL_SUBSET)       # two real APCP messages (f12, 2020)
    h = synth._template_handle()
    try:
        # unselected neighbours: TMP at 2 m is preceded by a POT 2 m; GUST sits between winds and PRATE
        pot = synth.encode_message(h, MessageSpec(0, 0, 2, 103, 2, "instant", demo_values("tmp_2m_k")), RUN, 0)
        gust = synth.encode_message(h, MessageSpec(0, 2, 22, 1, 0, "instant", demo_values("ugrd_10m_m_s")), RUN, 0)
    finally:
        import eccodes

        eccodes.codes_release(h)
    order = [pot, msgs[0], msgs[1], gust, *msgs[2:8], real[0], msgs[8], msgs[9], real[1]]
    path = tmp_path_factory.mktemp("noaa") / "hrrr.t00z.wrfsfcf00.grib2"
    path.write_bytes(b"".join(order))
    text = idx_text(scan_grib(path))
    return path, text


@pytest.fixture
def hrrr_copy(tmp_path, hrrr_hour) -> Path:
    dest = tmp_path / hrrr_hour.name
    shutil.copyfile(hrrr_hour, dest)
    return dest


__all__ = ["CATALOGUE"]


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """Every decode test runs on both engines: direct ecCodes in threads (default) and xarray + cfgrib."""
    return request.param


@pytest.fixture(scope="module")
def gfs(sample_dir) -> Path:
    """The real GFS 2.5 degree file (its 10 m U/V wind is one two-field message)."""
    return sample_dir / "noaa_grib2" / "gfs.t12z.pgrbf120.2p5deg.grib2"
