"""The retraining sensor: new data starts one retraining, debounced, never two at once; its
run config comes from SNOIQ_RETRAIN_CONFIG and nothing starts without one."""

import json
import uuid

import dagster as dg
import pytest
import yaml

from snoiq_assets.defs.models.demo import demo_run_config
from snoiq_assets.defs.models.schedules import RANGE_TAGS, retrain_job, retrain_run_config
from snoiq_assets.defs.models.sensors import retraining_sensor
from snoiq_assets.settings import Settings, SettingsError
from snoiq_assets_tests.helpers import location_assets

NUNN = "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt"


@pytest.fixture(scope="module")
def defs():
    from snoiq_assets.definitions import defs

    return defs


@pytest.fixture
def retrain_config(tmp_path):
    path = tmp_path / "retrain.yaml"
    path.write_text(yaml.safe_dump(demo_run_config("all")))
    return path


def tick(instance, cursor, defs, settings):
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as ctx:
        result = retraining_sensor(settings)(ctx)
        return result, (result.cursor if isinstance(result, dg.SensorResult) else ctx.cursor)


def clean_station(defs, resources, instance, store, sample_dir, station="94074"):
    store.put_file(f"raw/observations/{station}.txt", sample_dir / NUNN)
    instance.add_dynamic_partitions("station_files", [station])
    assert dg.materialize(location_assets(defs), selection=["observations_raw", "observations_clean", "observations_rejects"],
                          partition_key=station, resources=resources, instance=instance).success


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_new_data_debounce_and_in_progress(defs, resources, instance, store, sample_dir, retrain_config):
    hourly = Settings(retrain_config=retrain_config, retrain_min_interval_minutes=60)
    result, cursor = tick(instance, None, defs, hourly)
    assert isinstance(result, dg.SkipReason) and "no new observations" in result.skip_message

    clean_station(defs, resources, instance, store, sample_dir)
    result, cursor = tick(instance, cursor, defs, hourly)
    (request,) = result.run_requests
    assert request.tags["snoiq/kind"] == "training"
    assert {k: request.tags[k] for k in RANGE_TAGS} == RANGE_TAGS  # all model types in one run
    assert request.run_config == demo_run_config("all")

    # More data right away: debounced by the interval.
    clean_station(defs, resources, instance, store, sample_dir)
    result, cursor2 = tick(instance, cursor, defs, hourly)
    assert isinstance(result, dg.SkipReason) and "next retraining allowed in" in result.skip_message

    # Interval passed, but a retraining is running: wait for it.
    anytime = Settings(retrain_config=retrain_config, retrain_min_interval_minutes=0)
    running = instance.create_run_for_job(job_def=defs.resolve_job_def(retrain_job.name), run_id=str(uuid.uuid4()),
                                          run_config=request.run_config, status=dg.DagsterRunStatus.STARTED)
    result, _ = tick(instance, cursor2, defs, anytime)
    assert isinstance(result, dg.SkipReason) and "a retraining is running" in result.skip_message

    instance.report_run_failed(running)
    result, cursor3 = tick(instance, cursor2, defs, anytime)
    assert len(result.run_requests) == 1
    assert json.loads(cursor3)["seen"]["observations_clean"] > json.loads(cursor)["seen"]["observations_clean"]


def test_no_retraining_without_its_configuration(tmp_path):
    """Production never falls back to the demo configuration: the error names what to set."""
    with pytest.raises(SettingsError, match="SNOIQ_RETRAIN_CONFIG is not set"):
        retrain_run_config(Settings())
    bad = tmp_path / "bad.yaml"
    bad.write_text("training_table: {config: {}}\n")
    with pytest.raises(SettingsError, match=f"SNOIQ_RETRAIN_CONFIG={bad} must hold a run config with an 'ops' mapping"):
        retrain_run_config(Settings(retrain_config=bad))
    assert Settings.from_env({"SNOIQ_RETRAIN_CONFIG": str(bad), "SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES": "15"}) \
        .retrain_min_interval_minutes == 15
    with pytest.raises(SettingsError, match="SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES='soon'"):
        Settings.from_env({"SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES": "soon"})
