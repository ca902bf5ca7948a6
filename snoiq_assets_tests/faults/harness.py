"""Fault injection at named points, modelled on Dagster's daemon crash-recovery tests (which
kill a spawned process at named points and check what the next tick does).

``FaultyStoreResource`` is the real ``ObjectStoreResource`` whose store (LocalStore or S3Store,
unchanged) calls ``fire(point, key)`` at named points of its writes:

- ``write:<prefix>``      before an object under ``<prefix>`` is written (put, put_file, the
                          rename/upload that publishes an ``atomic_local_file``, or the rename
                          that adopts a spilled file);
- ``published:<prefix>``  right after such an object became visible;
- ``quarantine-move``     after a quarantine's reason file is written, before the file moves.

``arm(point, action, nth=1)`` makes the n-th time that point is reached run ``action``: kill
the S3 server (in-process tests), or ``kill_self`` (SIGKILL of the step worker, in a
subprocess started by ``run_killed``). Nothing in the platform's code knows about this.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.storage import ObjectStore, S3Store

REPO = Path(__file__).resolve().parents[2]
_ARMED: dict[str, list] = {}
_LOCK = threading.Lock()


def arm(point: str, action, nth: int = 1) -> None:
    _ARMED[point] = [nth, action]


def disarm() -> None:
    _ARMED.clear()


def fire(point: str) -> None:
    with _LOCK:
        entry = _ARMED.get(point)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] != 0:
            return
        del _ARMED[point]
    entry[1]()


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _fire_for_key(kind: str, key: str) -> None:
    for point in list(_ARMED):
        if point.startswith(kind + ":") and key.startswith(point.split(":", 1)[1]):
            fire(point)


def faulty(store: ObjectStore) -> ObjectStore:
    """The same store object (same state), with the named points compiled in by a subclass."""
    base = type(store)

    class Faulty(base):  # type: ignore[misc, valid-type]
        def put(self, key, data):
            _fire_for_key("write", key)
            info = super().put(key, data)
            _fire_for_key("published", key)
            return info

        def put_file(self, key, path):
            _fire_for_key("write", key)
            info = super().put_file(key, path)
            _fire_for_key("published", key)
            return info

        def adopt_file(self, key, path):
            if base.adopt_file is ObjectStore.adopt_file:   # S3: an upload through put_file
                return super().adopt_file(key, path)
            _fire_for_key("write", key)                     # LocalStore: the spilled file, not yet renamed
            info = super().adopt_file(key, path)
            _fire_for_key("published", key)
            return info

        @contextlib.contextmanager
        def atomic_local_file(self, key):
            with super().atomic_local_file(key) as path:
                yield path
                if base.atomic_local_file is not ObjectStore.atomic_local_file:
                    _fire_for_key("write", key)   # LocalStore: the bytes are in the temp file, not yet renamed
            if base.atomic_local_file is not ObjectStore.atomic_local_file:
                _fire_for_key("published", key)

        def move(self, src, dst):
            if dst.startswith("quarantine/"):
                fire("quarantine-move")
            return super().move(src, dst)

    Faulty.__name__ = "Faulty" + base.__name__
    out = object.__new__(Faulty)
    out.__dict__ = store.__dict__
    return out


class FaultyStoreResource(ObjectStoreResource):
    # S3 only: one attempt with this timeout instead of the store's default (20 s, 3 attempts),
    # so that a test of a hung server takes seconds.
    client_timeout_s: Optional[float] = None

    def get_store(self) -> ObjectStore:
        if self._store is None:
            store = super().get_store()
            if self.client_timeout_s and isinstance(store, S3Store):
                store = S3Store(store.settings, timeout_s=self.client_timeout_s, retries=0)
            self._store = faulty(store)
        return self._store


def faulty_resources(resources: dict, client_timeout_s: float | None = None) -> dict:
    """``resources`` with the store (and the IO manager's store) made faulty."""
    from snoiq_assets.defs.io_manager import PartitionedParquetIOManager

    plain = resources["store"]
    store = FaultyStoreResource(**{k: getattr(plain, k) for k in ObjectStoreResource.model_fields},
                                client_timeout_s=client_timeout_s)
    return {**resources, "store": store, "io_manager": PartitionedParquetIOManager(store=store)}


def run_killed(scenario: str, point: str, nth: int, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``scenario`` of faults/worker.py in a fresh process that SIGKILLs itself at ``point``."""
    return subprocess.run(
        [sys.executable, "-m", "snoiq_assets_tests.faults.worker", scenario, json.dumps({"point": point, "nth": nth})],
        cwd=REPO, env={**_inherited_env(), **env}, capture_output=True, text=True, timeout=timeout)


def _inherited_env() -> dict[str, str]:
    """This process's environment without MLflow's: MLflow's fluent API exports the tracking URI
    of the last run this test worker logged (``mlflow.set_tracking_uri`` sets
    ``MLFLOW_TRACKING_URI``), which would point the child at another test's database (and its
    experiments' artifact locations, e.g. a bucket without credentials here)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
