"""The analysis app's catalog reads the lake where the IO manager's layout puts it, on both backends."""

import polars as pl

from snoiq_assets.lib.analysis.catalog import Catalog
from snoiq_assets.lib.lake import write_partition


def test_lake_table_reads_whole_and_partitioned_assets(settings, store):
    write_partition(store, "experiments_summary", None, pl.DataFrame({"spec": ["a", "b"], "rmse": [1.0, 2.0]}))
    write_partition(store, "hourly_things", "2023-01-01T00", pl.DataFrame({"v": [1.0], "only_first": [7]}))
    write_partition(store, "hourly_things", "2023-01-01T01", pl.DataFrame({"v": [2.0]}))
    catalog = Catalog(settings, store)

    whole = catalog.table("experiments_summary")
    assert whole.found and whole.frame.sort("spec")["rmse"].to_list() == [1.0, 2.0]

    parts = catalog.lake_table("hourly_things")
    assert parts.source.startswith("2 file(s) under ")
    # Files of one asset with different columns are concatenated with nulls, not dropped.
    assert parts.frame.sort("v").rows() == [(1.0, 7), (2.0, None)]

    missing = catalog.table("no_such_table")
    assert not missing.found
    assert "no DuckDB file" in missing.source and "no_such_table" in missing.source
