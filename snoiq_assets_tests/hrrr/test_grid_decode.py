import json

import eccodes
import numpy as np
import pyproj
import pytest

from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import (
    _decode_cfgrib,
    _scan,
    decode_fields,
    idx_text,
    scan_framing,
    scan_grib,
)
from snoiq_assets.lib.hrrr.grid import grid_from_grib, grid_from_table, pyproj_crs
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve


@pytest.fixture(scope="module")
def hrrr_real(sample_dir):
    return sample_dir / "hrrr" / "subset_20201214_hrrr.t00z.wrfsfcf12.grib2"


@pytest.fixture(scope="module")
def hrrr_grid_def(hrrr_real):
    return grid_from_grib(hrrr_real)


def ec_values(path, number):
    """Direct ecCodes decode of message ``number`` (1-based)."""
    with open(path, "rb") as fh:
        for _ in range(number):
            h = eccodes.codes_grib_new_from_file(fh)
            if _ < number - 1:
                eccodes.codes_release(h)
    try:
        return eccodes.codes_get_values(h)
    finally:
        eccodes.codes_release(h)


def test_hrrr_grid_lambert(hrrr_grid_def):
    g = hrrr_grid_def
    assert g.shape == (1059, 1799) and g.lats.shape == (1059, 1799) and g.lats.dtype == np.float64
    p = g.projection
    assert p["proj"] == "lcc" and p["lat_1"] == p["lat_2"] == 38.5 and p["lon_0"] == -97.5 and p["R"] == 6371229
    assert g.lats[0, 0] == pytest.approx(21.138123) and g.lons[0, 0] == pytest.approx(237.280472 - 360)
    assert g.lons.min() >= -180 and g.lons.max() < 180
    # Independent check: the projected grid is a regular 3 km lattice in pyproj's LCC.
    x, y = pyproj.Transformer.from_crs("EPSG:4326", pyproj_crs(p), always_xy=True).transform(g.lons, g.lats)
    assert np.allclose(np.diff(x, axis=1), 3000.0, atol=0.5)
    assert np.allclose(np.diff(y, axis=0), 3000.0, atol=0.5)
    assert len(g.grid_id) == 64


@pytest.mark.parametrize("name", ["subset_20201214_hrrr.t00z.wrfsfcf12.grib2", "radarcheck_hrrr_20260228_00z_f01_t2m.grib2"])
def test_grid_coordinates_are_ecCodes_own(sample_dir, gfs, name):
    """The grid's coordinates come from one pass of ecCodes' geo-iterator (latLonValues): the
    same doubles its "latitudes" and "longitudes" keys give, on the bundled subset, the real
    full-CONUS HRRR field and the real GFS grid, contiguous and in the grid's shape."""
    for path in (sample_dir / "hrrr" / name, gfs):
        g = grid_from_grib(path)
        with open(path, "rb") as fh:
            h = eccodes.codes_grib_new_from_file(fh)
        try:
            lats, lons = (eccodes.codes_get_double_array(h, key) for key in ("latitudes", "longitudes"))
        finally:
            eccodes.codes_release(h)
        assert np.array_equal(g.lats.ravel(), lats)
        assert np.array_equal(g.lons.ravel(), ((lons + 180.0) % 360.0) - 180.0)
        assert g.lats.flags.c_contiguous and g.lons.flags.c_contiguous and g.lats.shape == g.shape


def test_gfs_grid_latlon(gfs, hrrr_grid_def):
    g = grid_from_grib(gfs)
    assert g.shape == (73, 144) and g.projection["proj"] == "longlat"
    assert g.lats[0, 0] == 90 and g.lats[-1, 0] == -90 and g.lons[0, 1] == 2.5
    assert g.grid_id != hrrr_grid_def.grid_id
    assert grid_from_table(g.to_table()).grid_id == g.grid_id


def test_grid_table_roundtrip(hrrr_grid_def):
    t = hrrr_grid_def.to_table()
    assert t.schema.names == ["y", "x", "latitude", "longitude"]
    assert str(t.schema.field("y").type) == "int32" and str(t.schema.field("latitude").type) == "double"
    assert t.column("x")[1799].as_py() == 0 and t.column("y")[1799].as_py() == 1
    back = grid_from_table(t)
    assert back.grid_id == hrrr_grid_def.grid_id and back.shape == (1059, 1799)
    assert np.array_equal(back.lats, hrrr_grid_def.lats)
    assert json.loads(t.schema.metadata[b"projection"])["proj"] == "lcc"


def test_grid_id_tracks_grid_not_data(hrrr_real, hrrr_hour, hrrr_grid_def):
    msgs = scan_grib(hrrr_real)
    assert {m.grid_id for m in msgs} == {hrrr_grid_def.grid_id}
    assert {m.grid_id for m in scan_grib(hrrr_hour)} == {hrrr_grid_def.grid_id}


def test_real_apcp_matches_eccodes(hrrr_real, engine):
    table, stats = decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12, engine=engine)
    col = table.column("apcp_kg_m2").to_numpy()
    assert col.dtype == np.float32 and col.size == 1059 * 1799
    assert np.array_equal(col, ec_values(hrrr_real, 1).astype(np.float32))   # 0-12 h, not 11-12 h
    md = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert md["run_time"] == "2020-12-14T00:00:00+00:00" and md["valid_time"] == "2020-12-14T12:00:00+00:00"
    assert md["forecast_hour"] == "12" and json.loads(md["units"]) == {"apcp_kg_m2": "kg m-2"}
    assert stats["apcp_kg_m2"]["max"] == pytest.approx(135.4, abs=0.1) and stats["apcp_kg_m2"]["null_count"] == 0


def test_ten_variables_match_eccodes(hrrr_hour, hrrr_grid_def, engine):
    variables = resolve(DEFAULT_VARIABLES)
    table, stats = decode_fields(hrrr_hour, variables, 0, expected_grid_id=hrrr_grid_def.grid_id,
                                 idx=(hrrr_hour.parent / (hrrr_hour.name + ".idx")).read_text(), engine=engine)
    assert table.schema.names == list(DEFAULT_VARIABLES)
    for n, var in enumerate(variables, 1):
        assert np.array_equal(table.column(var.column).to_numpy(), ec_values(hrrr_hour, n).astype(np.float32)), var
    assert 250 < stats["tmp_2m_k"]["mean"] < 300 and set(np.unique(table.column("csnow").to_numpy())) == {0.0, 1.0}
    assert table.schema.metadata[b"decode_engine"].decode() == engine
    assert all(str(f.type) == "float" for f in table.schema) and table.num_rows == 1059 * 1799


def test_default_engine_is_threaded_eccodes_with_cfgribs_values(hrrr_real):
    table, _ = decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12)
    assert table.schema.metadata[b"decode_engine"] == b"eccodes"
    via_xarray, _ = decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12, engine="cfgrib")
    assert table.equals(via_xarray)
    with pytest.raises(ValueError, match="unknown HRRR decode engine 'pygrib'; known: cfgrib, eccodes"):
        decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12, engine="pygrib")


def test_cfgrib_engine_fails_loudly_when_cfgrib_drops_a_variable(hrrr_real):
    """If cfgrib's own filtering does not return a requested variable, the decode fails naming it
    (here tmp_2m_k is bound to the real APCP message: cfgrib's surface/level 2 filter drops it)."""
    msgs, handles = _scan(hrrr_real, "real", keep=lambda keys: True)
    try:
        tmp = resolve(["tmp_2m_k"])[0]
        with pytest.raises(HrrrDataError, match=r"message 1: requested variable tmp_2m_k is missing from the cfgrib "
                           r"dataset \(data variables \[\]; level type 103, cfgrib typeOfLevel 'surface'\); "
                           r"expected exactly one tmp_2m_k"):
            _decode_cfgrib(handles, {"tmp_2m_k": msgs[0]}, [tmp], "real")
        assert (1, 1) not in handles   # the handle went to cfgrib, which released it
    finally:
        for h in handles.values():
            eccodes.codes_release(h)


def test_absent_variable_fails(hrrr_real, engine):
    with pytest.raises(HrrrDataError, match="requested variable tmp_2m_k is absent.*expected tmp_2m_k"):
        decode_fields(hrrr_real, resolve(["apcp_kg_m2", "tmp_2m_k"]), 12, engine=engine)


def test_wrong_forecast_hour_fails(hrrr_real, engine):
    with pytest.raises(HrrrDataError, match="message 1: apcp_kg_m2 is for the wrong forecast hour; expected f06"):
        decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 6, engine=engine)


def test_grid_mismatch_fails(hrrr_real, gfs, engine):
    gfs_id = grid_from_grib(gfs).grid_id
    with pytest.raises(HrrrDataError, match="message 1: the message is on a different grid"):
        decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12, expected_grid_id=gfs_id, engine=engine)


@pytest.mark.parametrize("cut", [0, 10, 100, 887242, 887243 + 20, 887243 + 300000, -2])
def test_truncated_grib_fails(tmp_path, hrrr_real, cut):
    data = hrrr_real.read_bytes()
    bad = tmp_path / "cut.grib2"
    bad.write_bytes(data[:cut])
    with pytest.raises(HrrrDataError) as err:
        scan_grib(bad)
    expected_msg = 1 if 0 <= cut < 887243 else 2   # the real subset has 1 stray byte after each message
    assert err.value.message_number == expected_msg
    assert str(bad) in str(err.value)


def test_corrupt_grib_fails(tmp_path, hrrr_real, engine):
    data = bytearray(hrrr_real.read_bytes())
    bad = tmp_path / "bad.grib2"
    flipped = bytearray(data)
    flipped[887244:887248] = b"GRIX"                      # second message marker
    bad.write_bytes(flipped)
    with pytest.raises(HrrrDataError, match="message 2: no GRIB marker"):
        scan_grib(bad)
    flipped = bytearray(data)
    flipped[887243 - 2] = 0                               # first message's 7777
    bad.write_bytes(flipped)
    with pytest.raises(HrrrDataError, match="message 1: corrupt.*7777"):
        scan_grib(bad)
    flipped = bytearray(data)
    flipped[16 + 4] = 99                                  # section 1 number -> ecCodes rejects it
    bad.write_bytes(flipped)
    with pytest.raises(HrrrDataError, match="message 1"):
        decode_fields(bad, resolve(["apcp_kg_m2"]), 12, engine=engine)


def test_idx_must_match_grib(hrrr_real, engine):
    msgs = scan_grib(hrrr_real)
    good = idx_text(msgs)
    assert good.splitlines()[0] == "1:0:d=2020121400:APCP:surface:0-12 hour acc fcst:"
    decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12, idx=good, engine=engine)
    past_end = good + "3:2000000:d=2020121400:TMP:2 m above ground:12 hour fcst:\n"
    with pytest.raises(HrrrDataError, match="past the end of the file"):
        decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12, idx=past_end, engine=engine)
    wrong_var = good.replace("1:0:d=2020121400:APCP", "1:0:d=2020121400:TMP")
    with pytest.raises(HrrrDataError, match="message 1: .idx entry 1 names the wrong variable.*expected TMP.*found APCP"):
        decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12, idx=wrong_var, engine=engine)
    wrong_offset = good.replace(":887244:", ":887000:")
    with pytest.raises(HrrrDataError, match="not the start of a GRIB message"):
        decode_fields(hrrr_real, resolve(["apcp_kg_m2"]), 12, idx=wrong_offset, engine=engine)


def test_framing_of_real_gfs(gfs):
    assert len(scan_framing(gfs.read_bytes(), str(gfs))) == 307


def test_bitmap_missing_points_are_null(tmp_path, hrrr_real, engine):
    """Points the bitmap marks missing decode as nulls (not ecCodes' 9999); the rest as ecCodes."""
    with open(hrrr_real, "rb") as fh:
        h = eccodes.codes_grib_new_from_file(fh)
    try:
        values = eccodes.codes_get_values(h)
        values[:1000] = 9999.0
        eccodes.codes_set(h, "bitmapPresent", 1)
        eccodes.codes_set(h, "missingValue", 9999.0)
        eccodes.codes_set_values(h, values)
        (tmp_path / "bm.grib2").write_bytes(eccodes.codes_get_message(h))
    finally:
        eccodes.codes_release(h)
    table, stats = decode_fields(tmp_path / "bm.grib2", resolve(["apcp_kg_m2"]), 12, engine=engine)
    col = table.column("apcp_kg_m2")
    assert col.null_count == 1000 and stats["apcp_kg_m2"]["null_count"] == 1000
    ref = ec_values(tmp_path / "bm.grib2", 1)
    assert np.array_equal(col.to_numpy(zero_copy_only=False)[1000:], ref[1000:].astype(np.float32))
    assert stats["apcp_kg_m2"]["max"] == pytest.approx(float(ref[1000:].max()), rel=1e-6)
