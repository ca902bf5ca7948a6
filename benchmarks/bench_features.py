"""Grid feature extraction benchmark: the vectorised window gather against (a) a naive
xarray ``.sel(method="nearest")`` loop, (b) Herbie's ``pick_points`` with its cached BallTree and
(c) the decode of the same fields (the floor). All in one process, on the real HRRR grid
(1059 x 1799 Lambert) with the ten default variables (written with ecCodes from the real APCP
message, as hrrr_fields' own benchmark does) and the 250 real USCRN stations, of which 211 lie
on the grid (the 39 in Alaska, Hawaii and abroad are excluded by the index and by every method
here, so all methods see the same 211 points). Then the station count is scaled to 2,500 and
25,000 (random points inside the grid) to show how the cost grows.

Writes benchmarks/results/features.json and prints the figures.
"""

import pyproj  # noqa: F401  isort: skip  (must load before eccodes/cfgrib/herbie)

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import best_of, write_results  # noqa: E402
from snoiq_assets.lib.features.grid_index import GridLocator, build_station_grid_index, index_window_arrays  # noqa: E402
from snoiq_assets.lib.features.neighbourhood import field_arrays, fields_matrix, station_features  # noqa: E402
from snoiq_assets.lib.hrrr.decode import decode_fields  # noqa: E402
from snoiq_assets.lib.hrrr.grid import earth_of, grid_from_grib, pyproj_crs  # noqa: E402
from snoiq_assets.lib.hrrr.synth import REAL_SUBSET, write_hrrr_hour  # noqa: E402
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve  # noqa: E402

WINDOW = 5
NAIVE_SUBSET = 10  # stations timed in the naive loop; scaled linearly to all stations


def uscrn_stations() -> pl.DataFrame:
    raw = pl.read_csv(ROOT / "data" / "sample" / "uscrn" / "stations.tsv", separator="\t", infer_schema=False)
    return raw.select(pl.col("STATION_ID").alias("station_id"),
                      pl.col("LATITUDE").cast(pl.Float64).alias("latitude"),
                      pl.col("LONGITUDE").cast(pl.Float64).alias("longitude"))


def random_stations(grid, n: int, seed: int) -> pl.DataFrame:
    """n points inside the grid: random interior cells, jittered by up to a third of a cell."""
    rng = np.random.default_rng(seed)
    ny, nx = grid.shape
    iy, ix = rng.integers(3, ny - 3, n), rng.integers(3, nx - 3, n)
    fy, fx = rng.uniform(-1 / 3, 1 / 3, n), rng.uniform(-1 / 3, 1 / 3, n)
    lat = grid.lats[iy, ix] + fy * (grid.lats[iy + 1, ix] - grid.lats[iy, ix]) + fx * (grid.lats[iy, ix + 1] - grid.lats[iy, ix])
    lon = grid.lons[iy, ix] + fy * (grid.lons[iy + 1, ix] - grid.lons[iy, ix]) + fx * (grid.lons[iy, ix + 1] - grid.lons[iy, ix])
    return pl.DataFrame({"station_id": [f"s{i:06d}" for i in range(n)], "latitude": lat, "longitude": lon})


def main() -> None:
    import herbie
    import herbie.accessors  # noqa: F401  registers ds.herbie
    import xarray as xr

    results: dict = {"grid": None, "window": WINDOW, "variables": list(DEFAULT_VARIABLES)}
    grid = grid_from_grib(REAL_SUBSET)
    ny, nx = grid.shape
    results["grid"] = f"HRRR {ny}x{nx} (real grid of {REAL_SUBSET.name})"
    t0 = time.perf_counter()
    locator = GridLocator(grid.lats, grid.lons, earth_of(grid.projection))
    results["tree_build_s"] = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="snoiq-bench-features-") as tmp:
        tmp = Path(tmp)
        path = write_hrrr_hour(tmp / "hrrr.grib2", dt.datetime(2023, 1, 1, 1, tzinfo=dt.timezone.utc), 0)
        variables = resolve(DEFAULT_VARIABLES)

        # (c) the floor: decode the same ten fields the way hrrr_fields does
        holder = {}

        def decode():
            holder["table"], _ = decode_fields(path, variables, 0)

        decode_s = best_of(decode, 3)
        frame = pl.from_arrow(holder["table"])
        cols = list(DEFAULT_VARIABLES)

        stations = uscrn_stations()
        t0 = time.perf_counter()
        index = build_station_grid_index(stations, locator, window=WINDOW)
        results["index_build_250_s"] = time.perf_counter() - t0
        ids, cells, k = index_window_arrays(index)
        n_inc = len(ids)
        results["stations_total"] = stations.height
        results["stations_on_grid"] = n_inc

        matrix = fields_matrix(frame, cols)
        ours_core_s = best_of(lambda: station_features(ids, matrix, cols, cells, k), 20)
        ours_full_s = best_of(lambda: station_features(ids, field_arrays(frame, cols), cols, cells, k), 20)
        feats = station_features(ids, matrix, cols, cells, k)

        # (a) naive: per station and window cell, ds.sel(x=, y=, method="nearest") on projected coords
        crs = pyproj_crs(grid.projection)
        to_xy = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        gx, gy = to_xy.transform(grid.lons, grid.lats)
        xs, ys = gx[ny // 2], gy[:, nx // 2]  # 1-D axes of the Lambert grid (m)
        dxm = float(grid.projection["dx_m"])
        ds = xr.Dataset({c: (("y", "x"), matrix[i].reshape(ny, nx)) for i, c in enumerate(cols)},
                        coords={"y": ys, "x": xs})
        inc = index.filter(pl.col("included"))
        sx, sy = to_xy.transform(inc["longitude"].to_numpy(), inc["latitude"].to_numpy())
        h = WINDOW // 2

        def naive(n):
            out = np.full((len(cols), n, WINDOW * WINDOW), np.nan, np.float32)
            for i in range(n):
                cx = float(ds.x.sel(x=sx[i], method="nearest"))
                cy = float(ds.y.sel(y=sy[i], method="nearest"))
                for j in range(WINDOW * WINDOW):
                    r, c = divmod(j, WINDOW)
                    px, py = cx + (c - h) * dxm, cy + (r - h) * dxm
                    cell = ds.sel(x=px, y=py, method="nearest", tolerance=dxm / 2)
                    out[:, i, j] = [float(cell[v]) for v in cols]
            return out

        naive_sub = naive(NAIVE_SUBSET)
        # same values as the vectorised gather for these (interior) stations
        agree = bool(np.allclose(naive_sub.mean(axis=2), np.stack([feats[f"{c}__mean"].to_numpy()[:NAIVE_SUBSET] for c in cols]),
                                 rtol=1e-5, atol=1e-6))
        naive_sub_s = best_of(lambda: naive(NAIVE_SUBSET), 1)
        naive_s = naive_sub_s * n_inc / NAIVE_SUBSET

        # (b) Herbie pick_points(method="nearest") with its cached BallTree (cache in a temp dir)
        herbie.config["default"]["save_dir"] = tmp
        hds = xr.Dataset({c: (("y", "x"), matrix[i].reshape(ny, nx)) for i, c in enumerate(cols)},
                         coords={"latitude": (("y", "x"), grid.lats), "longitude": (("y", "x"), grid.lons)})
        pts = inc.select("station_id", "latitude", "longitude").to_pandas()
        t0 = time.perf_counter()
        hres = hds.herbie.pick_points(pts, method="nearest", use_cached_tree=True, tree_name="hrrr_bench")
        herbie_first_s = time.perf_counter() - t0
        herbie_s = best_of(lambda: hds.herbie.pick_points(pts, method="nearest", use_cached_tree=True,
                                                          tree_name="hrrr_bench"), 3)
        herbie_agree = bool(np.array_equal(hres["tmp_2m_k"].values, feats["tmp_2m_k__centre"].to_numpy()))

        results.update({
            "decode_ten_fields_s": decode_s,
            "ours_extract_s": ours_core_s,
            "ours_extract_incl_frame_column_views_s": ours_full_s,
            "naive_xarray_sel_s_scaled": naive_s,
            "naive_timed_stations": NAIVE_SUBSET,
            "naive_timed_s": naive_sub_s,
            "naive_values_agree": agree,
            "herbie_pick_points_cached_s": herbie_s,
            "herbie_first_call_with_tree_build_s": herbie_first_s,
            "herbie_centre_values_agree": herbie_agree,
            "speedup_vs_naive": naive_s / ours_full_s,
            "speedup_vs_herbie": herbie_s / ours_full_s,
            "extract_share_of_decode": ours_full_s / decode_s,
        })

        # scaling
        scaling = []
        for n in (250, 2_500, 25_000):
            st = stations if n == 250 else random_stations(grid, n, seed=n)
            t0 = time.perf_counter()
            idx = build_station_grid_index(st, locator, window=WINDOW)
            index_s = time.perf_counter() - t0
            sid, c, kk = index_window_arrays(idx)
            ext_s = best_of(lambda: station_features(sid, field_arrays(frame, cols), cols, c, kk), 10)
            p = idx.filter(pl.col("included")).select("station_id", "latitude", "longitude").to_pandas()
            her_s = best_of(lambda: hds.herbie.pick_points(p, method="nearest", use_cached_tree=True,
                                                           tree_name="hrrr_bench"), 1)
            scaling.append({"stations": n, "on_grid": len(sid), "index_build_s": index_s, "extract_s": ext_s,
                            "herbie_pick_points_s": her_s, "extract_per_station_us": ext_s / len(sid) * 1e6})
        results["scaling"] = scaling

    print(f"grid {ny}x{nx}, {n_inc} of {stations.height} stations on the grid, {len(cols)} variables, "
          f"{WINDOW}x{WINDOW} window")
    print(f"  decode (floor)            {decode_s * 1000:9.1f} ms")
    print(f"  ours (gather + stats)     {ours_core_s * 1000:9.3f} ms   incl. frame column views {ours_full_s * 1000:.3f} ms"
          f"  = {results['extract_share_of_decode']:.2%} of decode")
    print(f"  naive xarray .sel loop    {naive_s * 1000:9.1f} ms   (timed {NAIVE_SUBSET} stations, scaled)"
          f"  -> ours {results['speedup_vs_naive']:.0f}x faster; values agree: {agree}")
    print(f"  herbie pick_points cached {herbie_s * 1000:9.1f} ms   -> ours {results['speedup_vs_herbie']:.0f}x faster;"
          f" centre values agree: {herbie_agree}")
    for s in scaling:
        print(f"  {s['stations']:>6} stations: index {s['index_build_s'] * 1000:8.1f} ms, extract {s['extract_s'] * 1000:8.2f} ms"
              f" ({s['extract_per_station_us']:.1f} us/station), herbie {s['herbie_pick_points_s'] * 1000:8.1f} ms")
    write_results("features", results)


if __name__ == "__main__":
    main()
