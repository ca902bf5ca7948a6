"""The executor of every job: Dagster's default, or Celery workers (``dagster-celery``).

``SNOIQ_EXECUTOR=celery`` sends each step of a run to Celery workers listening on the broker
``SNOIQ_CELERY_BROKER`` (results on ``SNOIQ_CELERY_BACKEND``, default the broker), so several
hosts sharing the instance storage and the lake run one backfill's steps. Both URLs are read
from the environment by Dagster when the run starts (``{"env": ...}``), never written into run
config. Workers start with ``dagster-celery worker start -A dagster_celery.app -y <yaml>``
(README "Celery"). Past one host in production, Kubernetes (``dagster-k8s``) remains the path.
"""

from __future__ import annotations

import os

import dagster as dg

from snoiq_assets.settings import Settings

BROKER_ENV = "SNOIQ_CELERY_BROKER"
BACKEND_ENV = "SNOIQ_CELERY_BACKEND"


def build_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The Celery executor for ``settings.executor == "celery"``; None keeps Dagster's default
    (steps in subprocesses of the run's process)."""
    if settings.executor != "celery":
        return None
    from dagster_celery import celery_executor

    backend = BACKEND_ENV if os.environ.get(BACKEND_ENV) else BROKER_ENV
    return celery_executor.configured({"broker": {"env": BROKER_ENV}, "backend": {"env": backend}},
                                      name="celery")
