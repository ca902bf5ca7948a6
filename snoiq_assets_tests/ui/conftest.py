"""Shared set-up for the UI and CLI tests: a temp Dagster home and a seeded local SNOIQ_HOME.

Everything runs against the real code location (``snoiq_assets.definitions``) in separate
processes, as a user or a CI job would run it; nothing here imports the Definitions into the
test process except to read the expected asset groups.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from snoiq_assets.defs.hrrr.demo import seed_demo as seed_hrrr
from snoiq_assets.defs.stations.assets import register_station_files
from snoiq_assets.defs.stations.demo import seed_demo
from snoiq_assets.lib.storage import LocalStore
from snoiq_assets_tests.ui.dg_dev import chromium

REPO = Path(__file__).resolve().parents[2]
OUTPUT_COPY = REPO / "test-output" / "ui"
STATION = "94074"  # USCRN hourly02 CO Nunn 7 NNE (first 48 hours of 2023), bundled


@dataclass
class Homes:
    dagster_home: Path
    snoiq_home: Path

    def env(self) -> dict[str, str]:
        """The process environment for ``dagster`` commands on these homes (local profile)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SNOIQ_", "AWS_", "DAGSTER_", "MLFLOW_"))}
        env.update(SNOIQ_PROFILE="local", SNOIQ_HOME=str(self.snoiq_home),
                   DAGSTER_HOME=str(self.dagster_home), PYTHONUNBUFFERED="1")
        return env

    def instance(self) -> dg.DagsterInstance:
        """A handle on the same instance the subprocesses use (close it after use)."""
        return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.dagster_home)))

    def instance_partitions(self) -> list[str]:
        with self.instance() as instance:
            return instance.get_dynamic_partitions("station_files")

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.snoiq_home)


def make_homes(base: Path, hrrr_partitions: tuple[str, ...] = ()) -> Homes:
    """A Dagster home configured like ``make dev`` and a SNOIQ_HOME with the landed station
    files, their ``station_files`` partitions registered (as the landing sensor would).

    ``hrrr_partitions``: hourly keys (``%Y-%m-%dT%H``) whose synthetic ten-variable f00 GRIBs
    (+ .idx) are also landed under raw/hrrr/ (with the bundled real 2020-12-14T00 f12 subset),
    so hrrr_raw can materialise them with its default config and no network."""
    homes = Homes(base / "dagster_home", base / "snoiq_home")
    homes.dagster_home.mkdir(parents=True)
    homes.snoiq_home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.local.yaml", homes.dagster_home / "dagster.yaml")
    seed_demo(homes.store)
    if hrrr_partitions:
        seed_hrrr(homes.store, synth_partitions=tuple(hrrr_partitions))
    with homes.instance() as instance:
        register_station_files(instance, homes.store)
    return homes


def keep_copy(path: Path, subdir: str) -> Path:
    """Copy an artefact to ``test-output/ui/<subdir>/`` in the repo (gitignored) for people."""
    dest = OUTPUT_COPY / subdir / path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, dest)
    return dest


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the system's) for the Playwright tests of a module."""
    with chromium() as b:
        yield b
