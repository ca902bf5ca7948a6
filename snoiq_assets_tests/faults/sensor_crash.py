"""One sensor daemon iteration, as Dagster's daemon runs it, optionally killed at a named point
(Dagster's own ``debug_crash_flags``: TICK_CREATED, TICK_HELD, RUN_CREATED, RUN_LAUNCHED)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.sensor import execute_sensor_iteration

REPO = Path(__file__).resolve().parents[2]
SENSOR = "station_file_landing_sensor"
TARGET = ModuleTarget(module_name="snoiq_assets_tests.faults.sensor_defs", attribute="defs",
                      working_directory=str(REPO), location_name="faults")


def iterate(instance_dir: str, now: float, crash_at: str | None = None) -> None:
    import signal

    flags = {SENSOR: {crash_at: signal.SIGKILL}} if crash_at else None
    with DagsterInstance.from_config(instance_dir) as instance, \
            create_test_daemon_workspace_context(TARGET, instance) as context, freeze_time(now):
        sensor = next(s for s in context.create_request_context().get_code_location("faults")
                      .get_repository("__repository__").get_sensors() if s.name == SENSOR)
        if not instance.get_instigator_state(sensor.get_remote_origin_id(), sensor.selector_id) or \
                not instance.get_instigator_state(sensor.get_remote_origin_id(), sensor.selector_id).is_running:
            instance.start_sensor(sensor)
        list(execute_sensor_iteration(context, logging.getLogger("sensor"), threadpool_executor=None,
                                      submit_threadpool_executor=None, debug_crash_flags=flags))


def at(minutes: float) -> float:
    return (dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minutes)).timestamp()
