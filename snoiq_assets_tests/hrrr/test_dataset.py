"""The xarray view: a landed GRIB2 file (through xarray + cfgrib) or a stored hrrr_fields
partition opens as an ``xarray.Dataset`` with the values the pipeline's default decode stores."""

import pyproj  # noqa: F401  isort: skip

import numpy as np
import pytest
import xarray as xr

from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.dataset import fields_dataset, open_landed_file, open_stored_partition
from snoiq_assets.lib.hrrr.decode import DEFAULT_ENGINE, decode_fields
from snoiq_assets.lib.hrrr.grid import grid_from_grib
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve
from snoiq_assets.lib.lake import LeadFrames, write_leads, write_partition

REAL = "hrrr/subset_20201214_hrrr.t00z.wrfsfcf12.grib2"


def test_real_landed_file_opens_through_cfgrib_with_the_default_decodes_values(sample_dir):
    path = sample_dir / REAL
    apcp = resolve(["apcp_kg_m2"])
    ds = open_landed_file(path, apcp, 12)
    assert isinstance(ds, xr.Dataset) and ds.attrs["decode_engine"] == "cfgrib"
    assert ds["apcp_kg_m2"].dims == ("y", "x") and ds["apcp_kg_m2"].shape == (1059, 1799)
    assert ds["apcp_kg_m2"].attrs["units"] == "kg m-2" and ds.attrs["forecast_hour"] == "12"
    assert ds.attrs["run_time"] == "2020-12-14T00:00:00+00:00"
    table, _ = decode_fields(path, apcp, 12)
    assert DEFAULT_ENGINE == "eccodes" and table.schema.metadata[b"decode_engine"] == b"eccodes"
    got = ds["apcp_kg_m2"].values
    assert got.dtype == np.float32
    assert np.array_equal(got.ravel(), table.column("apcp_kg_m2").to_numpy(), equal_nan=True)
    assert float(np.nanmax(got)) == pytest.approx(135.36, abs=1e-3)
    # cfgrib on its own (no checks of ours) reads the same field, in the same (y, x) layout
    raw = xr.open_dataset(path, engine="cfgrib", indexpath="",
                          backend_kwargs={"filter_by_keys": {"stepType": "accum", "startStep": 0}})
    assert np.array_equal(got, raw["tp"].values.astype(np.float32), equal_nan=True)
    grid = grid_from_grib(path)
    assert np.array_equal(ds["latitude"].values, grid.lats) and np.array_equal(ds["longitude"].values, grid.lons)


def test_stored_partition_opens_as_a_dataset(store, hrrr_hour):
    variables = resolve(DEFAULT_VARIABLES)
    table, _ = decode_fields(hrrr_hour, variables, 0)
    grid = grid_from_grib(hrrr_hour)
    write_partition(store, "hrrr_grid", None, grid.to_table())
    write_leads(store, "hrrr_fields", "2023-01-01T00", LeadFrames({0: table}))
    ds = open_stored_partition(store, "2023-01-01T00", 0)
    assert list(ds.data_vars) == list(DEFAULT_VARIABLES)
    assert ds.attrs["valid_time"] == "2023-01-01T00:00:00+00:00" and ds.attrs["grid_id"] == grid.grid_id
    for column in DEFAULT_VARIABLES:
        assert np.array_equal(ds[column].values.ravel(), table.column(column).to_numpy(), equal_nan=True), column
    # the same values as the landed file opened through cfgrib
    landed = open_landed_file(hrrr_hour, variables, 0, grid=grid)
    for column in DEFAULT_VARIABLES:
        assert np.array_equal(ds[column].values, landed[column].values, equal_nan=True), column


def test_fields_on_another_grid_are_refused(sample_dir, hrrr_hour, gfs):
    table, _ = decode_fields(hrrr_hour, resolve(["tmp_2m_k"]), 0)
    with pytest.raises(HrrrDataError, match=r"lake/x\.parquet: 1905141 rows do not fill the grid; expected 73x144"):
        fields_dataset(table, grid_from_grib(gfs), "lake/x.parquet")
    other = grid_from_grib(sample_dir / REAL)
    other.grid_id = "0" * 64
    with pytest.raises(HrrrDataError, match="the fields are on another grid"):
        fields_dataset(table, other, "lake/x.parquet")
