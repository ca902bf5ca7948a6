"""Small helpers for tests: inspecting Dagster results, fresh MLflow databases."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

# hrrr_fields reads station_grid_index (for the station windows, when one is stored): a test
# that materialises hrrr_fields without the station assets declares it as an external asset.
STATION_INDEX_SPEC = dg.AssetSpec("station_grid_index")


def keep_synth_cache(env: dict[str, str]) -> dict[str, str]:
    """``env`` (a subprocess environment the test filtered, which drops ``SNOIQ_*``) with the
    session's folder of packed synthetic fields put back (``lib/hrrr/synth.CACHE_ENV``, set by
    conftest), so the subprocess does not pack them again."""
    from snoiq_assets.lib.hrrr.synth import CACHE_ENV

    if CACHE_ENV in os.environ:
        env[CACHE_ENV] = os.environ[CACHE_ENV]
    return env


def failure_messages(result) -> str:
    """The full text (with causes) of every step failure in an ExecuteInProcessResult."""
    texts = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            texts.append(event.event_specific_data.error.to_string())
    return "\n".join(texts)


def location_assets(defs) -> list:
    """Every asset and check of the code location, unbound, for dg.materialize(..., resources=...)."""
    return [*(defs.assets or []), *(defs.asset_checks or [])]


def fresh_mlflow_db(template: Path, path: Path) -> Path:
    """A new, empty tracking database at ``path`` (what MLflow would create on first use)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return path
