"""Station windows: one HRRR lead's values at only the grid cells the stations' k x k windows
use, taken while the decoded lead is still in memory (``hrrr_fields`` writes them as
``hrrr_station_windows``), so that the grid join reads a few thousand cells instead of the whole
1.9-million-cell grid of every variable.

A windows table has a ``cell`` column (the row-major grid cell, ascending, distinct) and every
column of the lead, values exactly as stored in ``hrrr_fields`` (a ``take`` of its rows). Its
schema metadata is the lead's (grid id, times, units, and its ``fields_version``) plus
``station_index_hash`` (the ``inputs_hash`` of the ``station_grid_index`` whose windows were
taken) and ``window_cells`` (their count).

The join uses a windows table only when it matches the stored lead (the same
``fields_version``) and holds every cell the current index needs (``positions_in``); otherwise
it reads the whole stored lead: windows are an access path, never a second source of values.
No Dagster here.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from snoiq_assets.lib.features import grid_index as gi
from snoiq_assets.lib.hrrr.accum import FIELDS_VERSION   # the lead's content identity, in both files' metadata

CELL_COLUMN = "cell"


def window_cells(index: pl.DataFrame) -> np.ndarray:
    """The distinct on-grid cells of every included station's window, ascending (int64)."""
    _ids, cells, _k = gi.index_window_arrays(index)
    return np.unique(cells[cells >= 0])


def take_windows(lead: pa.Table, cells: np.ndarray, station_index_hash: str) -> pa.Table:
    """``lead`` (one decoded lead, one row per grid cell in row-major order) at ``cells`` only,
    with a leading ``cell`` column; the lead's schema and field metadata are kept."""
    cells = np.asarray(cells, dtype=np.int64)
    if cells.size and (cells[0] < 0 or cells[-1] >= lead.num_rows or np.any(np.diff(cells) <= 0)):
        raise ValueError(f"window cells must be distinct, ascending and within the grid's {lead.num_rows} cells")
    taken = lead.take(pa.array(cells))
    table = taken.add_column(0, pa.field(CELL_COLUMN, pa.int64()), pa.array(cells))
    md = dict(lead.schema.metadata or {})
    md[b"station_index_hash"] = station_index_hash.encode()
    md[b"window_cells"] = str(int(cells.size)).encode()
    return table.replace_schema_metadata(md)


def fields_version(metadata: dict[bytes, bytes] | dict[str, str] | None) -> str:
    """The ``fields_version`` in a lead's (or its windows') schema metadata; "" when absent
    (a lead written before windows existed)."""
    if not metadata:
        return ""
    value = metadata.get(FIELDS_VERSION, metadata.get(FIELDS_VERSION.encode(), ""))  # type: ignore[call-overload]
    return value.decode() if isinstance(value, bytes) else str(value)


def positions_in(windows: pa.Table, cells: np.ndarray) -> np.ndarray | None:
    """``cells`` (any shape; -1 = off the grid, kept) renumbered to rows of ``windows``, or None
    when the windows lack any of them (taken for another station list)."""
    have = np.asarray(windows.column(CELL_COLUMN).to_numpy(), dtype=np.int64)
    on_grid = cells >= 0
    pos = np.searchsorted(have, np.where(on_grid, cells, 0))
    found = pos < have.size
    found[found] = have[pos[found]] == np.where(on_grid, cells, 0)[found]
    if not np.all(found | ~on_grid):
        return None
    return np.where(on_grid, pos, -1)
