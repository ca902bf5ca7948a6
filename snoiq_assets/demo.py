"""`make demo`: land the bundled samples and materialise every asset, on the active profile.

Runs against the persistent instance in $DAGSTER_HOME (the Makefile points it inside
SNOIQ_HOME), so `make dev` afterwards shows every materialisation in the UI.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import dagster as dg

from snoiq_assets.check import checked_settings
from snoiq_assets.lib.storage import store_from_settings
from snoiq_assets.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def _instance(settings: Settings) -> dg.DagsterInstance:
    import os

    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(REPO / "dagster.local.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


class Demo:
    def __init__(self, settings: Settings, instance: dg.DagsterInstance):
        from snoiq_assets.definitions import defs

        self.settings = settings
        self.instance = instance
        self.store = store_from_settings(settings)
        self.defs = defs
        # Unbound definitions: materialize() binds the resources below.
        self.assets = [*(defs.assets or []), *(defs.asset_checks or [])]
        self.resources = dict(defs.resources or {})
        self.ok = 0

    def group_keys(self, group: str) -> list[dg.AssetKey]:
        graph = self.defs.resolve_asset_graph()
        return sorted((k for k in graph.get_all_asset_keys() if graph.get(k).group_name == group), key=str)

    def run(self, title: str, selection: list[str], *, partition_key: str | None = None,
            run_config: dict | None = None, tags: dict | None = None) -> dg.ExecuteInProcessResult:
        t0 = time.perf_counter()
        if run_config and "ops" in run_config:
            # Shared config blocks name several assets; a run accepts only its own ops.
            run_config = {**run_config, "ops": {k: v for k, v in run_config["ops"].items() if k in selection}}
        # Warnings and errors on the console; the full event log is in the instance (make dev).
        run_config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        result = dg.materialize(
            self.assets, selection=selection, partition_key=partition_key, run_config=run_config or {},
            instance=self.instance, resources=self.resources, tags=tags, raise_on_error=False,
        )
        took = time.perf_counter() - t0
        if not result.success:
            raise DemoFailure(f"{title}{f' [{partition_key}]' if partition_key else ''}: {_failure_text(result)}")
        self.ok += 1
        part = f" [{partition_key}]" if partition_key else ""
        print(f"  ok  {title}{part}  ({took:.1f}s)")
        return result


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    lines = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            err = event.event_specific_data.error
            while err.cause is not None:
                err = err.cause
            lines.append(f"{event.step_key}: {err.message.strip()}")
    return "\n".join(lines) or "run failed"


def main() -> int:
    settings = checked_settings()
    if settings is None:
        return 2
    instance = _instance(settings)
    demo = Demo(settings, instance)
    print(f"snoiq demo: profile {settings.profile}, outputs in {settings.describe()}")
    try:
        run_all(demo)
    except DemoFailure as exc:
        print(f"demo step failed: {exc}", file=sys.stderr)
        return 1
    print(f"\n{demo.ok} materialisations done. Outputs:")
    root = str(settings.home) if settings.profile == "local" else f"s3://{settings.bucket}"
    for prefix in ("lake", "models", "quarantine"):
        keys = [o.key for o in demo.store.list(prefix + "/")]
        if keys:
            top = sorted({k.split("/")[1].removesuffix(".parquet") for k in keys})
            print(f"  {root}/{prefix}/  {len(keys)} objects: {', '.join(top)}")
    print(f"  DuckDB: {settings.duckdb_path}")
    print_reproduce_hints(demo.store)
    print(f"  Dagster instance: {instance.root_directory}  (see it with `make dev`)")
    return 0


def print_reproduce_hints(store) -> None:
    """How to retrain each champion from its stored rows and check its metrics."""
    from snoiq_assets.lib.models.store import champion_records

    champions = champion_records(store)
    if champions:
        print("Reproduce a champion from its training-data snapshot (same rows, parameters and seed):")
    for champ in champions:
        location = champ["model_prefix"].split("/")[1]
        print(f"  make reproduce RUN=champion:{location}/{champ['target']}   "
              f"# run {champ.get('run_id')}, snapshot {str(champ.get('snapshot_sha256'))[:12]}...")


class DemoFailure(RuntimeError):
    pass


def run_all(demo: Demo) -> None:
    from snoiq_assets.defs.datadecide.demo import seed_demo as seed_datadecide
    from snoiq_assets.defs.hrrr.demo import (
        DEMO_RUN_CONFIG, HOURLY_MODEL_PARTITIONS, HOURLY_MODEL_RUN_CONFIG, HOURLY_MODEL_VARIABLES, seed_synthetic_hours,
    )
    from snoiq_assets.defs.hrrr.demo import seed_demo as seed_hrrr
    from snoiq_assets.defs.models.demo import demo_run_config, hourly_demo_run_config
    from snoiq_assets.defs.partitions import MODEL_TYPES, range_tags
    from snoiq_assets.defs.stations.assets import register_outcome_files, register_station_files
    from snoiq_assets.defs.stations.demo import seed_demo as seed_stations

    import os

    # SNOIQ_DEMO_FAST=1: fewer trees and CV folds (the test suite's end-to-end run).
    fast = os.environ.get("SNOIQ_DEMO_FAST") == "1"
    print("landing the bundled samples in the raw zone")
    seed_stations(demo.store)
    hours = seed_hrrr(demo.store)
    seed_datadecide(demo.store)

    print("stations")
    demo.run("station_metadata", ["station_metadata"])
    stations = sorted(set(register_station_files(demo.instance, demo.store))
                      | set(demo.instance.get_dynamic_partitions("station_files")))
    for station in stations:
        demo.run("observations", ["observations_raw", "observations_clean", "observations_rejects"],
                 partition_key=station)
    locations = sorted(set(register_outcome_files(demo.instance, demo.store))
                       | set(demo.instance.get_dynamic_partitions("outcome_locations")))
    for location in locations:
        demo.run("outcome_of_interest", ["outcome_of_interest", "outcome_rejects"], partition_key=location)

    print("hrrr")
    for hour in hours:
        demo.run("hrrr_raw", ["hrrr_raw"], partition_key=hour, run_config=DEMO_RUN_CONFIG[hour])
    demo.run("hrrr_grid", ["hrrr_grid"])
    for hour in hours:
        demo.run("hrrr_fields", ["hrrr_fields"], partition_key=hour, run_config=DEMO_RUN_CONFIG[hour])

    print("features")
    demo.run("station_grid_index", ["station_grid_index"])
    for hour in hours:
        demo.run("grid_join_features", ["grid_join_features"], partition_key=hour)
    demo.run("training_table", ["training_table"], run_config=demo_run_config("table", fast=fast))

    print("models")
    for model_type in MODEL_TYPES:
        demo.run("trained_models", ["trained_models"], partition_key=model_type, run_config=demo_run_config("train", fast=fast))
    demo.run("champion_model", ["champion_model"], run_config=demo_run_config("champion", fast=fast))
    demo.run("predictions", ["predictions"], run_config=demo_run_config("predict", fast=fast))

    print("hourly model on grid-join features (USCRN Nunn, 48 hours)")
    seed_synthetic_hours(demo.store, HOURLY_MODEL_PARTITIONS, columns=HOURLY_MODEL_VARIABLES, packing="grid_ccsds")
    span = range_tags(HOURLY_MODEL_PARTITIONS[0], HOURLY_MODEL_PARTITIONS[-1])
    demo.run(f"hrrr_raw + hrrr_fields + grid_join_features [{HOURLY_MODEL_PARTITIONS[0]}...{HOURLY_MODEL_PARTITIONS[-1]}]",
             ["hrrr_raw", "hrrr_fields", "grid_join_features"], run_config=HOURLY_MODEL_RUN_CONFIG, tags=span)
    demo.run("training_table (hourly)", ["training_table"], run_config=hourly_demo_run_config("table", fast=fast))
    demo.run("trained_models (hourly, all types)", ["trained_models"], run_config=hourly_demo_run_config("train", fast=fast),
             tags=range_tags(MODEL_TYPES[0], MODEL_TYPES[-1]))
    demo.run("champion_model (hourly)", ["champion_model"], run_config=hourly_demo_run_config("champion", fast=fast))
    hours = ("2023-01-01T01", HOURLY_MODEL_PARTITIONS[-1])
    demo.run(f"hourly_predictions [{hours[0]}...{hours[1]}]", ["hourly_predictions"],
             tags=range_tags(*hours))

    print("datadecide")
    demo.run("datadecide tables", [k.to_user_string() for k in demo.group_keys("datadecide")])


if __name__ == "__main__":
    sys.exit(main())
