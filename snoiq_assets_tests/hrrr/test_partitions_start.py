"""Runs before 2020-12-01 (the old first partition) land and decode: the hourly partitions
start where NOAA's HRRR archive on AWS starts, 2014-07-30T18. A file for a run before that is
skipped by the landing sensor with a message naming the first partition."""

import pyproj  # noqa: F401  isort: skip  (before eccodes)

import datetime as dt

import dagster as dg
import pyarrow.parquet as pq
import pytest

from snoiq_assets.defs.hrrr.sensors import hrrr_sensors
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw
from snoiq_assets.defs.partitions import HOURLY_KEY_FORMAT, HOURLY_START, hourly_partitions
from snoiq_assets.lib.hrrr.decode import decode_fields
from snoiq_assets.lib.hrrr.rawkeys import landing_key, partition_for_landed_key
from snoiq_assets.lib.hrrr.synth import write_hrrr_hour
from snoiq_assets.lib.hrrr.variables import resolve
from snoiq_assets.lib.keys import UnsafeNameError
from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets.settings import Settings
from snoiq_assets_tests.helpers import STATION_INDEX_SPEC

UTC = dt.timezone.utc
COLUMNS = ["tmp_2m_k", "snod_m"]


def test_hourly_partitions_start_with_the_archive():
    assert HOURLY_START == "2014-07-30T18" and hourly_partitions.get_first_partition_key() == "2014-07-30T18"
    assert hourly_partitions.fmt == HOURLY_KEY_FORMAT == "%Y-%m-%dT%H"
    keys = hourly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange("2014-07-30T18", "2020-12-01T00"))
    assert len(keys) == (dt.datetime(2020, 12, 1) - dt.datetime(2014, 7, 30, 18)) // dt.timedelta(hours=1) + 1


@pytest.mark.parametrize("now", [None, dt.datetime(2014, 7, 30, 17, tzinfo=UTC), dt.datetime(2014, 7, 30, 18, tzinfo=UTC),
                                 dt.datetime(2014, 7, 30, 19, 0, 1, tzinfo=UTC), dt.datetime(2016, 2, 29, 23, 59, tzinfo=UTC),
                                 dt.datetime(2021, 3, 14, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=-8)))])
def test_listing_every_hourly_key_matches_dagsters_own(now):
    """The vectorised listing (what a step reading every partition of an hourly asset pays for)
    gives Dagster's keys exactly, at the archive's first hour, mid-hour, on a leap day and with a
    non-UTC clock; the definition is equal to Dagster's and serialises as it."""
    from dagster._core.definitions.partitions.snap.snap import PartitionsSnap

    dagster_own = dg.HourlyPartitionsDefinition(start_date=HOURLY_START, fmt=HOURLY_KEY_FORMAT, timezone="UTC")
    assert hourly_partitions == dagster_own and type(hourly_partitions) is not dg.HourlyPartitionsDefinition
    assert hourly_partitions.get_partition_keys(now) == dagster_own.get_partition_keys(now)
    with dg.partition_loading_context(now):   # how Dagster's AllPartitionsSubset calls it
        assert hourly_partitions.get_partition_keys() == dagster_own.get_partition_keys()
    assert PartitionsSnap.from_def(hourly_partitions) == PartitionsSnap.from_def(dagster_own)


def test_a_2016_run_lands_and_decodes(tmp_path, store, resources, instance):
    pk = "2016-02-01T06"
    run = dt.datetime(2016, 2, 1, 6, tzinfo=UTC)
    path = write_hrrr_hour(tmp_path / "old.grib2", run, 0, columns=COLUMNS)
    store.put_file(landing_key(run, 0), path)
    sel = {"leads": [0], "variables": COLUMNS}
    assert dg.materialize([hrrr_raw], resources=resources, instance=instance, partition_key=pk,
                          run_config={"ops": {"hrrr_raw": {"config": sel}}}).success
    assert dg.materialize([hrrr_grid], resources=resources, instance=instance).success
    res = dg.materialize([hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], selection=[hrrr_fields], resources=resources, instance=instance, partition_key=pk,
                         run_config={"ops": {"hrrr_fields": {"config": sel}}})
    assert res.success
    meta = res.asset_materializations_for_node("hrrr_fields")[0].metadata
    assert meta["run_time"].value == "2016-02-01T06:00:00+00:00"
    with store.local_path(lead_object_key(dg.AssetKey("hrrr_fields"), pk, 0)) as p:
        table = pq.read_table(p)
    want, _ = decode_fields(path, resolve(COLUMNS), 0, engine="eccodes")
    assert table.select(COLUMNS).equals(want.select(COLUMNS))


def test_sensor_skips_a_run_before_the_archive_naming_the_first_partition(store, resources, instance, sample_dir):
    from snoiq_assets.definitions import defs

    store.put_file("raw/hrrr/20110110/hrrr.t12z.wrfsfcf00.grib2",
                   sample_dir / "noaa_grib2" / "gfs.t12z.pgrbf120.2p5deg.grib2")
    (hrrr_landing_sensor,) = hrrr_sensors(Settings())
    with dg.build_sensor_context(instance=instance, resources={"store": resources["store"]}, definitions=defs) as ctx:
        result = hrrr_landing_sensor(ctx)
    assert isinstance(result, dg.SkipReason)
    assert "skipped 1 name(s) that map to no partition" in result.skip_message
    assert "raw/hrrr/20110110/hrrr.t12z.wrfsfcf00.grib2" in result.skip_message
    with pytest.raises(UnsafeNameError, match=r"is for run 2014-07-30T17, before the first hourly partition "
                       r"2014-07-30T18 \(the start of NOAA's HRRR archive\)"):
        partition_for_landed_key("raw/hrrr/20140730/hrrr.t17z.wrfsfcf00.grib2")
    assert partition_for_landed_key("raw/hrrr/20140730/hrrr.t18z.wrfsfcf00.grib2") == ("2014-07-30T18", 0)
