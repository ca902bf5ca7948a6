"""Window statistics for every station and variable in one vectorised numpy gather.

``fields`` is ``(n_vars, n_cells)`` float32, each variable's grid flattened row-major as
``hrrr_fields`` stores it (a 2-D array, or n_vars zero-copy column views so the grid is never
copied); ``cells`` is ``(n_stations, k*k)`` int64 from the station grid index (window layout:
rows south -> north, each row west -> east; ``-1`` = off the grid). ``fields[v][cells]`` pulls
every station's window at once (no loop over stations); off-grid cells (and NaN values in the
field) become NaN and are ignored by every statistic.

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

SORT_ABOVE = 2_000  # stations; above this the gather runs in grid order
STATS = ("centre", "mean", "min", "max", "std", "grad_we", "grad_sn")


class NeighbourhoodError(ValueError):
    pass


def feature_column(var: str, stat: str) -> str:
    return f"{var}__{stat}"


def _columns(fields) -> list[np.ndarray]:
    if isinstance(fields, np.ndarray):
        if fields.ndim != 2:
            raise NeighbourhoodError(f"fields must be (n_vars, n_cells), got shape {fields.shape}")
        return list(fields)
    columns = [np.asarray(f) for f in fields]
    if not columns or any(c.ndim != 1 for c in columns) or len({c.size for c in columns}) != 1:
        raise NeighbourhoodError("fields must be (n_vars, n_cells): 1-D arrays of one length")
    return columns


def _gather_cells_first(fields, cells: np.ndarray) -> np.ndarray:
    """(n_vars, k*k, n_stations) float32: window cell on the middle axis, so every reduction
    over the window adds contiguous station rows (SIMD-friendly)."""
    columns = _columns(fields)
    n_cells = columns[0].size
    cells = np.asarray(cells, dtype=np.int64)
    if cells.size and cells.max() >= n_cells:
        raise NeighbourhoodError(
            f"window cell index {int(cells.max())} is beyond the field's {n_cells} cells: "
            "the index was built on another grid"
        )
    off = cells < 0  # (n, kk)
    safe = np.where(off, 0, cells)
    n_st, kk = safe.shape
    vals = np.empty((len(columns), kk, n_st), dtype=np.float32)
    if n_st > SORT_ABOVE:
        # Visit the grid in memory order (fewer cache/TLB misses on a 7.6 MB field), then put
        # the stations back in their order.
        order = np.argsort(safe[:, kk // 2], kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        sorted_safe = safe[order]
        for v, col in enumerate(columns):
            vals[v] = col[sorted_safe][inverse].T
    else:
        for v, col in enumerate(columns):
            # one fancy-index gather per variable, all stations at once; station-major, so a
            # window row's adjacent cells share cache lines
            vals[v] = col[safe].T
    if off.any():
        vals[:, off.T] = np.nan
    return vals


def gather(fields, cells: np.ndarray) -> np.ndarray:
    """(n_vars, n_stations, k*k) float32 window values; NaN where the cell is off the grid.

    ``fields`` is a (n_vars, n_cells) array, or a sequence of n_vars 1-D (n_cells,) arrays
    (e.g. zero-copy views of a frame's columns, which spares copying the whole grid).
    """
    return _gather_cells_first(fields, cells).transpose(0, 2, 1)


def _masked_stats(vals: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """NaN-aware statistics over the last axis of (m, k*k) windows (NaN = ignore)."""
    valid = ~np.isnan(vals)
    cnt = valid.sum(axis=-1)
    zeroed = np.where(valid, vals, np.float32(0)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = zeroed.sum(axis=-1) / cnt
        dev = np.where(valid, vals - mean[..., None], 0.0)
        std = np.sqrt((dev * dev).sum(axis=-1) / cnt)
        vmin = np.where(valid, vals, np.inf).min(axis=-1)
        vmax = np.where(valid, vals, -np.inf).max(axis=-1)
        vmin[cnt == 0] = np.nan
        vmax[cnt == 0] = np.nan
        g, gv = zeroed.reshape(-1, k, k), valid.reshape(-1, k, k)  # [m, row S->N, col W->E]
        east = g[:, :, -1].sum(-1) / gv[:, :, -1].sum(-1)
        west = g[:, :, 0].sum(-1) / gv[:, :, 0].sum(-1)
        north = g[:, -1, :].sum(-1) / gv[:, -1, :].sum(-1)
        south = g[:, 0, :].sum(-1) / gv[:, 0, :].sum(-1)
    steps = k - 1 if k > 1 else np.nan
    return {"mean": mean, "min": vmin, "max": vmax, "std": std,
            "grad_we": (east - west) / steps, "grad_sn": (north - south) / steps}


def window_stats(fields, cells: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Every statistic in ``STATS`` as a (n_vars, n_stations) float32 array.

    Windows without any NaN (the usual case) take plain numpy reductions; only the few
    windows with off-grid or missing cells go through the NaN-aware path.
    """
    n_st, kk = np.shape(cells) if np.ndim(cells) == 2 else (0, 0)
    if kk != k * k:
        raise NeighbourhoodError(f"cells must be (n_stations, {k * k}) for a {k}x{k} window, got {np.shape(cells)}")
    vals = _gather_cells_first(fields, cells)  # (v, kk, n) float32
    grid = vals.reshape(vals.shape[0], k, k, n_st)  # [v, row S->N, col W->E, n]
    inv_k = np.float32(1.0 / k)
    mean = vals.sum(axis=1) / np.float32(kk)
    dev = vals - mean[:, None, :]
    with np.errstate(invalid="ignore"):
        steps = np.float32(k - 1) if k > 1 else np.float32(np.nan)
        out = {
            "centre": vals[:, kk // 2, :],
            "mean": mean,
            "min": vals.min(axis=1),
            "max": vals.max(axis=1),
            "std": np.sqrt(np.einsum("vjn,vjn->vn", dev, dev) / np.float32(kk)),
            "grad_we": (grid[:, :, -1, :].sum(axis=1) - grid[:, :, 0, :].sum(axis=1)) * inv_k / steps,
            "grad_sn": (grid[:, -1, :, :].sum(axis=1) - grid[:, 0, :, :].sum(axis=1)) * inv_k / steps,
        }
    partial = np.isnan(vals).any(axis=1)  # (v, n): windows with an off-grid or missing cell
    if partial.any():
        fixed = _masked_stats(vals.transpose(0, 2, 1)[partial], k)
        for name, arr in fixed.items():
            out[name][partial] = arr
    return {name: np.ascontiguousarray(arr, dtype=np.float32) for name, arr in out.items()}


def fields_matrix(frame: pl.DataFrame, variables: list[str]) -> np.ndarray:
    """(n_vars, n_cells) float32 from a one-row-per-cell frame (no copy when Polars can avoid it)."""
    missing = [v for v in variables if v not in frame.columns]
    if missing:
        raise NeighbourhoodError(f"field frame lacks variable column(s) {missing}")
    arr = frame.select([pl.col(v).cast(pl.Float32) for v in variables]).to_numpy(order="fortran")
    return arr.T  # C-contiguous (n_vars, n_cells) view of the Fortran (n_cells, n_vars) array


def field_arrays(frame: pl.DataFrame, variables: list[str]) -> list[np.ndarray]:
    """One 1-D float32 array per variable, zero-copy views of the frame's columns where Polars
    allows (float32, no nulls); nulls become NaN."""
    missing = [v for v in variables if v not in frame.columns]
    if missing:
        raise NeighbourhoodError(f"field frame lacks variable column(s) {missing}")
    return [frame[v].cast(pl.Float32).to_numpy() for v in variables]


def station_features(station_ids: np.ndarray, fields: np.ndarray, variables: list[str],
                     cells: np.ndarray, k: int) -> pl.DataFrame:
    """One row per station: station_id then ``<var>__<stat>`` for every variable and statistic
    (NaN stored as null)."""
    if len(variables) != len(fields):
        raise NeighbourhoodError(f"{len(variables)} variable names for {len(fields)} fields")
    stats = window_stats(fields, cells, k)
    series = [pl.Series("station_id", np.asarray(station_ids, dtype=object), dtype=pl.Utf8)]
    for vi, var in enumerate(variables):
        for stat in STATS:
            series.append(pl.Series(feature_column(var, stat), stats[stat][vi], dtype=pl.Float32, nan_to_null=True))
    return pl.DataFrame(series)
