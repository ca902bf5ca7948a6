"""The station windows: taken from each lead while hrrr_fields decodes it, read by the grid
join in place of the whole grid only when they match the stored lead and the current station
list. Library functions on the real HRRR file, then the assets on a real instance."""

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from snoiq_assets.defs.hrrr.demo import DEMO_RUN_CONFIG
from snoiq_assets.lib.features import station_windows as sw
from snoiq_assets.lib.features.grid_join import GridFeatureError, window_arrays, windows_unusable
from snoiq_assets.lib.hrrr.accum import decode_lead, lead_version
from snoiq_assets.lib.hrrr.variables import resolve
from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets.lib.parquet import parquet_key_value_metadata
from snoiq_assets_tests.features import REAL_GRIB
from snoiq_assets_tests.features.test_grid_assets import PK, _mat, _read
from snoiq_assets_tests.features.test_grid_assets import prepared  # noqa: F401  (fixture)

WINDOWS = dg.AssetKey("hrrr_station_windows")
FIELDS = dg.AssetKey("hrrr_fields")
JOIN = dg.AssetKey("grid_join_features")
INDEX = dg.AssetKey("station_grid_index")
FIELDS_CONFIG = {"ops": {"hrrr_fields": DEMO_RUN_CONFIG[PK]["ops"]["hrrr_fields"]}}


@pytest.fixture(scope="module")
def real_lead() -> pa.Table:
    """The real APCP f12 lead (full CONUS grid) as hrrr_fields stores it."""
    table, _stats = decode_lead(REAL_GRIB, resolve(["apcp_kg_m2"]), 12)
    return table


def test_fields_version_is_the_same_for_both_engines_and_tracks_the_values(real_lead):
    version = sw.fields_version(real_lead.schema.metadata)
    assert len(version) == 24
    via_cfgrib, _ = decode_lead(REAL_GRIB, resolve(["apcp_kg_m2"]), 12, engine="cfgrib")
    assert via_cfgrib.schema.metadata[b"decode_engine"] == b"cfgrib"
    assert sw.fields_version(via_cfgrib.schema.metadata) == version
    # the version is a digest of the metadata and every column's statistics: other values, or
    # another source message, give another version
    table, stats = decode_lead(REAL_GRIB, resolve(["apcp_kg_m2"]), 12)
    md = dict(table.schema.metadata)
    assert lead_version(md, stats) == version
    nudged = {c: dict(s) for c, s in stats.items()}
    nudged["apcp_kg_m2"]["mean"] += 1e-9
    assert lead_version(md, nudged) != version
    assert lead_version({**md, b"messages": md[b"messages"].replace(b'"offset": 887244', b'"offset": 887245')}, stats) != version


def test_windows_hold_the_exact_values_at_the_window_cells(real_lead):
    cells = np.array([[5, 6, 7], [7, 8, -1], [1_905_000, 1_905_001, 1_905_002]])
    used = np.unique(cells[cells >= 0])
    windows = sw.take_windows(real_lead, used, "abc")
    assert windows.column_names == ["cell", *real_lead.column_names]
    assert windows.column("cell").to_pylist() == used.tolist()
    for name in real_lead.column_names:
        assert windows.column(name).equals(real_lead.column(name).take(pa.array(used))), name
        assert windows.schema.field(name).metadata == real_lead.schema.field(name).metadata
    md = windows.schema.metadata
    assert md[b"station_index_hash"] == b"abc" and md[b"window_cells"] == str(used.size).encode()
    assert sw.fields_version(md) == sw.fields_version(real_lead.schema.metadata)

    # the statistics' inputs are the same from the windows as from the whole grid
    variables = ["apcp_kg_m2"]
    from_windows, renumbered_w = window_arrays(windows, variables, cells)
    from_grid, renumbered_g = window_arrays(real_lead, variables, cells)
    assert np.array_equal(from_windows[0], from_grid[0], equal_nan=True)
    assert np.array_equal(renumbered_w, renumbered_g)
    assert renumbered_w[1, 2] == -1

    # usable for the lead it came from; not for another decode, nor for cells it lacks
    meta = {k.decode(): v.decode() for k, v in real_lead.schema.metadata.items()}
    assert windows_unusable(windows, meta, cells) is None
    assert windows_unusable(windows, {**meta, "fields_version": "0" * 24}, cells) == "taken from another decode of the lead"
    assert windows_unusable(windows, {k: v for k, v in meta.items() if k != "fields_version"}, cells) == \
        "the stored lead has no fields_version"
    wider = np.array([[4, 5, 6]])
    assert sw.positions_in(windows, wider) is None
    assert windows_unusable(windows, meta, wider) == "taken for another station list"
    with pytest.raises(GridFeatureError, match="lack cells of the current station_grid_index"):
        window_arrays(windows, variables, wider)


@pytest.mark.parametrize("cells", [np.array([3, 2]), np.array([1, 1]), np.array([-1, 2]), np.array([1_905_141])])
def test_take_windows_refuses_cells_that_are_not_distinct_ascending_grid_cells(real_lead, cells):
    with pytest.raises(ValueError, match="distinct, ascending and within the grid's 1905141 cells"):
        sw.take_windows(real_lead, cells, "x")


def _join(resources, instance):
    res = _mat([JOIN], resources, instance, partition_key=PK)
    assert res.success
    return res.asset_materializations_for_node("grid_join_features")[0].metadata


def test_the_join_reads_the_windows_when_they_match_and_the_whole_lead_otherwise(prepared, instance):  # noqa: F811
    store, resources = prepared
    windows_key = lead_object_key(WINDOWS, PK, 0)
    fields_key = lead_object_key(FIELDS, PK, 0)
    # hrrr_fields ran before any station index existed: no windows, the join reads the whole lead
    assert store.exists(fields_key) and not store.exists(windows_key)
    meta = _join(resources, instance)
    assert meta["leads_from_station_windows"].value == 0 and meta["leads_read_whole"].value == 1
    assert meta["read_whole_because"].value == {"no station windows stored": [f"{PK} f00"]}
    from_whole = _read(store, "grid_join_features", PK)
    first_version = sw.fields_version(_footer(store, fields_key))

    # decoded again with the index stored: the windows are written beside the fields
    res = _mat([FIELDS, WINDOWS], resources, instance, partition_key=PK, run_config=FIELDS_CONFIG)
    assert res.success
    index = _read(store, "station_grid_index")
    fields = _read(store, "hrrr_fields", PK)
    windows = pl.read_parquet(store.get(windows_key))
    expected_cells = np.unique([c for cells in index.filter(pl.col("included"))["window_cells"] for c in cells if c >= 0])
    assert windows["cell"].to_list() == expected_cells.tolist()
    assert_frame_equal(windows.drop("cell"), fields[expected_cells.tolist()])   # bit-exact values
    w_meta, f_meta = _footer(store, windows_key), _footer(store, fields_key)
    assert sw.fields_version(w_meta) == sw.fields_version(f_meta) == first_version   # the same file, the same version
    index_hash = _footer(store, "lake/station_grid_index.parquet")["inputs_hash"]
    assert w_meta["station_index_hash"] == index_hash
    mat = res.asset_materializations_for_node("hrrr_fields")
    assert {m.asset_key for m in mat} == {FIELDS, WINDOWS}
    assert next(m for m in mat if m.asset_key == WINDOWS).metadata["station_index_hash"].value == index_hash

    meta = _join(resources, instance)
    assert meta["leads_from_station_windows"].value == 1 and meta["leads_read_whole"].value == 0
    assert_frame_equal(_read(store, "grid_join_features", PK), from_whole)   # the same features either way

    # an unreadable windows file (cut short) is an access path lost, not a failed join: the
    # lead is read whole, with a warning naming the file; the file is left where it is
    good_windows = store.get(windows_key)
    store.put(windows_key, good_windows[: len(good_windows) // 2])
    res = _mat([JOIN], resources, instance, partition_key=PK)
    assert res.success
    meta = res.asset_materializations_for_node("grid_join_features")[0].metadata
    assert meta["read_whole_because"].value == {"unreadable station windows": [f"{PK} f00"]}
    warnings = [e.user_message for e in instance.all_logs(res.run_id) if e.level >= 30]
    assert any(f"the station windows {windows_key} cannot be read" in w for w in warnings), warnings
    assert_frame_equal(_read(store, "grid_join_features", PK), from_whole)
    assert store.exists(windows_key)
    store.put(windows_key, good_windows)

    # a wider window (another station index): the windows lack its cells, the lead is read whole
    assert _mat([INDEX], resources, instance, run_config={"ops": {"station_grid_index": {"config": {"window": 7}}}}).success
    meta = _join(resources, instance)
    assert meta["read_whole_because"].value == {"taken for another station list": [f"{PK} f00"]}
    wide = _read(store, "grid_join_features", PK)

    # the windows alone, taken again for the new index; the stored fields are left as they are
    fields_bytes = store.get(fields_key)
    res = _mat([WINDOWS], resources, instance, partition_key=PK, run_config=FIELDS_CONFIG)
    assert res.success
    assert [m.asset_key for m in res.asset_materializations_for_node("hrrr_fields")] == [WINDOWS]
    assert store.get(fields_key) == fields_bytes
    new_hash = _footer(store, "lake/station_grid_index.parquet")["inputs_hash"]
    assert new_hash != index_hash and _footer(store, windows_key)["station_index_hash"] == new_hash
    meta = _join(resources, instance)
    assert meta["leads_from_station_windows"].value == 1
    assert_frame_equal(_read(store, "grid_join_features", PK), wide)

    # the fields alone, decoded differently (one variable): the windows are now of another decode
    one_var = {"ops": {"hrrr_fields": {"config": {**FIELDS_CONFIG["ops"]["hrrr_fields"]["config"],
                                                  "variables": ["tmp_2m_k"]}}}}
    res = _mat([FIELDS], resources, instance, partition_key=PK, run_config=one_var)
    assert res.success
    assert [m.asset_key for m in res.asset_materializations_for_node("hrrr_fields")] == [FIELDS]
    meta = _join(resources, instance)
    assert meta["read_whole_because"].value == {"taken from another decode of the lead": [f"{PK} f00"]}
    assert [c for c in _read(store, "grid_join_features", PK).columns if c.endswith("__centre")] == ["tmp_2m_k__centre"]


def test_no_station_index_decodes_and_says_why_no_windows(tmp_path, instance):
    from snoiq_assets.defs.hrrr.demo import seed_demo as seed_hrrr
    from snoiq_assets_tests.features.test_grid_assets import _local_resources

    store, resources = _local_resources(tmp_path)
    seed_hrrr(store, synth_partitions=(PK,))
    assert _mat([dg.AssetKey("hrrr_grid")], resources, instance).success
    res = _mat([FIELDS, WINDOWS], resources, instance, partition_key=PK, run_config=FIELDS_CONFIG)
    assert res.success
    assert [m.asset_key for m in res.asset_materializations_for_node("hrrr_fields")] == [FIELDS]
    warnings = [e.user_message for e in instance.all_logs(res.run_id) if e.level >= 30]
    assert any("hrrr_station_windows not written: no station_grid_index is stored yet" in w for w in warnings)
    assert not store.exists(lead_object_key(WINDOWS, PK, 0))


def _footer(store, key) -> dict[str, str]:
    return parquet_key_value_metadata(store, key)


def test_a_failed_lead_in_a_range_keeps_the_good_leads_windows(tmp_path, instance):
    """One bad cycle of three: its GRIB quarantined, the good cycles' fields and windows written
    and recorded, the step failed naming the bad one; the join reads the good cycles' windows."""
    from snoiq_assets.lib.hrrr.rawkeys import partition_landing_key
    from snoiq_assets_tests.features.test_grid_assets import _local_resources, _prepare
    from snoiq_assets_tests.helpers import failure_messages

    pks = ["2023-01-01T00", "2023-01-01T01", "2023-01-01T02"]
    store, resources = _local_resources(tmp_path)
    _prepare(store, resources, instance, hrrr_partitions=pks)
    assert _mat([INDEX], resources, instance).success
    bad_key = partition_landing_key(pks[1], 0)
    store.put(bad_key, store.get(partition_landing_key(pks[0], 0)))   # another cycle's file
    config = {"leads": [0], "variables": ["tmp_2m_k"]}
    res = _mat([FIELDS, WINDOWS], resources, instance, raise_on_error=False,
               tags={"dagster/asset_partition_range_start": pks[0], "dagster/asset_partition_range_end": pks[2]},
               run_config={"ops": {"hrrr_fields": {"config": config}}})
    assert not res.success
    assert "hrrr_fields: 1 of 3 leads failed (2023-01-01T01 f00)" in failure_messages(res)
    assert store.exists("quarantine/" + bad_key)
    # this run recorded exactly the good cycles of both assets; T01's windows were never written
    # (its fields file is the earlier decode's, from before the GRIB was replaced)
    recorded = {(e.asset_key, e.partition) for e in res.get_asset_materialization_events()
                for e in [e.event_specific_data.materialization]}
    assert recorded == {(k, pk) for k in (FIELDS, WINDOWS) for pk in (pks[0], pks[2])}
    assert [store.exists(lead_object_key(WINDOWS, pk, 0)) for pk in pks] == [True, False, True]
    assert instance.get_materialized_partitions(WINDOWS) == {pks[0], pks[2]}
    # both spills' files were stored or removed: nothing is left in the spill folder
    spill = store.root / store.SPILL_DIR
    assert not spill.exists() or list(spill.iterdir()) == []
    res = _mat([JOIN], resources, instance, partition_key=pks[2])
    assert res.success
    assert res.asset_materializations_for_node("grid_join_features")[0].metadata["leads_from_station_windows"].value == 1
