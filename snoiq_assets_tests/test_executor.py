"""The code location's default executor (defs/executors.py): every step of a run is still its own
subprocess, but forked from one forkserver per run that imported the code location and the
instance's storage classes once, instead of a fresh interpreter per step. Run through the real
CLI, as `dagster asset materialize` and `dg launch` run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from snoiq_assets.defs.executors import FORKSERVER_PRELOAD, forkserver_by_default

REPO = Path(__file__).resolve().parent.parent

# Two assets, the second after the first, each recording the process it ran in. The probe
# module imports the executor only: whatever else a step finds imported came from the forkserver.
PROBE = '''
import json, os, sys
import dagster as dg
from snoiq_assets.defs.executors import multiprocess_forkserver_executor

def _record(name):
    with open(os.path.join(os.environ["PROBE_OUT"], name + ".json"), "w") as fh:
        json.dump({"pid": os.getpid(), "ppid": os.getppid(),
                   "preloaded": sorted(m for m in ("snoiq_assets.definitions", "snoiq_assets.defs.step_preload")
                                       if m in sys.modules)}, fh)

@dg.asset
def first_step():
    _record("first_step")

@dg.asset(deps=[first_step])
def second_step():
    _record("second_step")

defs = dg.Definitions(assets=[first_step, second_step], executor=multiprocess_forkserver_executor)
'''
SPAWN = {"execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}}


def test_config_defaults_to_forkserver_and_keeps_what_the_user_sets():
    preload = {"forkserver": {"preload_modules": list(FORKSERVER_PRELOAD)}}
    assert forkserver_by_default({"multiprocess": {}}) == {"multiprocess": {"start_method": preload}}
    assert forkserver_by_default({"multiprocess": {"max_concurrent": 2}}) == {
        "multiprocess": {"max_concurrent": 2, "start_method": preload}}
    assert forkserver_by_default({"multiprocess": {"start_method": {"spawn": {}}}}) == {
        "multiprocess": {"start_method": {"spawn": {}}}}
    assert forkserver_by_default({"in_process": {}}) == {"in_process": {}}


def _materialize(tmp_path: Path, name: str, run_config: dict | None) -> tuple[dict, int]:
    """Run the probe's two assets with the CLI; returns each step's record and the run's pid."""
    out, home = tmp_path / name, tmp_path / f"{name}_dagster_home"
    out.mkdir()
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.local.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOIQ_", "AWS_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "SNOIQ_HOME": str(tmp_path / "snoiq"), "PROBE_OUT": str(out)})
    cmd = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-f", str(tmp_path / "probe.py"),
           "--select", "*"]
    if run_config:
        cmd += ["--config-json", json.dumps(run_config)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        (run,) = instance.get_runs()
        starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
        assert run.status == dg.DagsterRunStatus.SUCCESS and len(starts) == 1
        run_pid = starts[0].dagster_event.pid
    return {step: json.loads((out / f"{step}.json").read_text()) for step in ("first_step", "second_step")}, run_pid


@pytest.mark.slow
def test_steps_fork_from_one_preloaded_server_per_run(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)

    steps, run_pid = _materialize(tmp_path, "forkserver", None)
    first, second = steps["first_step"], steps["second_step"]
    # two step processes, both children of one process that is not the run's: the forkserver
    assert first["pid"] != second["pid"] and run_pid not in (first["pid"], second["pid"])
    assert first["ppid"] == second["ppid"] != run_pid
    # which had imported the code location and the instance's storage classes before the fork
    assert first["preloaded"] == second["preloaded"] == sorted(FORKSERVER_PRELOAD)

    # Dagster's own start method on request: each step a fresh interpreter started by the run
    steps, run_pid = _materialize(tmp_path, "spawn", SPAWN)
    assert steps["first_step"]["ppid"] == steps["second_step"]["ppid"] == run_pid
    assert steps["first_step"]["preloaded"] == steps["second_step"]["preloaded"] == []


def test_instance_storage_classes_are_imported_from_the_instance_config(tmp_path, monkeypatch):
    from snoiq_assets.defs.step_preload import import_instance_classes

    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.local.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    modules = import_instance_classes()
    # the SQLite storage (runs, events, schedules) and the queued run coordinator of dagster.local.yaml
    assert {"dagster._core.storage.sqlite_storage", "dagster._core.run_coordinator"} <= set(modules)
    assert all(m in sys.modules for m in modules)
    monkeypatch.delenv("DAGSTER_HOME")
    assert import_instance_classes() == []   # an ephemeral instance: nothing to import
