"""station -> grid cell index: Herbie oracle on the real grid, windows, exclusions, bad input."""

import numpy as np
import polars as pl
import pytest

from snoiq_assets.lib.features.grid_index import (
    REASON_OUTSIDE,
    REASON_TOO_FAR,
    GridIndexError,
    GridLocator,
    build_station_grid_index,
    haversine_m,
    index_inputs_hash,
    index_window_arrays,
    station_list_hash,
    window_cells,
    window_offsets,
)
from snoiq_assets_tests.features import REAL_GRIB, real_grid, real_locator, uscrn_stations


# ----- the oracle -----------------------------------------------------------------------
def test_nearest_cell_matches_herbie_pick_points_for_all_250_uscrn_stations():
    import herbie.accessors  # noqa: F401  registers ds.herbie
    import xarray as xr

    stations = uscrn_stations()
    assert stations.height == 250
    ds = xr.open_dataset(REAL_GRIB, engine="cfgrib",
                         backend_kwargs={"indexpath": "", "filter_by_keys": {"stepRange": "0-12"}})
    pts = stations.select("station_id", "latitude", "longitude").to_pandas()
    # max_distance is in km; large so Herbie answers for every station (it clamps the
    # Alaskan/Hawaiian ones to an edge cell, which we exclude instead: compared separately).
    dsp = ds.herbie.pick_points(pts, method="nearest", use_cached_tree=False, max_distance=1e6)
    assert list(dsp["point_station_id"].values) == stations["station_id"].to_list()
    h_lat = dsp["latitude"].values
    h_lon = dsp["longitude"].values

    loc = real_locator()
    near = loc.nearest(stations["latitude"].to_numpy(), stations["longitude"].to_numpy())
    ours_lat, ours_lon = loc.lats[near.iy, near.ix], loc.lons[near.iy, near.ix]
    same_cell = haversine_m(ours_lat, ours_lon, h_lat, h_lon) < 0.01
    d_herbie = haversine_m(stations["latitude"].to_numpy(), stations["longitude"].to_numpy(), h_lat, h_lon)
    tie = np.abs(d_herbie - near.distance_m) < 1.0
    assert (same_cell | tie).all(), stations.filter(pl.Series(~(same_cell | tie)))
    assert same_cell.sum() >= 245  # ties within a metre are rare; this guards the comparison itself
    np.testing.assert_allclose(near.distance_m / 1000, dsp["point_grid_distance"].values, rtol=1e-3, atol=1e-3)

    # The index keeps exactly those cells for included stations, and excludes the rest.
    index = build_station_grid_index(stations, loc, window=5).join(
        stations.select("station_id", "state"), on="station_id")
    by_id = dict(zip(stations["station_id"].to_list(), zip(near.iy.tolist(), near.ix.tolist())))
    inc = index.filter(pl.col("included"))
    assert [(r["grid_y"], r["grid_x"]) for r in inc.iter_rows(named=True)] == [by_id[s] for s in inc["station_id"]]
    excluded = index.filter(~pl.col("included"))
    assert set(excluded["state"].unique()) <= {"AK", "HI", "SA"}
    assert excluded.filter(pl.col("state").is_in(["AK", "HI"])).height == 38
    assert inc.height == 211


def test_excluded_stations_are_flagged_with_a_reason_and_never_clamped():
    index = build_station_grid_index(uscrn_stations(), real_locator(), window=5)
    excluded = index.filter(~pl.col("included"))
    assert excluded.height == 39
    assert excluded["exclusion_reason"].str.starts_with(REASON_OUTSIDE).all()
    for col in ("grid_y", "grid_x", "cell_latitude", "cell_longitude", "window_cells", "window_mask"):
        assert excluded[col].null_count() == excluded.height, col
    assert (excluded["distance_m"] > 100_000).all()  # the true distance to the nearest cell is kept
    included = index.filter(pl.col("included"))
    assert included["exclusion_reason"].null_count() == included.height
    # Inside the grid no station is farther from its cell than half a cell diagonal (~2.1 km).
    assert included["distance_m"].max() < 2_200


def test_max_distance_excludes_as_too_far():
    stations = uscrn_stations()
    index = build_station_grid_index(stations, real_locator(), window=3, max_distance_m=1_000)
    far = index.filter(pl.col("exclusion_reason").str.starts_with(REASON_TOO_FAR))
    assert far.height > 20
    assert (far["distance_m"] > 1_000).all()
    assert far["exclusion_reason"].str.contains("limit 1.0 km").all()
    assert (index.filter(pl.col("included"))["distance_m"] <= 1_000).all()
    with pytest.raises(GridIndexError, match="max_distance_m must be positive"):
        build_station_grid_index(stations, real_locator(), max_distance_m=0)


@pytest.mark.parametrize("size", [3, 5, 7])
def test_window_cells_are_the_neighbours_in_south_to_north_west_to_east_order(size):
    g, loc = real_grid(), real_locator()
    ny, nx = g.shape
    index = build_station_grid_index(uscrn_stations(), loc, window=size).filter(pl.col("included"))
    ids, cells, k = index_window_arrays(index)
    assert k == size and cells.shape == (index.height, size * size)
    iy, ix = index["grid_y"].to_numpy(), index["grid_x"].to_numpy()
    h = size // 2
    assert (cells[:, size * size // 2] == iy * nx + ix).all()
    r, c = np.divmod(np.arange(size * size), size)
    np.testing.assert_array_equal(cells, (iy[:, None] + r - h) * nx + (ix[:, None] + c - h))
    lat, lon = g.lats.ravel()[cells], g.lons.ravel()[cells]
    # each row's cells run west -> east, rows run south -> north
    assert (np.diff(lon.reshape(-1, size, size), axis=2) > 0).all()
    assert (np.diff(lat.reshape(-1, size, size).mean(axis=2), axis=1) > 0).all()


def test_edge_cells_get_a_mask_and_minus_one():
    g, loc = real_grid(), real_locator()
    ny, nx = g.shape
    corners = pl.DataFrame({
        "station_id": ["sw", "ne", "edge_w"],
        "latitude": [g.lats[0, 0], g.lats[ny - 1, nx - 1], g.lats[500, 1]],
        "longitude": [g.lons[0, 0], g.lons[ny - 1, nx - 1], g.lons[500, 1]],
    })
    index = build_station_grid_index(corners, loc, window=5)
    assert index["included"].all()
    rows = {r["station_id"]: r for r in index.iter_rows(named=True)}
    sw, ne, w = rows["sw"], rows["ne"], rows["edge_w"]
    assert (sw["grid_y"], sw["grid_x"]) == (0, 0) and (ne["grid_y"], ne["grid_x"]) == (ny - 1, nx - 1)
    for r in (sw, ne):
        m = np.array(r["window_mask"]).reshape(5, 5)
        assert m.sum() == 9
        assert ((np.array(r["window_cells"]) == -1) == ~m.ravel()).all()
    assert np.array(sw["window_mask"]).reshape(5, 5)[2:, 2:].all()  # north-east quadrant on the grid
    assert np.array(ne["window_mask"]).reshape(5, 5)[:3, :3].all()  # south-west quadrant
    m = np.array(w["window_mask"]).reshape(5, 5)
    assert m.sum() == 20 and not m[:, 0].any()  # x = -1 falls off the west edge


def test_points_just_beyond_the_edge_are_outside_and_just_inside_are_kept():
    g, loc = real_grid(), real_locator()
    # extrapolate from the west edge outwards (x = -0.3 and x = -0.8 at y = 400)
    lat0, lon0, lat1, lon1 = g.lats[400, 0], g.lons[400, 0], g.lats[400, 1], g.lons[400, 1]
    pts = pl.DataFrame({
        "station_id": ["in", "out"],
        "latitude": [lat0 - 0.3 * (lat1 - lat0), lat0 - 0.8 * (lat1 - lat0)],
        "longitude": [lon0 - 0.3 * (lon1 - lon0), lon0 - 0.8 * (lon1 - lon0)],
    })
    index = build_station_grid_index(pts, loc, window=3, max_distance_m=50_000)
    rows = {r["station_id"]: r for r in index.iter_rows(named=True)}
    assert rows["in"]["included"] and rows["in"]["grid_x"] == 0
    assert not rows["out"]["included"]
    assert rows["out"]["exclusion_reason"].startswith(REASON_OUTSIDE)
    assert rows["out"]["grid_x"] is None


def test_kdtree_nearest_matches_brute_force_on_a_grid_across_the_dateline():
    lats1 = np.linspace(50, 70, 41)
    lons1 = np.linspace(170, 200, 61)  # crosses 180
    lons, lats = np.meshgrid(lons1, lats1)
    loc = GridLocator(lats, lons)
    rng = np.random.default_rng(0)
    plat, plon = rng.uniform(51, 69, 500), rng.uniform(171, 199, 500) - 360 * rng.integers(0, 2, 500)
    near = loc.nearest(plat, plon)
    d = haversine_m(plat[:, None], plon[:, None], lats.ravel()[None, :], lons.ravel()[None, :])
    best = d.min(axis=1)
    chosen = near.iy * lons.shape[1] + near.ix
    assert (np.isclose(d[np.arange(500), chosen], best, atol=1.0)).all()
    np.testing.assert_allclose(near.distance_m, best, atol=1.0)
    assert not near.outside.any()


def test_a_grid_stored_north_to_south_gives_the_same_geographic_layout():
    lats1 = np.linspace(30, 40, 21)
    lons1 = np.linspace(-110, -90, 41)
    lons, lats = np.meshgrid(lons1, lats1)
    pts = pl.DataFrame({"station_id": ["a"], "latitude": [35.0], "longitude": [-100.0]})
    up = build_station_grid_index(pts, GridLocator(lats, lons), window=3)
    down_loc = GridLocator(lats[::-1], lons[::-1])
    assert down_loc.y_north == -1
    down = build_station_grid_index(pts, down_loc, window=3)
    lat_up = lats.ravel()[np.array(up["window_cells"][0])]
    lat_down = lats[::-1].ravel()[np.array(down["window_cells"][0])]
    np.testing.assert_array_equal(lat_up, lat_down)
    assert lat_up[0] < lat_up[-1]


def test_haversine_known_distances():
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-4)
    assert haversine_m(0, 179.5, 0, -179.5) == pytest.approx(111_195, rel=1e-4)  # across the dateline
    assert haversine_m(40, -105, 40, 255) == pytest.approx(0, abs=1e-6)  # 0..360 vs -180..180


def test_window_helpers_reject_even_sizes_and_mark_off_grid_cells():
    for bad in (0, 2, 4, -3, 2.5):
        with pytest.raises(GridIndexError, match="odd positive integer"):
            window_offsets(bad)
    cells, mask = window_cells(np.array([0]), np.array([3]), (10, 4), 3)
    assert cells.reshape(3, 3)[0].tolist() == [-1, -1, -1]  # south row is off the grid
    assert cells.reshape(3, 3)[:, 2].tolist() == [-1, -1, -1]  # east column (x = 4) too
    assert cells.reshape(3, 3)[1].tolist() == [2, 3, -1]
    assert mask.sum() == 4


# ----- bad input ------------------------------------------------------------------------
def _st(ids, lats, lons):
    return pl.DataFrame({"station_id": ids, "latitude": lats, "longitude": lons},
                        schema={"station_id": pl.Utf8, "latitude": pl.Float64, "longitude": pl.Float64})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_st(["a", "b", "a"], [40, 41, 42], [-100, -100, -100]), r"duplicate station ids.*a \(x2\)"),
        (_st(["a", "b"], [95, 41], [-100, -100]), r"impossible coordinates.*a \(95"),
        (_st(["a", "b"], [40, 41], [-100, 400]), r"impossible coordinates.*b \(41.0, 400"),
        (_st(["a", "b"], [40, None], [-100, -100]), r"impossible coordinates.*b \(None"),
        (_st(["a", "b"], [40, float("nan")], [-100, -100]), r"impossible coordinates.*b \(nan"),
        (_st(["a", None], [40, 41], [-100, -100]), r"have no station_id"),
        (_st([], [], []), r"station list is empty"),
        (pl.DataFrame({"station_id": ["a"], "lat": [40.0], "lon": [-100.0]}), r"lacks column\(s\) \['latitude', 'longitude'\]"),
    ],
)
def test_bad_station_lists_fail_with_a_clear_error(frame, message):
    with pytest.raises(GridIndexError, match=message):
        build_station_grid_index(frame, real_locator())


def test_bad_grids_fail():
    with pytest.raises(GridIndexError, match="one \\(ny, nx\\) shape"):
        GridLocator(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(GridIndexError, match="non-finite"):
        GridLocator(np.full((3, 3), np.nan), np.zeros((3, 3)))


def test_hashes_change_with_the_inputs_that_matter_only():
    st = uscrn_stations()
    h = station_list_hash(st)
    assert station_list_hash(st.reverse()) == h  # row order does not matter
    assert station_list_hash(st.with_columns(pl.col("state").alias("other"))) == h  # other columns neither
    moved = st.with_columns(pl.when(pl.col("station_id") == "1019").then(pl.col("latitude") + 0.01)
                            .otherwise(pl.col("latitude")).alias("latitude"))
    assert station_list_hash(moved) != h
    assert station_list_hash(st.head(249)) != h
    base = index_inputs_hash("grid-a", h, 5, 5000)
    assert index_inputs_hash("grid-a", h, 5, 5000) == base
    assert index_inputs_hash("grid-b", h, 5, 5000) != base
    assert index_inputs_hash("grid-a", h, 3, 5000) != base
    assert index_inputs_hash("grid-a", station_list_hash(moved), 5, 5000) != base
