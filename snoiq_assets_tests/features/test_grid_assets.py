"""station_grid_index and grid_join_features materialised on a real instance, after the real
HRRR and station assets, on both storage backends; and their bad-input paths."""

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
import pytest

from snoiq_assets.defs.features.assets import grid_join_features, station_grid_index
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid
from snoiq_assets.defs.hrrr.demo import DEMO_RUN_CONFIG
from snoiq_assets.defs.hrrr.demo import seed_demo as seed_hrrr
from snoiq_assets.lib.lake import lead_object_key, partition_object_key, stored_metadata
from snoiq_assets.defs.stations.assets import register_station_files
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, station_metadata
from snoiq_assets.defs.stations.demo import seed_demo as seed_stations
from snoiq_assets.lib.features.neighbourhood import STATS
from snoiq_assets.lib.stations.schema import VARIABLES as OBS_VARIABLES
from snoiq_assets_tests.features import REPO

PK = "2023-01-01T01"  # synthetic ten-variable hour on the real grid; overlaps the USCRN Nunn file
INDEX = dg.AssetKey("station_grid_index")
JOIN = dg.AssetKey("grid_join_features")


ASSETS = [hrrr_grid, hrrr_fields, station_metadata, observations_raw, observations_clean, station_grid_index,
          grid_join_features]


def _mat(selection, resources, instance, **kwargs):
    return dg.materialize(ASSETS, selection=selection, resources=resources, instance=instance, **kwargs)


def _read(store, name: str, pk=None) -> pl.DataFrame:
    # hrrr_fields and grid_join_features keep one file per lead; these tests decode f00
    lead_keyed = name in ("hrrr_fields", "grid_join_features")
    key = lead_object_key(name, pk, 0) if lead_keyed else partition_object_key(dg.AssetKey(name), pk)
    return pl.read_parquet(store.get(key))


def _prepare(store, resources, instance, hrrr_partitions=(PK,)):
    """Seed the raw zone and materialise the upstream HRRR and station assets."""
    seed_hrrr(store, synth_partitions=hrrr_partitions)
    seed_stations(store)
    register_station_files(instance, store)
    assert _mat([hrrr_grid], resources, instance).success
    for pk in hrrr_partitions:
        assert _mat([hrrr_fields], resources, instance, partition_key=pk,
                              run_config={"ops": {"hrrr_fields": DEMO_RUN_CONFIG[pk]["ops"]["hrrr_fields"]}}).success
    assert _mat([station_metadata], resources, instance).success
    for pk in ("94074", "GRB"):
        assert _mat([observations_raw, observations_clean], resources, instance, partition_key=pk).success


def _failure_text(result) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


def test_index_and_hourly_features_end_to_end(store, resources, instance):
    _prepare(store, resources, instance)
    res = _mat([station_grid_index], resources, instance)
    assert res.success
    mat = res.asset_materializations_for_node("station_grid_index")[0]
    assert mat.metadata["reused"].value is False
    version = mat.tags["dagster/data_version"]

    index = _read(store, "station_grid_index")
    stations = _read(store, "station_metadata")
    assert index["station_id"].sort().to_list() == stations["station_id"].sort().to_list()
    meta = stored_metadata(resources["store"].get_store(), INDEX, None)
    grid_meta = stored_metadata(resources["store"].get_store(), dg.AssetKey("hrrr_grid"), None)
    assert meta["grid_id"] == grid_meta["grid_id"] and meta["window"] == "5"
    assert meta["inputs_hash"] == version
    ak = index.join(stations.select("station_id", "state"), on="station_id").filter(pl.col("state") == "AK")
    assert ak.height > 20 and not ak["included"].any()
    assert ak["exclusion_reason"].str.starts_with("outside_grid").all()
    nunn = index.filter(pl.col("station_id") == "94074").row(0, named=True)
    assert nunn["included"] and nunn["distance_m"] < 2200 and len(nunn["window_cells"]) == 25

    # Unchanged inputs: skipped and reused, same data version, file untouched.
    before = store.get(partition_object_key(INDEX, None))
    res = _mat([station_grid_index], resources, instance)
    mat = res.asset_materializations_for_node("station_grid_index")[0]
    assert mat.metadata["reused"].value is True and mat.tags["dagster/data_version"] == version
    assert store.get(partition_object_key(INDEX, None)) == before

    res = _mat([grid_join_features], resources, instance, partition_key=PK)
    assert res.success
    feats = _read(store, "grid_join_features", PK)
    included = index.filter(pl.col("included"))
    assert feats.height == included.height
    fields = _read(store, "hrrr_fields", PK)
    variables = [c for c, t in fields.schema.items() if t == pl.Float32]
    assert len(variables) == 12   # the ten decoded, and APCP's and ASNOW's hourly amounts
    expected_cols = (["station_id", "valid_time", "run_time", "forecast_hour", "grid_y", "grid_x", "distance_m"]
                     + [f"{v}__{s}" for v in variables for s in STATS]
                     + ["obs_timestamp_utc"] + [f"obs_{v}" for v in OBS_VARIABLES])
    assert feats.columns == expected_cols
    assert feats["valid_time"].unique().to_list() == [dt.datetime(2023, 1, 1, 1, tzinfo=dt.timezone.utc)]
    # centre = the field at the station's cell; mean = the 5x5 mean, straight from hrrr_fields
    nx = int(grid_meta["shape"].split(",")[1])
    row = feats.filter(pl.col("station_id") == "94074").row(0, named=True)
    cells = np.array(nunn["window_cells"])
    for v in variables:
        col = fields[v].to_numpy()   # nulls read as NaN
        if np.isnan(col[nunn["grid_y"] * nx + nunn["grid_x"]]):   # the hourly amounts at f00: no hour has passed
            assert row[f"{v}__centre"] is None, v
            continue
        assert row[f"{v}__centre"] == col[nunn["grid_y"] * nx + nunn["grid_x"]]
        assert row[f"{v}__mean"] == pytest.approx(float(np.mean(col[cells].astype(np.float64))), rel=1e-5, abs=1e-6)
    # the observation of that UTC hour joins; stations without one get nulls
    obs = _read(store, "observations_clean", "94074").filter(
        pl.col("timestamp_utc") == dt.datetime(2023, 1, 1, 1, tzinfo=dt.timezone.utc))
    assert obs.height == 1
    assert row["obs_air_temp_c"] == obs["air_temp_c"][0] and row["obs_air_temp_c"] is not None
    others = feats.filter(pl.col("station_id") != "94074")
    assert others["obs_timestamp_utc"].null_count() == others.height
    mat = res.asset_materializations_for_node("grid_join_features")[0]
    assert mat.metadata["read_whole_because"].value == {"no station windows stored": [f"{PK} f00"]}

    # With the index stored, decoding again also writes the lead's station windows (on this
    # backend: a local rename or an S3 upload); the join reads them, with the same features.
    assert _mat([hrrr_fields], resources, instance, partition_key=PK,
                run_config={"ops": {"hrrr_fields": DEMO_RUN_CONFIG[PK]["ops"]["hrrr_fields"]}}).success
    assert store.exists(lead_object_key(dg.AssetKey("hrrr_station_windows"), PK, 0))
    res = _mat([grid_join_features], resources, instance, partition_key=PK)
    assert res.asset_materializations_for_node("grid_join_features")[0].metadata["leads_from_station_windows"].value == 1
    assert _read(store, "grid_join_features", PK).equals(feats)

    # A changed parameter rebuilds the index, with a new data version.
    res = _mat([station_grid_index], resources, instance,
                         run_config={"ops": {"station_grid_index": {"config": {"window": 3}}}})
    mat = res.asset_materializations_for_node("station_grid_index")[0]
    assert mat.metadata["reused"].value is False and mat.tags["dagster/data_version"] != version
    assert _read(store, "station_grid_index")["window_cells"].drop_nulls().list.len().unique().to_list() == [9]


def _local_resources(tmp_path):
    from snoiq_assets.defs.resources import build_resources
    from snoiq_assets.lib.storage import LocalStore
    from snoiq_assets.settings import Settings

    settings = Settings.from_env({"SNOIQ_HOME": str(tmp_path / "home")})
    return LocalStore(settings.home), build_resources(settings)


@pytest.fixture
def prepared(tmp_path, instance):
    store, resources = _local_resources(tmp_path)
    _prepare(store, resources, instance)
    assert _mat([station_grid_index], resources, instance).success
    return store, resources


def test_partition_on_another_grid_fails_and_writes_nothing(prepared, instance):
    store, resources = prepared
    # a different grid: the real GFS 2.5-degree file, landed and used for hrrr_grid
    store.put_file("raw/hrrr/gfs/gfs.t12z.pgrbf120.2p5deg.grib2",
                   REPO / "data" / "sample" / "noaa_grib2" / "gfs.t12z.pgrbf120.2p5deg.grib2")
    assert _mat([hrrr_grid], resources, instance, run_config={
        "ops": {"hrrr_grid": {"config": {"source_key": "raw/hrrr/gfs/gfs.t12z.pgrbf120.2p5deg.grib2"}}}}).success
    res = _mat([station_grid_index], resources, instance,
                         run_config={"ops": {"station_grid_index": {"config": {"max_distance_m": 300_000.0}}}})
    assert res.success  # the index now describes the GFS grid
    res = _mat([grid_join_features], resources, instance, partition_key=PK,
                         raise_on_error=False)
    assert not res.success
    text = _failure_text(res)
    assert f"hrrr_fields partition {PK} f00 is on grid" in text and "station_grid_index was built on grid" in text
    assert not store.exists(lead_object_key(JOIN, PK, 0))


def test_duplicate_observation_rows_fail_and_write_nothing(prepared, instance):
    store, resources = prepared
    # a second station file partition holding the same station's rows: each timestamp twice
    instance.add_dynamic_partitions("station_files", ["94074copy"])
    store.put(partition_object_key(dg.AssetKey("observations_clean"), "94074copy"),
              store.get(partition_object_key(dg.AssetKey("observations_clean"), "94074")))
    res = _mat([grid_join_features], resources, instance, partition_key=PK,
                         raise_on_error=False)
    assert not res.success
    text = _failure_text(res)
    assert "duplicate rows for 1 station(s) near 2023-01-01T01Z" in text
    assert "94074 2023-01-01T01:00:00+00:00 (x2)" in text
    assert not store.exists(lead_object_key(JOIN, PK, 0))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: pl.concat([m, m.head(1)]), "duplicate station ids in the station list"),
        (lambda m: m.with_columns(pl.when(pl.col("station_id") == "94074").then(123.0)
                                  .otherwise(pl.col("latitude")).alias("latitude")),
         r"impossible coordinates.*94074 \(123.0"),
    ],
)
def test_bad_station_metadata_fails_the_index_and_keeps_the_old_one(prepared, instance, edit, message):
    store, resources = prepared
    key = partition_object_key(dg.AssetKey("station_metadata"), None)
    before = store.get(partition_object_key(INDEX, None))
    bad = edit(pl.read_parquet(store.get(key)))
    with store.atomic_local_file(key) as path:
        bad.write_parquet(path)
    res = _mat([station_grid_index], resources, instance, raise_on_error=False)
    assert not res.success
    import re

    assert re.search(message, _failure_text(res))
    assert store.get(partition_object_key(INDEX, None)) == before


def test_no_observation_partitions_gives_null_observations(tmp_path, instance):
    store, resources = _local_resources(tmp_path)
    seed_hrrr(store, synth_partitions=(PK,))
    seed_stations(store)
    assert _mat([hrrr_grid], resources, instance).success
    assert _mat([hrrr_fields], resources, instance, partition_key=PK,
                          run_config={"ops": {"hrrr_fields": DEMO_RUN_CONFIG[PK]["ops"]["hrrr_fields"]}}).success
    assert _mat([station_metadata, station_grid_index], resources, instance).success
    res = _mat([grid_join_features], resources, instance, partition_key=PK)
    assert res.success
    feats = _read(store, "grid_join_features", PK)
    assert feats.height > 200
    assert feats["obs_air_temp_c"].null_count() == feats.height
    assert feats.schema["obs_timestamp_utc"] == pl.Datetime("us", "UTC")
