"""The station index on coarse grids and on the grid's own figure of the earth.

Default too_far limit: three quarters of the nearest cell's diagonal (the real GFS 2.5 degree
grid and the real HRRR 3 km grid). Figures of the earth: GRIB2 code table 3.2, the real MRMS
grid's IAU 1965 ellipsoid (code 2) and HRRR/GFS's 6 371 229 m sphere (code 6); distances
checked against pyproj.Geod and a haversine written here.
"""

import pyproj  # noqa: F401  isort: skip  (before eccodes)

import gzip

import eccodes
import numpy as np
import polars as pl
import pytest

from snoiq_assets.lib.features.grid_index import (
    REASON_TOO_FAR,
    GridLocator,
    build_station_grid_index,
    index_inputs_hash,
)
from snoiq_assets.lib.hrrr.grid import (
    earth_figure,
    earth_of,
    grid_from_grib,
    grid_keys,
    projection_from_keys,
    pyproj_crs,
)
from snoiq_assets_tests.features import real_grid, real_locator, uscrn_stations

R6 = 6_371_229.0


def sphere_distance(lat1, lon1, lat2, lon2, r):
    """Great-circle distance by the spherical law of cosines in vector form (not haversine)."""
    def vec(lat, lon):
        la, lo = np.radians(lat), np.radians(lon)
        return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
    a, b = vec(lat1, lon1), vec(lat2, lon2)
    return r * np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.einsum("...i,...i", a, b))


@pytest.fixture(scope="module")
def gfs_grid(sample_dir):
    return grid_from_grib(sample_dir / "noaa_grib2" / "gfs.t12z.pgrbf120.2p5deg.grib2")


def test_every_uscrn_station_is_placed_on_the_real_gfs_2p5_degree_grid(gfs_grid):
    stations = uscrn_stations()
    assert gfs_grid.shape == (73, 144) and earth_of(gfs_grid.projection) == {"R": R6}
    loc = GridLocator(gfs_grid.lats, gfs_grid.lons, earth_of(gfs_grid.projection))
    index = build_station_grid_index(stations, loc, window=3)
    assert index["included"].all(), index.filter(~pl.col("included"))   # the old 5 km default kept 0
    # each station's cell is the brute-force nearest on the 6 371 229 m sphere, at that distance
    lat, lon = index["latitude"].to_numpy(), index["longitude"].to_numpy()
    d_all = sphere_distance(lat[:, None], lon[:, None], gfs_grid.lats.ravel()[None, :],
                            gfs_grid.lons.ravel()[None, :], R6)
    flat = index["grid_y"].to_numpy() * 144 + index["grid_x"].to_numpy()
    assert np.array_equal(flat, d_all.argmin(axis=1))
    np.testing.assert_allclose(index["distance_m"].to_numpy(), d_all.min(axis=1), rtol=1e-9)
    # within half the largest cell diagonal (at the equator), far beyond the old 5 km default
    assert 100_000 < index["distance_m"].max() < 0.5 * sphere_distance(0, 0, 2.5, 2.5, R6)
    diag = loc.cell_diagonal_m(index["grid_y"].to_numpy(), index["grid_x"].to_numpy())
    y, x = index["grid_y"].to_numpy(), index["grid_x"].to_numpy()
    want = sphere_distance(gfs_grid.lats[y, x], gfs_grid.lons[y, x], gfs_grid.lats[y + 1, x + 1],
                           gfs_grid.lons[y + 1, x + 1], R6)
    np.testing.assert_allclose(diag, want, rtol=1e-9)
    # overridable: a 100 km limit excludes the far ones, naming the limit
    capped = build_station_grid_index(stations, loc, window=3, max_distance_m=100_000)
    far = capped.filter(pl.col("exclusion_reason").str.starts_with(REASON_TOO_FAR))
    assert far.height == int((d_all.min(axis=1) > 100_000).sum()) > 100
    assert far["exclusion_reason"].str.ends_with("limit 100.0 km").all()


def test_default_limit_is_three_quarters_of_the_cell_diagonal():
    g, loc = real_grid(), real_locator()
    # HRRR: 3 km Lambert cells, true scale at the 38.5 N standard parallel: limit 3.18 km
    iy, ix = np.unravel_index(np.abs(g.lats - 38.5).argmin(), g.shape)
    diag = loc.cell_diagonal_m(np.array([iy]), np.array([ix]))[0]
    assert diag == pytest.approx(3000 * 2 ** 0.5, rel=2e-4)
    index = build_station_grid_index(uscrn_stations(), loc, window=5)
    inc = index.filter(pl.col("included"))
    assert inc.height == 211 and inc["distance_m"].max() < 0.5 * diag * 1.05
    # a grid with a gap (rows 40.501, 40.5 | 40.001, 40.0 N, 0.001 degree apart otherwise): a
    # station in the gap is 27.7 km from its cell, whose diagonal is ~140 m: too far
    lats, lons = np.meshgrid([40.501, 40.5, 40.001, 40.0], [-100.0, -99.999, -99.998, -99.997], indexing="ij")
    gap = GridLocator(lats, lons, {"R": R6})
    st = pl.DataFrame({"station_id": ["gap", "on"], "latitude": [40.25, 40.0005], "longitude": [-99.9985] * 2})
    rows = {r["station_id"]: r for r in build_station_grid_index(st, gap, window=3).iter_rows(named=True)}
    limit = 0.75 * sphere_distance(40.001, -99.999, 40.0, -99.998, R6)
    assert rows["gap"]["exclusion_reason"] == (f"{REASON_TOO_FAR}: 27.7 km from the nearest cell, limit "
                                               f"{limit / 1000:.1f} km (0.75 of the cell diagonal)")
    assert rows["on"]["included"] and rows["on"]["distance_m"] < limit
    assert build_station_grid_index(st, gap, window=3, max_distance_m=30_000)["included"].all()
    assert index_inputs_hash("g", "s", 5, None) != index_inputs_hash("g", "s", 5, 5000.0)


@pytest.mark.parametrize("code, figure", [
    (0, {"R": 6_367_470.0}), (2, {"a": 6_378_160.0, "b": 6_356_775.0}),
    (4, {"a": 6_378_137.0, "rf": 298.257222101}), (5, {"a": 6_378_137.0, "rf": 298.257223563}),
    (6, {"R": 6_371_229.0}), (8, {"R": 6_371_200.0}), (9, {"a": 6_377_563.396, "b": 6_356_256.909}),
])
def test_code_table_3_2_figures(code, figure):
    assert earth_figure({"shapeOfTheEarth": code}) == figure


def test_producer_given_figures_and_unknown_codes():
    assert earth_figure({"shapeOfTheEarth": 1, "radius": 6_370_000}) == {"R": 6_370_000.0}
    assert earth_figure({"shapeOfTheEarth": 3, "earthMajorAxis": 6378.137, "earthMinorAxis": 6356.752}) == {
        "a": pytest.approx(6_378_137.0), "b": pytest.approx(6_356_752.0)}
    assert earth_figure({"shapeOfTheEarth": 7, "earthMajorAxis": 6_378_137, "earthMinorAxis": 6_356_752}) == {
        "a": 6_378_137.0, "b": 6_356_752.0}
    for code in (11, 255, None):
        with pytest.raises(ValueError, match=f"shapeOfTheEarth {code!r} names no figure of the earth"):
            earth_figure({"shapeOfTheEarth": code})
    with pytest.raises(ValueError, match="shapeOfTheEarth 1 without the radius"):
        earth_figure({"shapeOfTheEarth": 1})


@pytest.fixture(scope="module")
def mrms_keys(sample_dir):
    raw = gzip.decompress((sample_dir / "noaa_grib2" /
                           "MRMS_MultiSensor_QPE_01H_Pass2_00.00_20201015-000000.grib2.gz").read_bytes())
    h = eccodes.codes_new_from_message(raw)
    try:
        return grid_keys(h)
    finally:
        eccodes.codes_release(h)


def test_real_mrms_grid_is_on_the_iau_1965_ellipsoid(mrms_keys):
    proj = projection_from_keys(mrms_keys)
    assert proj["shapeOfTheEarth"] == 2 and earth_of(proj) == {"a": 6_378_160.0, "b": 6_356_775.0}
    ell = pyproj_crs(proj).ellipsoid
    assert (ell.semi_major_metre, ell.semi_minor_metre) == (6_378_160.0, 6_356_775.0)


def test_station_distances_on_the_mrms_ellipsoid(mrms_keys):
    """A 0.1 degree cut of the real MRMS grid (its first point and 0.01 degree spacing, every
    10th cell): distances are IAU 1965 geodesics, not sphere distances."""
    proj = projection_from_keys(mrms_keys)
    lat1d = proj["lat_first"] - 0.1 * np.arange(350)
    lon1d = proj["lon_first"] + 0.1 * np.arange(700)
    lons, lats = np.meshgrid(lon1d, lat1d)
    loc = GridLocator(lats, lons, earth_of(proj))
    stations = uscrn_stations().filter(pl.col("state").is_in(["CO", "NE", "KS", "TX", "MN"]))
    index = build_station_grid_index(stations, loc, window=3)
    assert index["included"].all() and index.height > 20
    geod = pyproj.Geod(a=6_378_160.0, b=6_356_775.0)
    lat, lon = index["latitude"].to_numpy(), index["longitude"].to_numpy()
    cell_lat, cell_lon = index["cell_latitude"].to_numpy(), index["cell_longitude"].to_numpy()
    want = np.array(geod.inv(lon, lat, cell_lon, cell_lat)[2])
    np.testing.assert_allclose(index["distance_m"].to_numpy(), want, rtol=1e-12)
    # the geodesic-nearest cell: no cell of the 3x3 around it is nearer on the ellipsoid
    for la, lo, y, x, d in zip(lat, lon, index["grid_y"], index["grid_x"], want):
        ys, xs = np.meshgrid(np.arange(y - 1, y + 2), np.arange(x - 1, x + 2))
        around = np.array(geod.inv(np.full(9, lo), np.full(9, la), lons[ys, xs].ravel(), lats[ys, xs].ravel())[2])
        assert around.min() == pytest.approx(d)
    # and differs from a sphere's answer by more than rounding (~0.3 % here)
    on_sphere = sphere_distance(lat, lon, cell_lat, cell_lon, 6_371_008.8)
    assert np.abs(on_sphere - want).max() > 1.0
