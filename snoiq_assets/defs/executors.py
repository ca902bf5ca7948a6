"""The executor of every job: Dagster's multiprocess executor with its steps forked from a
server process, or Celery workers (``dagster-celery``).

By default each step of a run is a subprocess, as in Dagster's default executor, but started
with the ``forkserver`` start method: one server process per run imports the code location
once, and every step forks from it. Dagster's default (``spawn``) starts a fresh interpreter
per step that imports the code location again (2.4-2.6 s of CPU each on a 2-core machine, more
than most steps' own work: a run of ``hrrr_raw,hrrr_fields`` has four steps with its checks).
Run config keeps Dagster's shape: ``execution: config: multiprocess: {max_concurrent: ...}``,
``start_method: {spawn: {}}`` to go back, or ``in_process: {}``. Why forking from a server
that imported NumPy, Arrow and Polars is safe (no compute pool has started there), and the
one caveat (a step has the environment its run started with): README "Steps on one host".

``SNOIQ_EXECUTOR=celery`` sends each step of a run to Celery workers listening on the broker
``SNOIQ_CELERY_BROKER`` (results on ``SNOIQ_CELERY_BACKEND``, default the broker), so several
hosts sharing the instance storage and the lake run one backfill's steps. Both URLs are read
from the environment by Dagster when the run starts (``{"env": ...}``), never written into run
config. Workers start with ``dagster-celery worker start -A dagster_celery.app -y <yaml>``
(README "Celery"). Past one host in production, Kubernetes (``dagster-k8s``) remains the path.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from snoiq_assets.settings import Settings

BROKER_ENV = "SNOIQ_CELERY_BROKER"
BACKEND_ENV = "SNOIQ_CELERY_BACKEND"
# What the forkserver imports before any step forks: the code location and the instance's
# storage classes (defs/step_preload.py).
FORKSERVER_PRELOAD = ("snoiq_assets.definitions", "snoiq_assets.defs.step_preload")


def forkserver_by_default(config: dict[str, Any]) -> dict[str, Any]:
    """Dagster's ``multi_or_in_process_executor`` config with ``start_method: forkserver``
    (preloading ``FORKSERVER_PRELOAD``) where the multiprocess branch names no start method."""
    if "multiprocess" not in config:
        return config
    multiprocess = dict(config["multiprocess"] or {})
    multiprocess.setdefault("start_method", {"forkserver": {"preload_modules": list(FORKSERVER_PRELOAD)}})
    return {**config, "multiprocess": multiprocess}


# Same name, description and run-config schema as Dagster's default executor.
multiprocess_forkserver_executor = dg.multi_or_in_process_executor.configured(
    forkserver_by_default, config_schema=dg.multi_or_in_process_executor.config_schema.as_field())


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """The Celery executor for ``settings.executor == "celery"``; otherwise steps in
    subprocesses of the run's process, forked from one server process per run."""
    if settings.executor != "celery":
        return multiprocess_forkserver_executor
    from dagster_celery import celery_executor

    backend = BACKEND_ENV if os.environ.get(BACKEND_ENV) else BROKER_ENV
    return celery_executor.configured({"broker": {"env": BROKER_ENV}, "backend": {"env": backend}},
                                      name="celery")
