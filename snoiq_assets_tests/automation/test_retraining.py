"""The retraining sensor by model spec: new data retrains exactly the specs whose locations it
touches, each at most once per its own minimum interval and never while it retrains; data no
spec covers is said so in the tick's skip reason. Evaluated as the daemon does (real instance,
real clean observations, contexts entered)."""

import datetime as dt
import json
import uuid

import dagster as dg
import pytest

from snoiq_assets.defs.models.schedules import model_schedules, retrain_job
from snoiq_assets.defs.models.sensors import retraining_sensor
from snoiq_assets.settings import Settings, SettingsError
from snoiq_assets_tests.helpers import location_assets
from snoiq_assets_tests.models.conftest import land_spec

NUNN = "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt"
PORTLAND = "portland_precip_daily"
# Two specs on Nunn's station: one retrained at most hourly, one as often as data comes.
NUNN_HOURLY_LIMIT = {"target": "air_temp_c", "locations": ["94074"], "resolution": "daily",
                     "min_retrain_interval_minutes": 60}
NUNN_ANYTIME = {"target": "precip_mm", "location": "nunn_anytime", "locations": ["94074"], "resolution": "daily",
                "min_retrain_interval_minutes": 0}


@pytest.fixture(scope="module")
def defs():
    from snoiq_assets.definitions import defs

    return defs


def tick(instance, cursor, resources, settings=Settings()):
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": resources["store"]}) as ctx:
            result = retraining_sensor(settings)(ctx)
            return result, (result.cursor if isinstance(result, dg.SensorResult) else ctx.cursor)


def skip_message(result) -> str:
    return result.skip_message if isinstance(result, dg.SkipReason) else result.skip_reason.skip_message


def clean_station(defs, resources, instance, store, sample_dir, station="94074"):
    store.put_file(f"raw/observations/{station}.txt", sample_dir / NUNN)
    instance.add_dynamic_partitions("station_files", [station])
    assert dg.materialize(location_assets(defs), selection=["observations_raw", "observations_clean", "observations_rejects"],
                          partition_key=station, resources=resources, instance=instance).success


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_retrains_exactly_the_specs_the_data_touches(defs, resources, instance, store, sample_dir):
    land_spec(instance, store, PORTLAND)
    result, cursor = tick(instance, None, resources)
    assert skip_message(result) == "no new observations, outcomes or features"

    # Nunn's station is cleaned, but the only spec is Portland's: the tick says no spec covers it.
    clean_station(defs, resources, instance, store, sample_dir)
    result, cursor = tick(instance, cursor, resources)
    assert not result.run_requests
    assert skip_message(result) == f"new data (observations: 94074), but no model spec covers it (registered: {PORTLAND})"

    # Two specs on Nunn's station: new Nunn data retrains both, and not Portland's.
    land_spec(instance, store, "nunn_limited", text="{}", **NUNN_HOURLY_LIMIT)
    land_spec(instance, store, "nunn_anytime", text="{}", **NUNN_ANYTIME)
    clean_station(defs, resources, instance, store, sample_dir)
    result, cursor = tick(instance, cursor, resources)
    assert sorted(r.partition_key for r in result.run_requests) == ["nunn_anytime", "nunn_limited"]
    for r in result.run_requests:
        assert r.tags["snoiq/kind"] == "training" and r.tags["snoiq/spec"] == r.partition_key
        assert r.tags["snoiq/why"] == "observations 94074"

    # More Nunn data right away: the spec limited to once an hour waits (and stays pending), the other retrains.
    clean_station(defs, resources, instance, store, sample_dir)
    result, cursor = tick(instance, cursor, resources)
    assert [r.partition_key for r in result.run_requests] == ["nunn_anytime"]
    assert json.loads(cursor)["pending"] == {"nunn_limited": ["observations 94074"]}

    # nunn_anytime is retraining: new data waits for it; nunn_limited still waits for its interval.
    running = instance.create_run_for_job(job_def=defs.resolve_job_def(retrain_job.name), run_id=str(uuid.uuid4()),
                                          tags={"dagster/partition": "nunn_anytime"}, status=dg.DagsterRunStatus.STARTED)
    clean_station(defs, resources, instance, store, sample_dir)
    result, cursor_running = tick(instance, cursor, resources)
    message = skip_message(result)
    assert "nunn_anytime: a retraining is running" in message and "nunn_limited: next retraining allowed in" in message

    instance.report_run_failed(running)
    result, _ = tick(instance, cursor_running, resources)
    assert [r.partition_key for r in result.run_requests] == ["nunn_anytime"]


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_weekly_retraining_requests_every_registered_spec(instance, store):
    schedule = model_schedules(Settings())[0]
    when = dt.datetime(2026, 11, 30, 3, tzinfo=dt.timezone.utc)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
        assert schedule(ctx).skip_message == "no model spec is registered (land one in raw/model_specs/)"
    land_spec(instance, store, PORTLAND)
    land_spec(instance, store, "nunn_anytime", text="{}", **NUNN_ANYTIME)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as ctx:
        requests = schedule(ctx)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("nunn_anytime", "weekly-2026-11-30-nunn_anytime"), (PORTLAND, f"weekly-2026-11-30-{PORTLAND}")]


def test_the_interval_setting_is_read_and_checked():
    assert Settings.from_env({"SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES": "15"}).retrain_min_interval_minutes == 15
    with pytest.raises(SettingsError, match="SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES='soon'"):
        Settings.from_env({"SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES": "soon"})
