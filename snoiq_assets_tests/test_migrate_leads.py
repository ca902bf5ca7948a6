"""The one-off migration of lake files written before leads had their own files, by the real CLI."""

import os
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from snoiq_assets.lib.lake import lead_object_key, partition_object_key, stored_partition_files
from snoiq_assets.lib.parquet import StoredParquet
from snoiq_assets.migrate_leads import MigrationError, migrate


def _put_parquet(store, key, table, tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    store.put_file(key, path)


def test_old_files_readable_then_migrated(store, settings_env, tmp_path):
    fields = pa.table({"tmp_2m_k": pa.array([270.5, 271.0], pa.float32())}).replace_schema_metadata(
        {"forecast_hour": "6", "valid_time": "2023-01-01T06:00:00+00:00"})
    old_fields = partition_object_key("hrrr_fields", "2023-01-01T00")
    _put_parquet(store, old_fields, fields, tmp_path)
    new_lead = pa.table({"tmp_2m_k": pa.array([260.0, 261.0], pa.float32())}).replace_schema_metadata(
        {"forecast_hour": "1"})
    _put_parquet(store, lead_object_key("hrrr_fields", "2023-01-01T00", 1), new_lead, tmp_path)
    join = pl.DataFrame({"station_id": ["A", "B"], "forecast_hour": [6, 6]}).cast({"forecast_hour": pl.Int32})
    old_join = partition_object_key("grid_join_features", "2023-01-01T00")
    _put_parquet(store, old_join, join.to_arrow(), tmp_path)

    # before the migration the old file reads as the lead its footer names, beside the new lead file
    whole, leads = stored_partition_files(store, "hrrr_fields")
    stored = StoredParquet("hrrr_fields", store, whole, leads)
    assert list(stored.leads("2023-01-01T00")) == [1, 6]
    assert stored.scan_lead("2023-01-01T00", 6).collect()["tmp_2m_k"].to_list() == [270.5, 271.0]
    assert stored.scan(["2023-01-01T00"]).collect().height == 4

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    dry = subprocess.run([sys.executable, "-m", "snoiq_assets.migrate_leads", "--dry-run"], env=env,
                         capture_output=True, text=True, check=True)
    assert f"would move {old_fields} -> lake/hrrr_fields/2023-01-01T00/f06.parquet" in dry.stdout
    assert f"would move {old_join} -> lake/grid_join_features/2023-01-01T00/f06.parquet" in dry.stdout
    assert store.exists(old_fields)
    done = subprocess.run([sys.executable, "-m", "snoiq_assets.migrate_leads"], env=env,
                          capture_output=True, text=True, check=True)
    assert "migrate_leads: 2 file(s) moved" in done.stdout
    assert not store.exists(old_fields) and not store.exists(old_join)
    with store.local_path(lead_object_key("hrrr_fields", "2023-01-01T00", 6)) as p:
        assert pq.read_table(p).equals(fields)
    assert migrate(store) == []    # nothing left to move


def test_migration_refuses_ambiguous_files(store, tmp_path):
    join = pl.DataFrame({"station_id": ["A", "B"], "forecast_hour": [0, 6]})
    _put_parquet(store, partition_object_key("grid_join_features", "2023-01-01T00"), join.to_arrow(), tmp_path)
    with pytest.raises(MigrationError, match=r"grid_join_features/2023-01-01T00.parquet holds forecast hours \[0, 6\]"):
        migrate(store)
