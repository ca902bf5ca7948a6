"""The retraining sensor: new data starts one retraining, debounced, never two at once."""

import json
import uuid

import dagster as dg
import pytest

from snoiq_assets.defs.automation.retraining import RANGE_TAGS, retraining_sensor, retrain_job
from snoiq_assets_tests.helpers import location_assets

NUNN = "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt"


@pytest.fixture(scope="module")
def defs():
    from snoiq_assets.definitions import defs

    return defs


def tick(instance, cursor, defs):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    result = retraining_sensor(ctx)
    return result, (result.cursor if isinstance(result, dg.SensorResult) else ctx.cursor)


def clean_station(defs, resources, instance, store, sample_dir, station="94074"):
    store.put_file(f"raw/observations/{station}.txt", sample_dir / NUNN)
    instance.add_dynamic_partitions("station_files", [station])
    assert dg.materialize(location_assets(defs), selection=["observations_raw", "observations_clean", "observations_rejects"],
                          partition_key=station, resources=resources, instance=instance).success


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_new_data_debounce_and_in_progress(defs, resources, instance, store, sample_dir, monkeypatch):
    monkeypatch.setenv("SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES", "60")
    result, cursor = tick(instance, None, defs)
    assert isinstance(result, dg.SkipReason) and "no new observations" in result.skip_message

    clean_station(defs, resources, instance, store, sample_dir)
    result, cursor = tick(instance, cursor, defs)
    (request,) = result.run_requests
    assert request.tags["snoiq/kind"] == "training"
    assert {k: request.tags[k] for k in RANGE_TAGS} == RANGE_TAGS  # all model types in one run
    assert "trained_models" in request.run_config["ops"]

    # More data right away: debounced by the interval.
    clean_station(defs, resources, instance, store, sample_dir)
    result, cursor2 = tick(instance, cursor, defs)
    assert isinstance(result, dg.SkipReason) and "next retraining allowed in" in result.skip_message

    # Interval passed, but a retraining is running: wait for it.
    monkeypatch.setenv("SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES", "0")
    running = instance.create_run_for_job(job_def=defs.resolve_job_def(retrain_job.name), run_id=str(uuid.uuid4()),
                                          run_config=request.run_config, status=dg.DagsterRunStatus.STARTED)
    result, _ = tick(instance, cursor2, defs)
    assert isinstance(result, dg.SkipReason) and "a retraining is running" in result.skip_message

    instance.report_run_failed(running)
    result, cursor3 = tick(instance, cursor2, defs)
    assert len(result.run_requests) == 1
    assert json.loads(cursor3)["seen"]["observations_clean"] > json.loads(cursor)["seen"]["observations_clean"]
