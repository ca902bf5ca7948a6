"""Window statistics for every station and variable in one numpy gather.

``fields`` is ``(n_vars, n_cells)`` float32 (each variable's grid flattened row-major, as
``hrrr_fields`` stores it), ``cells`` is ``(n_stations, k*k)`` int64 from the station grid
index (window layout: rows south -> north, each row west -> east; ``-1`` = off the grid).
``fields[:, cells]`` pulls all ``n_vars * n_stations * k*k`` values at once; off-grid cells
(and NaN values in the field) become NaN and are ignored by every statistic.

Statistics per (variable, station), named ``<var>__<stat>`` in the feature table:

- ``centre``: value at the nearest cell (the window's middle cell)
- ``mean``, ``min``, ``max``: over the window's valid cells
- ``std``: population standard deviation (ddof=0) over the window's valid cells
- ``grad_we``: (mean of the window's east column - mean of its west column) / (k - 1);
  positive when the field increases eastwards. Unit: the variable's unit per grid cell
  (one grid step; about 3 km on HRRR). Directions are grid-relative (HRRR's x axis is within a
  few degrees of true east near the centre of the domain, more towards its edges).
- ``grad_sn``: likewise north row minus south row over (k - 1); positive when the field
  increases northwards.

A statistic with no valid input (e.g. a gradient whose edge column is wholly off the grid) is
NaN, stored as null.
"""

from __future__ import annotations

import numpy as np
import polars as pl

STATS = ("centre", "mean", "min", "max", "std", "grad_we", "grad_sn")


class NeighbourhoodError(ValueError):
    pass


def feature_column(var: str, stat: str) -> str:
    return f"{var}__{stat}"


def gather(fields: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(n_vars, n_stations, k*k) float32 window values; NaN where the cell is off the grid."""
    fields = np.asarray(fields)
    if not np.issubdtype(fields.dtype, np.floating):
        fields = fields.astype(np.float32)
    if fields.ndim != 2:
        raise NeighbourhoodError(f"fields must be (n_vars, n_cells), got shape {fields.shape}")
    cells = np.asarray(cells, dtype=np.int64)
    if cells.size and cells.max() >= fields.shape[1]:
        raise NeighbourhoodError(
            f"window cell index {int(cells.max())} is beyond the field's {fields.shape[1]} cells: "
            "the index was built on another grid"
        )
    off = cells < 0
    vals = fields[:, np.where(off, 0, cells)]  # the one gather
    if off.any():
        vals[:, off] = np.nan
    return vals


def window_stats(fields: np.ndarray, cells: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Every statistic in ``STATS`` as a (n_vars, n_stations) float32 array."""
    n_st, kk = np.asarray(cells).shape if np.asarray(cells).ndim == 2 else (0, 0)
    if kk != k * k:
        raise NeighbourhoodError(f"cells must be (n_stations, {k * k}) for a {k}x{k} window, got {np.shape(cells)}")
    vals = gather(fields, cells)  # (v, n, kk) float32
    valid = ~np.isnan(vals)
    cnt = valid.sum(axis=2)
    zeroed = np.where(valid, vals, np.float32(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        total = zeroed.sum(axis=2, dtype=np.float64)
        mean = total / cnt
        dev = np.where(valid, vals - mean[..., None], 0.0)
        std = np.sqrt((dev * dev).sum(axis=2) / cnt)
        vmin = np.where(valid, vals, np.inf).min(axis=2)
        vmax = np.where(valid, vals, -np.inf).max(axis=2)
        none = cnt == 0
        vmin[none] = np.nan
        vmax[none] = np.nan
        grid = vals.reshape(vals.shape[0], n_st, k, k)  # [..., row south->north, col west->east]
        gvalid = valid.reshape(grid.shape)
        gzero = zeroed.reshape(grid.shape)

        def edge_mean(sel):
            return gzero[sel].sum(axis=-1, dtype=np.float64) / gvalid[sel].sum(axis=-1)

        steps = max(k - 1, 1)
        east = edge_mean((Ellipsis, slice(None), k - 1))
        west = edge_mean((Ellipsis, slice(None), 0))
        north = edge_mean((Ellipsis, k - 1, slice(None)))
        south = edge_mean((Ellipsis, 0, slice(None)))
        grad_we = (east - west) / steps if k > 1 else np.full_like(mean, np.nan)
        grad_sn = (north - south) / steps if k > 1 else np.full_like(mean, np.nan)
    return {
        "centre": vals[:, :, kk // 2],
        "mean": mean.astype(np.float32),
        "min": vmin.astype(np.float32),
        "max": vmax.astype(np.float32),
        "std": std.astype(np.float32),
        "grad_we": np.asarray(grad_we, dtype=np.float32),
        "grad_sn": np.asarray(grad_sn, dtype=np.float32),
    }


def fields_matrix(frame: pl.DataFrame, variables: list[str]) -> np.ndarray:
    """(n_vars, n_cells) float32 from a one-row-per-cell frame (no copy when Polars can avoid it)."""
    missing = [v for v in variables if v not in frame.columns]
    if missing:
        raise NeighbourhoodError(f"field frame lacks variable column(s) {missing}")
    arr = frame.select([pl.col(v).cast(pl.Float32) for v in variables]).to_numpy(order="fortran")
    return arr.T  # C-contiguous (n_vars, n_cells) view of the Fortran (n_cells, n_vars) array


def station_features(station_ids: np.ndarray, fields: np.ndarray, variables: list[str],
                     cells: np.ndarray, k: int) -> pl.DataFrame:
    """One row per station: station_id then ``<var>__<stat>`` for every variable and statistic
    (NaN stored as null)."""
    if len(variables) != np.asarray(fields).shape[0]:
        raise NeighbourhoodError(f"{len(variables)} variable names for {np.asarray(fields).shape[0]} fields")
    stats = window_stats(fields, cells, k)
    cols: dict[str, object] = {"station_id": pl.Series("station_id", np.asarray(station_ids, dtype=object), dtype=pl.Utf8)}
    for vi, var in enumerate(variables):
        for stat in STATS:
            cols[feature_column(var, stat)] = pl.Series(stats[stat][vi], dtype=pl.Float32, nan_to_null=True)
    return pl.DataFrame(cols)
