"""Window statistics: against a per-station reference loop, on linear fields, on the real grid."""

import numpy as np
import polars as pl
import pytest

from snoiq_assets.lib.features.grid_index import build_station_grid_index, index_window_arrays, window_cells
from snoiq_assets.lib.features.neighbourhood import (
    STATS,
    NeighbourhoodError,
    feature_column,
    field_arrays,
    fields_matrix,
    gather,
    station_features,
    window_stats,
)
from snoiq_assets_tests.features import REAL_GRIB, real_grid, real_locator, uscrn_stations


def _reference(fields, cells, k):
    """Per station and variable, the obvious way (the test oracle)."""
    out = {s: np.full((fields.shape[0], cells.shape[0]), np.nan) for s in STATS}
    for v in range(fields.shape[0]):
        for i, row in enumerate(cells):
            w = np.array([fields[v, c] if c >= 0 else np.nan for c in row], dtype=np.float64).reshape(k, k)
            vals = w[~np.isnan(w)]
            out["centre"][v, i] = w[k // 2, k // 2]
            if vals.size:
                out["mean"][v, i], out["min"][v, i] = vals.mean(), vals.min()
                out["max"][v, i], out["std"][v, i] = vals.max(), vals.std()
            east, west, north, south = w[:, -1], w[:, 0], w[-1, :], w[0, :]
            if (~np.isnan(east)).any() and (~np.isnan(west)).any():
                out["grad_we"][v, i] = (np.nanmean(east) - np.nanmean(west)) / (k - 1)
            if (~np.isnan(north)).any() and (~np.isnan(south)).any():
                out["grad_sn"][v, i] = (np.nanmean(north) - np.nanmean(south)) / (k - 1)
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_window_stats_match_a_reference_loop_including_edges_and_nan(k):
    rng = np.random.default_rng(1)
    ny, nx = 12, 15
    fields = rng.normal(size=(3, ny * nx)).astype(np.float32)
    fields[1, 17] = np.nan  # a missing value inside the field is ignored like an off-grid cell
    iy = np.array([0, 0, ny - 1, 5, 6, 1, 11])
    ix = np.array([0, nx - 1, nx - 1, 7, 0, 2, 3])
    cells, _ = window_cells(iy, ix, (ny, nx), k)
    got = window_stats(fields, cells, k)
    want = _reference(fields, cells, k)
    for s in STATS:
        assert got[s].dtype == np.float32 and got[s].shape == (3, len(iy))
        np.testing.assert_allclose(got[s], want[s], rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=s)
    # the (0, 0) corner: west column and south row wholly off the grid -> no gradient
    assert np.isnan(got["grad_we"][:, 0]).all() and np.isnan(got["grad_sn"][:, 0]).all()
    assert np.isfinite(got["mean"][:, 0]).all()
    # the interior station (5, 7) has every statistic
    assert all(np.isfinite(got[s][0, 3]) for s in STATS)


def test_gradients_of_a_linear_field_are_its_slope_per_cell():
    ny, nx = 20, 30
    y, x = np.divmod(np.arange(ny * nx), nx)
    f = np.stack([2.0 * x - 0.5 * y + 7, np.full(ny * nx, 3.0)]).astype(np.float32)
    iy, ix = np.array([10, 4]), np.array([15, 20])
    cells, _ = window_cells(iy, ix, (ny, nx), 5)
    s = window_stats(f, cells, 5)
    np.testing.assert_allclose(s["grad_we"][0], [2.0, 2.0])
    np.testing.assert_allclose(s["grad_sn"][0], [-0.5, -0.5])
    np.testing.assert_allclose(s["centre"][0], 2.0 * ix - 0.5 * iy + 7)
    np.testing.assert_allclose(s["mean"][0], 2.0 * ix - 0.5 * iy + 7, rtol=1e-6)
    np.testing.assert_allclose(s["min"][0], 2.0 * (ix - 2) - 0.5 * (iy + 2) + 7)
    np.testing.assert_allclose(s["max"][0], 2.0 * (ix + 2) - 0.5 * (iy - 2) + 7)
    np.testing.assert_allclose(s["std"][1], [0, 0])
    np.testing.assert_allclose(s["grad_we"][1], [0, 0])
    # a grid stored north-to-south: the index flips the rows, so the sign still means northwards
    cells_flip, _ = window_cells(iy, ix, (ny, nx), 5, y_north=-1)
    np.testing.assert_allclose(window_stats(f, cells_flip, 5)["grad_sn"][0], [0.5, 0.5])


def test_fully_off_grid_edges_give_null_gradients_in_the_feature_table():
    ny, nx = 2, 2
    f = np.arange(4, dtype=np.float32)[None, :]
    cells, _ = window_cells(np.array([0]), np.array([0]), (ny, nx), 5)  # cols -2..2: west edge off grid
    df = station_features(np.array(["s"]), f, ["v"], cells, 5)
    assert df.columns == ["station_id"] + [feature_column("v", s) for s in STATS]
    row = df.row(0, named=True)
    assert row["v__grad_we"] is None and row["v__grad_sn"] is None
    assert row["v__centre"] == 0 and row["v__mean"] == pytest.approx(1.5) and row["v__max"] == 3
    assert df.schema["v__mean"] == pl.Float32


def test_gather_refuses_cells_from_another_grid_and_bad_shapes():
    f = np.zeros((2, 10), np.float32)
    with pytest.raises(NeighbourhoodError, match="beyond the field's 10 cells"):
        gather(f, np.array([[0, 10]]))
    with pytest.raises(NeighbourhoodError, match=r"\(n_vars, n_cells\)"):
        gather(np.zeros(10), np.array([[0]]))
    with pytest.raises(NeighbourhoodError, match="for a 3x3 window"):
        window_stats(f, np.zeros((4, 25), np.int64), 3)
    with pytest.raises(NeighbourhoodError, match="lacks variable"):
        fields_matrix(pl.DataFrame({"a": [1.0]}), ["a", "b"])
    with pytest.raises(NeighbourhoodError, match="2 variable names for 1 fields"):
        station_features(np.array(["s"]), np.zeros((1, 4), np.float32), ["a", "b"], np.zeros((1, 9), np.int64), 3)


def test_fields_matrix_is_variables_by_cells():
    frame = pl.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0], "c": ["x", "y", "z"]})
    m = fields_matrix(frame, ["b", "a"])
    assert m.dtype == np.float32 and m.shape == (2, 3) and m.flags.c_contiguous
    np.testing.assert_array_equal(m, [[4, 5, 6], [1, 2, 3]])


def test_centre_values_on_the_real_grid_equal_herbie_pick_points():
    import herbie.accessors  # noqa: F401
    import xarray as xr

    ds = xr.open_dataset(REAL_GRIB, engine="cfgrib",
                         backend_kwargs={"indexpath": "", "filter_by_keys": {"stepRange": "0-12"}})
    g = real_grid()
    assert ds["tp"].shape == g.shape
    stations = uscrn_stations()
    index = build_station_grid_index(stations, real_locator(), window=5)
    ids, cells, k = index_window_arrays(index)
    fields = ds["tp"].values.reshape(1, -1).astype(np.float32)
    feats = station_features(ids, fields, ["apcp_kg_m2"], cells, k)
    pts = pl.DataFrame({"station_id": ids}).join(stations, on="station_id", how="left").to_pandas()
    dsp = ds.herbie.pick_points(pts[["station_id", "latitude", "longitude"]], method="nearest",
                                use_cached_tree=False, max_distance=10)
    assert list(dsp["point_station_id"].values) == list(ids)
    np.testing.assert_array_equal(feats["apcp_kg_m2__centre"].to_numpy(), dsp["tp"].values)
    assert (feats["apcp_kg_m2__max"] >= feats["apcp_kg_m2__centre"]).all()
    assert (feats["apcp_kg_m2__min"] <= feats["apcp_kg_m2__mean"]).all()
    assert feats["apcp_kg_m2__max"].max() > 0  # it rained somewhere near a station (real field)


def test_column_views_give_the_same_features_as_the_matrix_and_nulls_are_nan():
    rng = np.random.default_rng(3)
    ny, nx = 9, 11
    frame = pl.DataFrame({"a": rng.normal(size=ny * nx).astype(np.float32),
                          "b": rng.normal(size=ny * nx)}).with_columns(
        pl.when(pl.int_range(pl.len()) == 50).then(None).otherwise(pl.col("b")).alias("b"))
    cols = field_arrays(frame, ["a", "b"])
    assert [c.dtype for c in cols] == [np.float32, np.float32] and np.isnan(cols[1][50])
    cells, _ = window_cells(np.array([4, 0, 8]), np.array([5, 0, 10]), (ny, nx), 3)
    ids = np.array(["x", "y", "z"])
    via_views = station_features(ids, cols, ["a", "b"], cells, 3)
    via_matrix = station_features(ids, fields_matrix(frame, ["a", "b"]), ["a", "b"], cells, 3)
    assert via_views.equals(via_matrix)
    # station x's window holds cell 50 (y=4, x=6): b's mean ignores the null
    window = [c for c in cells[0] if c != 50]
    assert via_views["b__mean"][0] == pytest.approx(float(np.mean(frame["b"].to_numpy()[window])), rel=1e-5)
    with pytest.raises(NeighbourhoodError, match="1-D arrays of one length"):
        gather([np.zeros(4), np.zeros(5)], np.zeros((1, 1), np.int64))
    with pytest.raises(NeighbourhoodError, match="lacks variable"):
        field_arrays(frame, ["c"])


def test_window_cells_taken_from_an_arrow_table_give_the_same_features():
    """The grid join reads a lead with pyarrow and converts only the cells the windows use
    (lib/features/grid_join.window_arrays): the features equal those of the whole columns,
    with off-grid cells (-1) and nulls (a float64 column too) treated alike."""
    import pyarrow as pa

    from snoiq_assets.lib.features.grid_join import window_arrays

    rng = np.random.default_rng(11)
    ny, nx = 9, 11
    frame = pl.DataFrame({"a": rng.normal(size=ny * nx).astype(np.float32),
                          "b": rng.normal(size=ny * nx)}).with_columns(
        pl.when(pl.int_range(pl.len()).is_in([50, 51])).then(None).otherwise(pl.col("b")).alias("b"))
    cells, _ = window_cells(np.array([4, 0, 8, 4]), np.array([5, 0, 10, 6]), (ny, nx), 3)
    assert (cells < 0).any()   # the corner stations' windows run off the grid
    ids = np.array(["w", "x", "y", "z"])
    whole = station_features(ids, field_arrays(frame, ["a", "b"]), ["a", "b"], cells, 3)
    arrays, renumbered = window_arrays(frame.to_arrow(), ["a", "b"], cells)
    assert len(arrays[0]) == len(np.unique(cells[cells >= 0])) < ny * nx
    assert (renumbered < 0).sum() == (cells < 0).sum()
    taken = station_features(ids, arrays, ["a", "b"], renumbered, 3)
    assert taken.equals(whole)
    # station w's window holds the null cells 50 and 51: its mean of b is over the other seven
    window = [c for c in cells[0] if c not in (50, 51)]
    assert taken["b__mean"][0] == pytest.approx(float(np.mean(frame["b"].to_numpy()[window])), rel=1e-5)
