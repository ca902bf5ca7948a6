"""Shared fixtures: real data, a real S3 server, stores on both backends, a real instance."""

import os

# The suite runs two workers on two cores (`make test`), and each model fit asks for every
# core. OpenMP's threads (LightGBM, XGBoost) spin while they wait at each barrier, so a fit
# sharing the machine with the other worker burns CPU that worker needs and waits on a thread
# that is not running: on the road-weather LightGBM fit, 15.4 s against a busy core (19 CPU-s)
# instead of 10.2 s passive (10.4 CPU-s); alone, passive waiting costs it 6.7 -> 9.5 s. Set
# before any test imports an OpenMP library (it reads this at load) and inherited by the
# tests' subprocesses (the demo, `dg dev`, the CLI). A setting of the caller's own is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Python's sqlite3 must bind the system SQLite before eccodes loads: eckitlib bundles SQLite
# 3.26, and a test module importing eccodes at collection would otherwise leave MLflow (needs
# >= 3.31) with the old one for the whole session.
import sqlite3  # noqa: F401  isort: skip

# pyproj must be loaded before eccodes: the two wheels bundle clashing native libraries and
# the other order crashes the interpreter at exit (seen with eccodeslib 2.50 + pyproj 3.7).
import pyproj  # noqa: F401  isort: skip

import gc
import shutil
from pathlib import Path

import pytest

from snoiq_assets.lib.storage import LocalStore, ObjectStore, S3Store
from snoiq_assets.settings import Settings
from snoiq_assets_tests.helpers import fresh_mlflow_db
from snoiq_assets_tests.s3server import SeaweedS3

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"


def pytest_configure(config):
    """One folder of packed synthetic GRIB messages for the whole session (``lib/hrrr/synth.py``,
    ``CACHE_ENV``): set by the controlling process before its workers start, so they, and the
    demos and CLI commands the tests start, pack each field once between them instead of once
    per process (~100 CPU-s of a run). Next to the tests' scratch folder; removed at the end."""
    import tempfile

    from snoiq_assets.lib.hrrr.synth import CACHE_ENV

    if os.environ.get(CACHE_ENV):   # a worker (it inherited the controller's) or the caller's own
        return
    basetemp = config.getoption("basetemp", None)
    parent = Path(basetemp).resolve().parent if basetemp else None
    folder = tempfile.mkdtemp(prefix="snoiq-synth-grib-", dir=parent if parent and parent.is_dir() else None)
    os.environ[CACHE_ENV] = folder
    config.stash[_SYNTH_CACHE] = folder


def pytest_unconfigure(config):
    folder = config.stash.get(_SYNTH_CACHE, None)
    if folder:
        from snoiq_assets.lib.hrrr.synth import CACHE_ENV

        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(CACHE_ENV, None)


_SYNTH_CACHE = pytest.StashKey[str]()


def instance_overrides(home: Path) -> dict:
    """What the in-process tests' instances store differently from `make dev`'s (dagster.local.yaml,
    which the UI, CLI and demo tests keep): the event log in one SQLite file, Dagster's own
    storage for tests, not one new database per run (creating and stamping a run's database is
    ~0.12 s of every run); and no captured step output (two `tail` processes per step). Runs,
    events, asset and check history are stored as always."""
    return {
        "event_log_storage": {"module": "dagster._core.storage.event_log",
                              "class": "ConsolidatedSqliteEventLogStorage",
                              "config": {"base_dir": str(home / "history")}},
        "compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager",
                         "class": "NoOpComputeLogManager"},
    }


@pytest.fixture(autouse=True)
def _no_inherited_defs_state_storage():
    """Each test starts without Dagster's current defs-state storage. Entering an instance sets
    it (a context variable); a sensor context that builds its resources lazily enters an
    ephemeral instance it never exits, so a later test could find a storage whose instance was
    garbage-collected ("Attempted to resolve undefined DagsterInstance weakref"), depending on
    when the collector ran. Autouse fixtures run first, so a test's own instance still sets it.
    A context left unexited is worse: when the collector closes its suspended generator, the
    generator's ``finally`` resets the variable to the storage current when it was entered, in
    whatever test is running then. So tests enter their contexts, and the ``instance`` fixture
    collects leftovers at the end of the test that made them, before this clears the variable."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
    yield
    _current_storage.set(None)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The repo's copy of the real public samples (read-only: copy before writing)."""
    return SAMPLE


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of the samples for tests that modify inputs."""
    dest = tmp_path / "sample"
    shutil.copytree(SAMPLE, dest)
    return dest


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_settings(seaweed) -> Settings:
    """Settings for the s3 profile on a fresh bucket of the test server."""
    return Settings.from_env(seaweed.env(seaweed.create_bucket()))


@pytest.fixture(params=["local", "s3"])
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory) -> Path:
    """An empty MLflow tracking database with MLflow's schema migrations applied. Creating one
    runs some fifty Alembic migrations (2 to 9 s here); a copy opens in milliseconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def settings(backend, tmp_path, request, mlflow_template_db) -> Settings:
    """Settings for the test's backend (local folder or the S3 server), with a fresh home (its
    MLflow database empty, as the first training run would create it)."""
    home = tmp_path / "home"
    fresh_mlflow_db(mlflow_template_db, home / "mlflow.db")
    if backend == "local":
        return Settings.from_env({"SNOIQ_HOME": str(home)})
    seaweed = request.getfixturevalue("seaweed")
    env = seaweed.env(seaweed.create_bucket())
    env["SNOIQ_HOME"] = str(home)
    return Settings.from_env(env)


@pytest.fixture
def store(settings) -> ObjectStore:
    return LocalStore(settings.home) if settings.profile == "local" else S3Store(settings)


@pytest.fixture
def settings_env(settings, monkeypatch) -> Settings:
    """Export ``settings`` to the environment (for code that reads Settings.from_env())."""
    for var in ("SNOIQ_PROFILE", "SNOIQ_S3_ENDPOINT", "SNOIQ_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SNOIQ_PROFILE", settings.profile)
    monkeypatch.setenv("SNOIQ_HOME", str(settings.home))
    if settings.profile == "s3":
        monkeypatch.setenv("SNOIQ_S3_ENDPOINT", settings.s3_endpoint or "")
        monkeypatch.setenv("SNOIQ_BUCKET", settings.bucket)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", settings.access_key_id or "")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", settings.secret_access_key or "")
    return settings


@pytest.fixture
def resources(settings_env):
    """The code location's resources for the test's backend."""
    from snoiq_assets.defs.resources import build_resources

    return build_resources(settings_env)


@pytest.fixture
def instance(tmp_path):
    """A real, persistent Dagster instance in a temp DAGSTER_HOME."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=instance_overrides(home)) as inst:
        yield inst
        # A schedule or sensor context left unexited holds an instance entered from this one's
        # ref; collect it now, inside this test (see _no_inherited_defs_state_storage).
        gc.collect()
