"""Dagster's Celery executor (``SNOIQ_EXECUTOR=celery``) on a real Redis broker: two Celery
workers, sharing the test's Dagster instance and lake, run a single-run backfill chunk of
hrrr_raw + hrrr_fields from the code location as deployed (``snoiq_assets.definitions``)."""

import pyproj  # noqa: F401  isort: skip

import datetime as dt
import os

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

from snoiq_assets.defs.hrrr.assets import hrrr_grid
from snoiq_assets.defs.resources import build_resources
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.hrrr.synth import write_hrrr_hour
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES
from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets.lib.storage import LocalStore
from snoiq_assets.settings import Settings, SettingsError
from snoiq_assets_tests.celery_cluster import ROOT, CeleryCluster
from snoiq_assets_tests.hrrr.test_grid_decode import ec_values

UTC = dt.timezone.utc
HOURS = [dt.datetime(2023, 1, 1, h, tzinfo=UTC) for h in range(2)]
CHUNKS = [["2023-01-01T00", "2023-01-01T01"]]   # one single-run backfill chunk (bench_executors runs more)
VARIABLES = ["tmp_2m_k", "apcp_kg_m2", "weasd_kg_m2"]


def code_location(tmp_path) -> ReconstructableJob:
    """The deployed code location, loaded from a file so that this process and the workers
    build it from the same environment (not a copy imported earlier under other settings)."""
    path = tmp_path / "celery_location.py"
    path.write_text("from snoiq_assets.definitions import build_definitions\n"
                    "from snoiq_assets.settings import Settings\n"
                    "defs = build_definitions(Settings.from_env())\n")
    return ReconstructableJob(ReconstructableRepository.for_file(str(path), "defs", working_directory=str(ROOT)),
                              "__ASSET_JOB")


def test_celery_needs_its_broker():
    with pytest.raises(SettingsError, match="SNOIQ_CELERY_BROKER is not set; SNOIQ_EXECUTOR=celery needs"):
        Settings.from_env({"SNOIQ_EXECUTOR": "celery"})
    with pytest.raises(SettingsError, match="SNOIQ_EXECUTOR='k8s' is not a known executor"):
        Settings.from_env({"SNOIQ_EXECUTOR": "k8s"})


@pytest.mark.slow
def test_two_celery_workers_run_a_backfill_chunk(tmp_path, instance, monkeypatch):
    home = tmp_path / "home"
    for var in [v for v in os.environ if v.startswith(("SNOIQ_", "AWS_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("SNOIQ_HOME", str(home))
    monkeypatch.setenv("SNOIQ_PROFILE", "local")
    for run in HOURS:
        write_hrrr_hour(home / landing_key(run, 0), run, 0)
    settings = Settings.from_env()
    assert dg.materialize([hrrr_grid], resources=build_resources(settings), instance=instance).success

    with CeleryCluster(tmp_path / "celery", {**os.environ, "SNOIQ_EXECUTOR": "celery"}, workers=2) as cluster:
        for k in ("SNOIQ_EXECUTOR", "SNOIQ_CELERY_BROKER", "SNOIQ_CELERY_BACKEND"):
            monkeypatch.setenv(k, cluster.env[k])
        worker_pids = {w.proc.pid for w in cluster.workers}   # --pool=solo: steps run in the worker itself
        job = code_location(tmp_path)
        sel = {"leads": [0], "variables": VARIABLES}
        run_ids = []
        for chunk in CHUNKS:
            with dg.execute_job(job, instance=instance,
                                asset_selection=[dg.AssetKey("hrrr_raw"), dg.AssetKey("hrrr_fields")],
                                run_config={"ops": {"hrrr_raw": {"config": sel}, "hrrr_fields": {"config": sel}}},
                                tags={"dagster/asset_partition_range_start": chunk[0],
                                      "dagster/asset_partition_range_end": chunk[-1]}) as result:
                assert result.success, chunk
                run_ids.append(result.run_id)

    for run_id, chunk in zip(run_ids, CHUNKS):
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        # every step (the two assets, and the freshness check on them) ran in a Celery worker
        # process, never in the run's own process
        steps = {rec.step_key: rec.dagster_event.pid
                 for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
        assert {"hrrr_raw", "hrrr_fields"} <= set(steps), steps
        assert set(steps.values()) <= worker_pids, (steps, worker_pids)
        mats = {rec.dagster_event.partition
                for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                if rec.dagster_event.asset_key == dg.AssetKey("hrrr_fields")}
        assert mats == set(chunk)

    store = LocalStore(home)
    for run in HOURS:
        pk = run.strftime("%Y-%m-%dT%H")
        with store.local_path(lead_object_key("hrrr_fields", pk, 0)) as p:
            stored = pq.read_table(p)
        # the accumulation as given plus its hourly amount: null at f00, where no hour has passed
        assert stored.column_names == [*VARIABLES, "apcp_1h_kg_m2"]
        assert stored.column("apcp_1h_kg_m2").null_count == stored.num_rows
        for column in VARIABLES:   # against a bare ecCodes read of the landed message
            want = ec_values(home / landing_key(run, 0), DEFAULT_VARIABLES.index(column) + 1).astype(np.float32)
            assert np.array_equal(stored.column(column).to_numpy(), want), (pk, column)
        assert stored.schema.metadata[b"run_time"].decode() == run.isoformat()
