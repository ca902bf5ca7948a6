"""The partition-aware Parquet IO manager, through real materialisations on both backends."""

import dagster as dg
import polars as pl
import pyarrow as pa
import pytest

from snoiq_assets.lib.lake import LakeError, partition_object_key, stored_metadata, stored_partition_keys, write_partition
from snoiq_assets.lib.parquet import ParquetError, StoredParquet
from snoiq_assets_tests.helpers import failure_messages

hourly = dg.HourlyPartitionsDefinition(start_date="2024-01-01T00", end_date="2024-01-02T00", fmt="%Y-%m-%dT%H")


@dg.asset(partitions_def=hourly, backfill_policy=dg.BackfillPolicy.single_run())
def hourly_frame(context: dg.AssetExecutionContext):
    # One run may cover a range: return one frame per partition key.
    return {
        key: pl.DataFrame({"hour": [key] * 3, "v": [i, i + 1, i + 2]})
        for i, key in enumerate(context.partition_keys)
    }


@dg.asset
def all_hours(hourly_frame: pl.LazyFrame) -> pl.DataFrame:
    return hourly_frame.group_by("hour").agg(pl.col("v").sum()).sort("hour").collect()


@dg.asset(partitions_def=hourly, ins={"hourly_frame": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1))})
def two_hours(hourly_frame: dict[str, pl.LazyFrame]) -> pl.DataFrame:
    return pl.DataFrame({"keys": sorted(hourly_frame), "rows": [hourly_frame[k].collect().height for k in sorted(hourly_frame)]})


@dg.asset
def with_units() -> pa.Table:
    table = pa.table({"tmp_2m": pa.array([270.5, 271.0], pa.float32())})
    return table.replace_schema_metadata({"units": '{"tmp_2m": "K"}', "grid_id": "abc"})


def test_single_run_backfill_writes_one_file_per_partition(resources, instance, store):
    keys = ["2024-01-01T00", "2024-01-01T01", "2024-01-01T02"]
    result = dg.materialize(
        [hourly_frame], resources=resources, instance=instance,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    assert result.success
    stored = sorted(o.key for o in store.list("lake/hourly_frame/"))
    assert stored == [f"lake/hourly_frame/{k}.parquet" for k in keys]
    mats = {m.partition: m.metadata for m in result.asset_materializations_for_node("hourly_frame")}
    assert sorted(mats) == keys
    # Each partition's materialisation carries its own file and row count, not the range's.
    for key in keys:
        assert mats[key]["partitions_written"].value == 3
        assert mats[key]["dagster/row_count"].value == 3
        assert mats[key]["uri"].value == store.uri(f"lake/hourly_frame/{key}.parquet")
        assert mats[key]["size_bytes"].value == store.stat(f"lake/hourly_frame/{key}.parquet").size
    # The column schema, the same for the whole range, is on the last partition only, which is
    # the asset's latest materialisation (the one whose schema the UI shows).
    assert [k for k in keys if "dagster/column_schema" in mats[k]] == [keys[-1]]
    assert [c.name for c in mats[keys[-1]]["dagster/column_schema"].value.columns] == ["hour", "v"]
    latest = instance.fetch_materializations(dg.AssetKey("hourly_frame"), limit=1).records[0]
    assert latest.partition_key == keys[-1]
    assert "dagster/column_schema" in latest.asset_materialization.metadata
    # Each file holds exactly its own partition.
    for i, key in enumerate(keys):
        with store.local_path(f"lake/hourly_frame/{key}.parquet") as path:
            df = pl.read_parquet(path)
        assert df["hour"].unique().to_list() == [key] and df["v"].to_list() == [i, i + 1, i + 2]


def test_downstream_loads_all_partitions_lazily(resources, instance):
    for key in ["2024-01-01T00", "2024-01-01T05"]:
        assert dg.materialize([hourly_frame], resources=resources, instance=instance, partition_key=key).success
    # An unpartitioned consumer of an hourly asset sees only the materialised partitions
    # when told missing ones are fine; by default a gap is an error naming the partitions.
    result = dg.materialize(
        [hourly_frame, all_hours], selection=[all_hours], resources=resources, instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    assert "hourly_frame has no stored data for" in failure_messages(result)

    @dg.asset(ins={"hourly_frame": dg.AssetIn(metadata={"allow_missing_partitions": True})})
    def stored_hours(hourly_frame: pl.LazyFrame) -> pl.DataFrame:
        return hourly_frame.group_by("hour").agg(pl.col("v").sum()).sort("hour").collect()

    result = dg.materialize([hourly_frame, stored_hours], selection=[stored_hours], resources=resources, instance=instance)
    out = result.output_for_node("stored_hours")
    assert out["hour"].to_list() == ["2024-01-01T00", "2024-01-01T05"] and out["v"].to_list() == [3, 3]


def test_range_input_as_dict_per_partition(resources, instance):
    for key in ["2024-01-01T03", "2024-01-01T04"]:
        dg.materialize([hourly_frame], resources=resources, instance=instance, partition_key=key)
    result = dg.materialize([hourly_frame, two_hours], selection=[two_hours], resources=resources,
                            instance=instance, partition_key="2024-01-01T04")
    out = result.output_for_node("two_hours")
    assert out["keys"].to_list() == ["2024-01-01T03", "2024-01-01T04"] and out["rows"].to_list() == [3, 3]


def test_arrow_schema_metadata_is_kept(resources, instance):
    assert dg.materialize([with_units], resources=resources, instance=instance).success
    md = stored_metadata(resources["store"].get_store(), dg.AssetKey("with_units"), None)
    assert md["units"] == '{"tmp_2m": "K"}' and md["grid_id"] == "abc"


def test_multi_partition_output_must_be_a_dict(resources, instance):
    @dg.asset(partitions_def=hourly, backfill_policy=dg.BackfillPolicy.single_run(), name="hourly_frame")
    def not_a_dict(context):
        return pl.DataFrame({"v": [1]})

    result = dg.materialize(
        [not_a_dict], resources=resources, instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2024-01-01T00", "dagster/asset_partition_range_end": "2024-01-01T01"},
    )
    assert not result.success
    assert "return a dict {partition_key: frame}" in failure_messages(result)


def test_failed_output_leaves_previous_partition_intact(resources, instance, store):
    assert dg.materialize([hourly_frame], resources=resources, instance=instance, partition_key="2024-01-01T00").success
    before = store.get("lake/hourly_frame/2024-01-01T00.parquet")

    @dg.asset(partitions_def=hourly, name="hourly_frame")
    def unstorable(context):
        return object()  # not a frame: the IO manager must refuse before writing anything

    result = dg.materialize([unstorable], resources=resources, instance=instance,
                            partition_key="2024-01-01T00", raise_on_error=False)
    assert not result.success
    assert "cannot store a object as Parquet" in failure_messages(result)
    assert store.get("lake/hourly_frame/2024-01-01T00.parquet") == before


def test_object_key_layout():
    assert partition_object_key(dg.AssetKey(["hrrr", "fields"]), "2024-01-01T00") == "lake/hrrr/fields/2024-01-01T00.parquet"
    assert partition_object_key(dg.AssetKey("station_metadata"), None) == "lake/station_metadata.parquet"


def test_lake_layout_and_stored_parquet_without_dagster(store):
    """lib/lake.py and lib/parquet.py on their own: where outputs live, and the handle an asset
    gets for a subset of partitions or their footers (ranged reads, no download)."""
    frame = pa.table({"v": pa.array([1.0, 2.0], pa.float32())}).replace_schema_metadata({"grid_id": "g1"})
    for pk in ("2024-01-01T00", "2024-01-01T01", "2024-02-01T00"):
        rows, size, uri = write_partition(store, "fields", pk, frame)
        assert rows == 2 and size > 0 and uri.endswith(f"lake/fields/{pk}.parquet")
    store.put("lake/fields/notes.txt", b"not a partition")
    assert stored_partition_keys(store, "fields") == {"2024-01-01T00", "2024-01-01T01", "2024-02-01T00"}
    assert stored_metadata(store, "fields", "2024-01-01T01") == {"grid_id": "g1"}

    keys = {pk: partition_object_key("fields", pk) for pk in ("2024-02-01T00", "2024-01-01T00")}
    stored = StoredParquet("fields", store, keys)
    assert stored.partition_keys == ["2024-01-01T00", "2024-02-01T00"] and bool(stored)
    assert stored.scan().collect()["v"].to_list() == [1.0, 2.0, 1.0, 2.0]
    assert stored.read("2024-02-01T00").height == 2 and stored.metadata("2024-01-01T00")["grid_id"] == "g1"
    with pytest.raises(ParquetError, match="fields has no stored partition 2024-01-01T01"):
        stored.scan(["2024-01-01T01"])
    store.put("lake/broken.parquet", b"PAR1 truncated")
    with pytest.raises(ParquetError, match="is not a Parquet file"):
        stored_metadata(store, "broken")
    with pytest.raises(LakeError, match="cannot store a dict as Parquet"):
        write_partition(store, "fields", "2024-01-01T02", {"v": [1]})


def test_few_partitions_are_looked_up_one_by_one_with_the_same_answer(store):
    """``stored_files_of`` (an input of a few partitions) finds exactly what the whole-asset
    listing finds for them: whole files, lead files, both (a pending migration), and nothing
    for a partition that is not stored or a look-alike file that is not a lead."""
    from snoiq_assets.lib.lake import stored_files_of, stored_partition_files

    frame = pa.table({"v": pa.array([1.0], pa.float32())})
    write_partition(store, "fields", "2024-01-01T00", frame)
    for pk, fh in (("2024-01-01T01", 0), ("2024-01-01T01", 1), ("2024-01-01T00", 3), ("2024-01-01T02", 12)):
        store.put(f"lake/fields/{pk}/f{fh:02d}.parquet", b"PAR1")
    store.put("lake/fields/2024-01-01T02/notes.txt", b"x")
    store.put("lake/fields/2024-01-01T02/old/f01.parquet", b"PAR1")
    store.put("lake/fields/2024-01-01T010.parquet", b"PAR1")   # shares a prefix with 2024-01-01T01
    whole, leads = stored_partition_files(store, "fields")
    asked = ["2024-01-01T00", "2024-01-01T01", "2024-01-01T02", "2024-01-01T05"]
    few_whole, few_leads = stored_files_of(store, "fields", asked)
    assert few_whole == {pk: k for pk, k in whole.items() if pk in asked} == {
        "2024-01-01T00": "lake/fields/2024-01-01T00.parquet"}
    assert few_leads == {pk: v for pk, v in leads.items() if pk in asked} == {
        "2024-01-01T00": {3: "lake/fields/2024-01-01T00/f03.parquet"},
        "2024-01-01T01": {0: "lake/fields/2024-01-01T01/f00.parquet", 1: "lake/fields/2024-01-01T01/f01.parquet"},
        "2024-01-01T02": {12: "lake/fields/2024-01-01T02/f12.parquet"}}


def test_an_input_of_one_hour_does_not_list_the_whole_asset(resources, instance, store, monkeypatch):
    """A run reading one partition looks at that partition only (a year-long lake holds 166,000
    lead files per hourly asset); one reading every stored hour lists the asset once."""

    for key in ["2024-01-01T03", "2024-01-01T04", "2024-01-01T09"]:
        assert dg.materialize([hourly_frame], resources=resources, instance=instance, partition_key=key).success
    listed: list[str] = []
    real_list = type(store).list

    def counting_list(self, prefix=""):
        listed.append(prefix)
        return real_list(self, prefix)

    monkeypatch.setattr(type(store), "list", counting_list)
    out = dg.materialize([hourly_frame, two_hours], selection=[two_hours], resources=resources, instance=instance,
                         partition_key="2024-01-01T04").output_for_node("two_hours")
    assert out["keys"].to_list() == ["2024-01-01T03", "2024-01-01T04"]
    assert "lake/hourly_frame/" not in listed
    assert {"lake/hourly_frame/2024-01-01T03/", "lake/hourly_frame/2024-01-01T04/"} <= set(listed)

    @dg.asset(ins={"hourly_frame": dg.AssetIn(metadata={"allow_missing_partitions": True})})
    def stored_hours(hourly_frame: pl.LazyFrame) -> pl.DataFrame:
        return hourly_frame.select("hour").unique().sort("hour").collect()

    # this test's partitions span one day (24 hours, within the limit): with a lower limit, as
    # an input of every stored hour of the archive is, the asset is listed once
    from snoiq_assets.defs import io_manager

    monkeypatch.setattr(io_manager, "PER_PARTITION_LISTING_MAX", 8)
    listed.clear()
    out = dg.materialize([hourly_frame, stored_hours], selection=[stored_hours], resources=resources,
                         instance=instance).output_for_node("stored_hours")
    assert out["hour"].to_list() == ["2024-01-01T03", "2024-01-01T04", "2024-01-01T09"]
    assert listed == ["lake/hourly_frame/"]
