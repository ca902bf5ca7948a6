"""Landing sensors against a real instance and real files, on the local folder and S3."""

import time

import dagster as dg
import pytest

from snoiq_assets.defs.hrrr.sensors import hrrr_sensors
from snoiq_assets.defs.stations.sensors import station_sensors
from snoiq_assets.settings import Settings
from snoiq_assets_tests.helpers import failure_messages, location_assets

NUNN = "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt"
station_file_landing_sensor, outcome_landing_sensor = station_sensors(Settings())
(hrrr_landing_sensor,) = hrrr_sensors(Settings())


def test_landing_sensors_run_by_default_only_in_the_s3_profile():
    s3 = Settings(profile="s3", bucket="b")
    for sensors in (station_sensors, hrrr_sensors):
        assert {s.default_status for s in sensors(Settings())} == {dg.DefaultSensorStatus.STOPPED}
        assert {s.default_status for s in sensors(s3)} == {dg.DefaultSensorStatus.RUNNING}


@pytest.fixture(scope="module")
def defs():
    from snoiq_assets.definitions import defs

    return defs


def tick(sensor, instance, resources, defs, cursor):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": resources["store"]},
                                 definitions=defs) as ctx:
        result = sensor(ctx)
        # The daemon stores SensorResult.cursor, or the context's cursor after a skip.
        cursor = result.cursor if isinstance(result, dg.SensorResult) else ctx.cursor
    return result, cursor


def requests_of(result):
    return result.run_requests if isinstance(result, dg.SensorResult) else []


def test_station_sensor_new_idempotent_changed_restart(store, resources, instance, defs, sample_dir):
    store.put_file("raw/observations/94074.txt", sample_dir / NUNN)
    result, cursor = tick(station_file_landing_sensor, instance, resources, defs, None)
    reqs = requests_of(result)
    assert [r.partition_key for r in reqs] == ["94074"]
    assert reqs[0].run_key.startswith("raw/observations/94074.txt@")
    adds = result.dynamic_partitions_requests
    assert adds[0].partitions_def_name == "station_files" and list(adds[0].partition_keys) == ["94074"]
    instance.add_dynamic_partitions("station_files", ["94074"])

    # The run the sensor asked for really cleans the file (the daemon would launch exactly this).
    materialised = dg.materialize(
        location_assets(defs), selection=station_file_landing_sensor.asset_selection,
        partition_key=reqs[0].partition_key, resources=resources, instance=instance,
    )
    assert materialised.success
    assert store.exists("lake/observations_clean/94074.parquet")

    # Same file, next tick and after a daemon restart (cursor reloaded from storage): no run.
    again, cursor2 = tick(station_file_landing_sensor, instance, resources, defs, cursor)
    assert isinstance(again, dg.SkipReason) and "no new or changed files among 1 listed" in again.skip_message
    restarted, _ = tick(station_file_landing_sensor, instance, resources, defs, cursor2)
    assert isinstance(restarted, dg.SkipReason)

    # The file is overwritten: one new run with a new run key.
    time.sleep(1.1)
    store.put("raw/observations/94074.txt", (sample_dir / NUNN).read_bytes())
    changed, _ = tick(station_file_landing_sensor, instance, resources, defs, cursor2)
    new = requests_of(changed)
    assert [r.partition_key for r in new] == ["94074"] and new[0].run_key != reqs[0].run_key
    assert changed.dynamic_partitions_requests == []  # partition already known


def put_unchecked(store, key: str, data: bytes) -> None:
    """Land a file under a name our own store would refuse to write, as a user's tool might."""
    import io

    if hasattr(store, "client"):
        store.client.put_object(store.bucket, key, io.BytesIO(data), len(data))
    else:
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_station_sensor_skips_unsafe_names_and_handles_bursts(store, resources, instance, defs):
    put_unchecked(store, "raw/observations/bad name;rm.csv", b"x")
    store.put("raw/observations/x=y.csv", b"x")
    for i in range(500):
        store.put(f"raw/observations/S{i:04d}.csv", b"a,b\n")
    store.put("raw/observations/sub/nested.csv", b"a,b\n")
    result, cursor = tick(station_file_landing_sensor, instance, resources, defs, None)
    reqs = requests_of(result)
    assert len(reqs) == 500 and len({r.run_key for r in reqs}) == 500
    assert "sub" not in {r.partition_key for r in reqs}
    assert len(result.dynamic_partitions_requests[0].partition_keys) == 500
    # The unsafe names were reported in that tick (the daemon shows it in the tick log) and are
    # not reported as runs again; they stay in place for a person to rename.
    assert store.stat("raw/observations/x=y.csv") is not None
    again, _ = tick(station_file_landing_sensor, instance, resources, defs, cursor)
    assert isinstance(again, dg.SkipReason) and "skipped" not in again.skip_message


def test_file_removed_before_its_run_fails_clearly(store, resources, instance, defs, sample_dir):
    store.put_file("raw/observations/94074.txt", sample_dir / NUNN)
    result, _ = tick(station_file_landing_sensor, instance, resources, defs, None)
    instance.add_dynamic_partitions("station_files", ["94074"])
    store.delete("raw/observations/94074.txt")
    run = dg.materialize(
        location_assets(defs), selection=["observations_raw"],
        partition_key="94074", resources=resources, instance=instance, raise_on_error=False,
    )
    assert not run.success

    assert "94074" in failure_messages(run)


def test_outcome_sensor(store, resources, instance, defs):
    store.put("raw/outcomes/seattle_tacoma.csv", b"date,snow_depth_mm\n2012-01-01,0\n")
    result, cursor = tick(outcome_landing_sensor, instance, resources, defs, None)
    assert [r.partition_key for r in requests_of(result)] == ["seattle_tacoma"]
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["seattle_tacoma"]


def test_hrrr_sensor_requests_the_cycle_with_its_forecast_hour(store, resources, instance, defs, sample_dir):
    grib = sample_dir / "hrrr" / "subset_20201214_hrrr.t00z.wrfsfcf12.grib2"
    store.put_file("raw/hrrr/20201214/hrrr.t00z.wrfsfcf12.grib2", grib)
    store.put("raw/hrrr/20201214/hrrr.t00z.wrfsfcf12.grib2.idx", b"1:0:d=2020121400:APCP:surface:0-12 hour acc fcst:\n")
    store.put("raw/hrrr/20201214/not-a-hrrr-file.grib2", b"GRIB")
    # a lead outside the schedule (01Z runs f00-f18): quarantined with its reason, no run
    outside = "raw/hrrr/20201214/hrrr.t01z.wrfsfcf19.grib2"
    store.put_file(outside, grib)
    store.put(outside + ".idx", b"1:0:d=2020121401:APCP:surface:0-19 hour acc fcst:\n")
    result, cursor = tick(hrrr_landing_sensor, instance, resources, defs, None)
    reqs = requests_of(result)
    assert [r.partition_key for r in reqs] == ["2020-12-14T00"]  # the .idx and the odd name start nothing
    assert reqs[0].run_config["ops"]["hrrr_raw"]["config"] == {"leads": [12]}
    reason = store.get_json(f"quarantine/{outside}.reason.json")
    assert reason["reason"] == (f"{outside}: lead f19 is outside the configured leads of cycle 2020-12-14T01 "
                                "(f00-f18)") and reason["asset"] == "hrrr_raw"
    assert not store.exists(outside) and store.exists(f"quarantine/{outside}.idx")
    again, _ = tick(hrrr_landing_sensor, instance, resources, defs, cursor)
    assert isinstance(again, dg.SkipReason)
