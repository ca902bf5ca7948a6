"""HRRR fields as an ``xarray.Dataset``: a landed GRIB2 file through xarray + cfgrib, or a
stored ``hrrr_fields`` partition from the lake.

The pipeline decodes with ecCodes directly (``decode.decode_fields``' default engine, messages
in parallel threads); these functions are for users who want the xarray view. Both give one
data variable per catalogue column on dims ``(y, x)`` (the grid's rows and columns, as
``hrrr_grid``), ``latitude``/``longitude`` coordinates, each variable's ``units`` and GRIB source
in its attributes, and the partition's ``run_time``, ``valid_time``, ``forecast_hour``,
``grid_id`` and ``decode_engine`` in the dataset's attributes. Missing points are NaN.

    ds = open_landed_file("hrrr.t00z.wrfsfcf12.grib2", resolve(["apcp_kg_m2"]), 12)
    ds = open_stored_partition(store_from_settings(settings), "2020-12-14T00", 12)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.grid import GridDefinition, grid_from_grib, grid_from_table
from snoiq_assets.lib.hrrr.variables import Variable
from snoiq_assets.lib.lake import lead_object_key, partition_object_key
from snoiq_assets.lib.storage import ObjectStore


def fields_dataset(table: pa.Table, grid: GridDefinition, name: str = "fields"):
    """Decoded fields (``decode_fields``' table, or a stored partition read back) on ``grid``.

    The table's rows must be the grid's cells in order, and its ``grid_id`` (when it has one)
    the grid's: otherwise ``HrrrDataError`` naming ``name``."""
    import xarray as xr

    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    ny, nx = grid.shape
    if table.num_rows != ny * nx:
        raise HrrrDataError(name, f"{table.num_rows} rows do not fill the grid", expected=f"{ny}x{nx} = {ny * nx} rows")
    if meta.get("grid_id", grid.grid_id) != grid.grid_id:
        raise HrrrDataError(name, "the fields are on another grid", expected=f"grid_id {grid.grid_id[:16]}…",
                            found=f"grid_id {meta['grid_id'][:16]}…")
    units = json.loads(meta.get("units", "{}"))
    sources = json.loads(meta.get("messages", "{}"))
    data_vars = {}
    for column in [f.name for f in table.schema if pa.types.is_floating(f.type)]:
        # nulls (missing points) become NaN: the float columns are what decode_fields wrote
        values = table.column(column).to_numpy().astype(np.float32, copy=False).reshape(ny, nx)
        attrs = {"units": units.get(column, "")}
        if column in sources:
            attrs.update({f"GRIB_{k}": v for k, v in sources[column].items()})
        data_vars[column] = (("y", "x"), values, attrs)
    coords = {"latitude": (("y", "x"), grid.lats), "longitude": (("y", "x"), grid.lons)}
    attrs = {k: meta[k] for k in ("run_time", "valid_time", "forecast_hour", "grid_id", "decode_engine") if k in meta}
    attrs["projection"] = json.dumps(grid.projection, sort_keys=True)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def open_landed_file(path: str | Path, variables: list[Variable], forecast_hour: int, *,
                     grid: GridDefinition | None = None, **checks):
    """A landed GRIB2 file as an ``xarray.Dataset``, decoded by xarray + cfgrib.

    Runs every check of ``decode_fields`` (``checks``: ``expected_grid_id``, ``idx``, ``name``,
    ``run_time``) with its ``"cfgrib"`` engine, so the values are those the pipeline stores.
    ``grid``: the grid's coordinates (default: read from the file's first message).
    """
    from snoiq_assets.lib.hrrr.decode import decode_fields

    table, _ = decode_fields(path, variables, forecast_hour, engine="cfgrib", **checks)
    return fields_dataset(table, grid or grid_from_grib(path), checks.get("name") or str(path))


def open_stored_partition(store: ObjectStore, partition_key: str, forecast_hour: int = 0, *,
                          asset: str = "hrrr_fields", grid_asset: str = "hrrr_grid"):
    """One stored lead of a cycle partition of ``asset`` (from the lake of ``store``) as an
    ``xarray.Dataset``, with the coordinates of the stored ``grid_asset``. A cycle file written
    before leads had their own files is read when it holds that lead."""
    key = lead_object_key(asset, partition_key, forecast_hour)
    if not store.exists(key) and store.exists(partition_object_key(asset, partition_key)):
        key = partition_object_key(asset, partition_key)
    with store.local_path(partition_object_key(grid_asset, None)) as path:
        grid = grid_from_table(pq.read_table(path))
    with store.local_path(key) as path:
        table = pq.read_table(path)
    stored_lead = (table.schema.metadata or {}).get(b"forecast_hour", b"").decode()
    if stored_lead != str(forecast_hour):
        raise HrrrDataError(key, f"holds lead f{stored_lead or '?'}, not the lead asked for",
                            expected=f"f{forecast_hour:02d}", found=f"f{stored_lead}")
    return fields_dataset(table, grid, key)
