"""Level types outside our catalogue's three (surface, height above ground, isobaric): the
cfgrib engine selects each by the name ecCodes gives the message's own level, so it returns the
values the ecCodes engine does. Real GFS messages: TMP above mean sea level (type 102), at the
tropopause (7), at maximum wind (6), in a pressure-from-ground layer (108), at a sigma level
(104) and on a potential-vorticity surface (109)."""

import pyproj  # noqa: F401  isort: skip  (before eccodes)

import eccodes
import numpy as np
import pytest

from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import _decode_cfgrib, _scan, decode_fields, scan_grib
from snoiq_assets.lib.hrrr.variables import Variable

LEVEL_TYPES = (102, 7, 6, 108, 104, 109)


@pytest.fixture(scope="module")
def gfs(sample_dir):
    return sample_dir / "noaa_grib2" / "gfs.t12z.pgrbf120.2p5deg.grib2"


def tmp_at(level_type: int, level: int) -> Variable:
    return Variable(f"tmp_{level_type}_{level}_k", "TMP", f"level type {level_type} value {level}", ".*",
                    0, 0, 0, level_type, level, "instant", "K")


def test_cfgrib_and_eccodes_agree_on_every_level_type_of_the_real_gfs(gfs):
    msgs = [m for m in scan_grib(gfs) if m.wgrib2_name == "TMP" and m.keys["typeOfFirstFixedSurface"] in LEVEL_TYPES]
    assert {m.keys["typeOfFirstFixedSurface"] for m in msgs} == set(LEVEL_TYPES)
    variables = [tmp_at(m.keys["typeOfFirstFixedSurface"], m.keys["level"]) for m in msgs]
    assert "tmp_102_1829_k" in {v.column for v in variables} and len(variables) == 9
    by_engine = {e: decode_fields(gfs, variables, 120, engine=e)[0] for e in ("cfgrib", "eccodes")}
    with open(gfs, "rb") as fh:
        raw = fh.read()
    for var, m in zip(variables, msgs):
        h = eccodes.codes_new_from_message(raw[m.offset:m.offset + m.length])
        try:   # below-ground points are missing (bitmap) at the fixed heights: NaN here, null in ours
            eccodes.codes_set(h, "missingValue", 1e30)
            ref = eccodes.codes_get_values(h)
            ref = np.where(ref == 1e30, np.nan, ref).astype(np.float32)
        finally:
            eccodes.codes_release(h)
        for engine, table in by_engine.items():
            got = table.column(var.column).to_numpy(zero_copy_only=False)
            assert np.array_equal(got, ref, equal_nan=True), (engine, var.column)
    amsl = by_engine["cfgrib"].column("tmp_102_1829_k")
    assert amsl.null_count == 1161   # below ground: Antarctica, Greenland, the Himalaya, the Andes, the Rockies
    assert 200 < float(np.nanmin(amsl.to_numpy(zero_copy_only=False))) < 320


def test_a_variable_cfgrib_does_not_return_is_an_error_naming_the_level_type(gfs):
    msgs, handles = _scan(gfs, "gfs", keep=lambda keys: keys["typeOfFirstFixedSurface"] == 102)
    try:
        m = next(m for m in msgs if m.ref in handles and m.wgrib2_name == "TMP")
        wrong_level = tmp_at(102, 1830)   # bound to the 1829 m message: cfgrib's level filter drops it
        with pytest.raises(HrrrDataError, match=r"requested variable tmp_102_1830_k is missing from the cfgrib "
                           r"dataset \(data variables \[\]; level type 102, cfgrib typeOfLevel 'heightAboveSea'\)"):
            _decode_cfgrib(handles, {wrong_level.column: m}, [wrong_level], "gfs")
    finally:
        for h in handles.values():
            eccodes.codes_release(h)
