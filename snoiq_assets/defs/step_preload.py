"""Imported once per run by the forkserver that every step of the run forks from (see
defs/executors.py), so that no step imports it again:

- the code location (what Dagster's forkserver preloads by default);
- the Dagster instance's storage classes named in ``$DAGSTER_HOME/dagster.yaml`` (SQLite here,
  Postgres in the compose stack): each step opens the instance from its reference, and their
  modules (SQLAlchemy, Alembic, the storages) are ~1 s of imports per step on a 2-core machine.
  Imported only, never instantiated: no database connection is open when a step forks.

A failure to import the instance's classes never stops a run (the forkserver would die with
it, and every step of the run): it is skipped and each step imports them itself, as under
``spawn``. The code location's import is not guarded: the run's own process has just imported
it with the same environment.
"""

from __future__ import annotations

import importlib
import os

import snoiq_assets.definitions  # noqa: F401  (the code location)


def import_instance_classes() -> list[str]:
    """Import the module of each class the instance's ``dagster.yaml`` names; returns them."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not os.path.isfile(os.path.join(home, "dagster.yaml")):
        return []   # ephemeral, or Dagster's defaults: each step imports them (as under spawn)
    from dagster._core.instance.ref import InstanceRef

    ref = InstanceRef.from_dir(home)
    modules = sorted({data.module_name for data in (
        ref.storage_data, ref.run_storage_data, ref.event_storage_data, ref.schedule_storage_data,
        ref.compute_logs_data, ref.local_artifact_storage_data, ref.run_coordinator_data, ref.run_launcher_data,
    ) if data is not None})
    for module in modules:
        importlib.import_module(module)
    return modules


try:
    import_instance_classes()
except Exception:   # noqa: BLE001  (see the module docstring: the step will import them itself)
    pass
