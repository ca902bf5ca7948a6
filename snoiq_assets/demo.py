"""`make demo`: land the bundled samples and materialise every asset, on the active profile.

Runs against the persistent instance in $DAGSTER_HOME (the Makefile points it inside
SNOIQ_HOME), so `make dev` afterwards shows every materialisation in the UI.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import dagster as dg

from snoiq_assets.check import checked_settings
from snoiq_assets.lib.models.specs import spec_key
from snoiq_assets.lib.storage import store_from_settings
from snoiq_assets.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SPEC_ASSETS = {"training_table", "trained_models", "champion_model", "predictions"}
# Three March 2019 cycles the road-weather champions predict (leads 1-18 from the point forecasts).
PREDICTED_CYCLES = ("2019-03-15T00", "2019-03-15T02")


def _instance(settings: Settings) -> dg.DagsterInstance:
    import os

    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(REPO / "dagster.local.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


class LandOnce:
    """The store, except that landing a file whose bytes are already there writes nothing: a
    second `make demo` leaves the raw zone (versions, modification times) as it was, so neither
    the demo nor a landing sensor sees a changed file."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _same(self, key: str, data: bytes) -> bool:
        info = self._store.stat(key)
        return info is not None and info.size == len(data) and self._store.get(key) == data

    def put(self, key: str, data: bytes):
        return self._store.stat(key) if self._same(key, data) else self._store.put(key, data)

    def put_file(self, key: str, path):
        data = Path(path).read_bytes()
        return self._store.stat(key) if self._same(key, data) else self._store.put_file(key, path)


def code_version() -> str:
    """A digest of the package's source: any code change makes every demo step stale."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "snoiq_assets").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _raw_prefix(asset: str, partition_key: str | None) -> str:
    """The part of the raw zone a root asset reads (for one partition, where that is known)."""
    if asset == "observations_raw" and partition_key:
        return f"raw/observations/{partition_key}."
    if asset == "outcome_of_interest" and partition_key:
        return f"raw/outcomes/{partition_key}."
    if asset == "hrrr_raw" and partition_key:
        return f"raw/hrrr/{partition_key[:10].replace('-', '')}/hrrr.t{partition_key[11:13]}z."
    return {"station_metadata": "raw/metadata/", "hrrr_raw": "raw/hrrr/", "hrrr_grid": "raw/hrrr/",
            "wandb_export": "raw/wandb/"}.get(asset, "raw/")


class Demo:
    """Runs the demo's steps; a step whose code, configuration and inputs are unchanged since
    the demo last ran it successfully is reported up to date and not run again."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance):
        from snoiq_assets.definitions import defs

        self.settings = settings
        self.instance = instance
        self.store = store_from_settings(settings)
        self.defs = defs
        self.graph = defs.resolve_asset_graph()
        self.code_version = code_version()
        self.materialised: set[dg.AssetKey] = set()   # by a step of this invocation
        self.ok = 0
        self.up_to_date = 0

    def group_keys(self, group: str) -> list[dg.AssetKey]:
        graph = self.graph
        return sorted((k for k in graph.get_all_asset_keys() if graph.get(k).group_name == group), key=str)

    def fingerprint(self, selection: list[str], partition_key: str | None, run_config: dict | None,
                    tags: dict | None) -> str:
        """What a step's result depends on: code, configuration, partition(s) and the raw files its
        root assets read (upstream assets are covered by ``stale_upstream``)."""
        raw = []
        for name in selection:
            if name in SPEC_ASSETS and partition_key:   # a model spec's assets read its file
                raw += sorted((o.key, o.size, o.etag) for o in self.store.list(spec_key(partition_key)))
            if not self.graph.get(dg.AssetKey(name)).parent_keys:
                prefix = _raw_prefix(name, partition_key)
                raw += sorted((o.key, o.size, o.etag) for o in self.store.list(prefix))
        body = json.dumps({"code": self.code_version, "selection": sorted(selection), "partition": partition_key,
                           "range": {k: v for k, v in (tags or {}).items() if "partition_range" in k},
                           "config": run_config, "raw": raw}, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def stale_upstream(self, selection: list[str]) -> list[str]:
        keys = {dg.AssetKey(n) for n in selection}
        parents = {p for k in keys for p in self.graph.get(k).parent_keys} - keys
        return sorted(p.to_user_string() for p in parents & self.materialised)

    def previous_run(self, step: str, fingerprint: str) -> dg.DagsterRun | None:
        runs = self.instance.get_runs(dg.RunsFilter(tags={"snoiq/demo_step": step},
                                                    statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
        return runs[0] if runs and runs[0].tags.get("snoiq/demo_fingerprint") == fingerprint else None

    def run(self, title: str, selection: list[str], *, partition_key: str | None = None,
            run_config: dict | None = None, tags: dict | None = None) -> dg.ExecuteInProcessResult | None:
        t0 = time.perf_counter()
        start, end = ((tags or {}).get(f"dagster/asset_partition_range_{side}") for side in ("start", "end"))
        part = f" [{partition_key}]" if partition_key else f" [{start}...{end}]" if start else ""
        if run_config and "ops" in run_config:
            # Shared config blocks name several assets; a run accepts only its own ops.
            run_config = {**run_config, "ops": {k: v for k, v in run_config["ops"].items() if k in selection}}
        step = f"{title}{part}"
        fingerprint = self.fingerprint(selection, partition_key, run_config, tags)
        upstream = self.stale_upstream(selection)
        previous = None if upstream else self.previous_run(step, fingerprint)
        if previous is not None:
            self.up_to_date += 1
            print(f"  up to date  {step}  (code, config and inputs as in run {previous.run_id[:8]})")
            return None
        # Warnings and errors on the console; the full event log is in the instance (make dev).
        run_config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        # Tagged so the UI's run list says which demo step each run is.
        tags = {**(tags or {}), "snoiq/demo_step": step, "snoiq/demo_fingerprint": fingerprint}
        # Through the code location's asset job, as a launch from the UI or `dg launch` runs: the
        # UI's run list shows the assets a run materialised (an ad-hoc job would show its name,
        # `__ephemeral_asset_job__`), with the step's tag beside them.
        keys = [dg.AssetKey(n) for n in selection]
        result = self.defs.resolve_implicit_job_def_def_for_assets(keys).execute_in_process(
            asset_selection=keys, partition_key=partition_key, run_config=run_config or {},
            instance=self.instance, tags=tags, raise_on_error=False,
        )
        took = time.perf_counter() - t0
        if not result.success:
            raise DemoFailure(f"{step}: {_failure_text(result)}")
        self.ok += 1
        self.materialised |= {dg.AssetKey(n) for n in selection}
        why = f"; upstream {', '.join(upstream)} changed" if upstream else ""
        print(f"  ok  {step}  ({took:.1f}s{why})")
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


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m snoiq_assets.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--land-only", action="store_true",
                        help="only land the bundled samples and register their partitions (`make land`)")
    args = parser.parse_args(argv)
    settings = checked_settings()
    if settings is None:
        return 2
    instance = _instance(settings)
    demo = Demo(settings, instance)
    if args.land_only:
        land(demo)
        print(f"landed in {settings.describe()}; partitions registered in the instance {instance.root_directory}")
        return 0
    print(f"snoiq demo: profile {settings.profile}, outputs in {settings.describe()}")
    try:
        run_all(demo)
    except DemoFailure as exc:
        print(f"demo step failed: {exc}", file=sys.stderr)
        return 1
    if demo.up_to_date:
        print(f"\n{demo.ok} steps materialised, {demo.up_to_date} up to date (nothing they depend on changed "
              f"since the last demo). Outputs:")
    else:
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


def run_spec(demo: Demo, spec_id: str, fast: bool) -> None:
    """One model spec's chain, as retrain_job runs it: its table, its models (every type of the
    spec), its champion decision, and its champion's predictions over the held-out period."""
    from snoiq_assets.defs.models.demo import fast_train_config
    from snoiq_assets.lib.models.specs import read_spec
    from snoiq_assets.lib.models.store import read_champion

    demo.run("training_table", ["training_table"], partition_key=spec_id)
    demo.run("trained_models", ["trained_models"], partition_key=spec_id, run_config=fast_train_config(spec_id, fast))
    _say_decision(demo.run("champion_model", ["champion_model"], partition_key=spec_id))
    spec = read_spec(demo.store, spec_id)
    if read_champion(demo.store, spec.store_location, spec.target) is None:
        print(f"      no champion for {spec_id}: nothing to predict with")
        return
    demo.run("predictions", ["predictions"], partition_key=spec_id)


class DemoFailure(RuntimeError):
    pass


def _say_decision(result: dg.ExecuteInProcessResult | None) -> None:
    if result is None:   # up to date: the decision stands as it was
        return
    meta = result.asset_materializations_for_node("champion_model")[0].metadata
    print(f"      {'promoted' if meta['promoted'].value else 'not promoted'}: {meta['reason'].value[:300]}")


def land(demo: Demo, hourly_model_hours: bool = False) -> tuple[list[str], list[str], list[str]]:
    """Land the bundled samples and the demo's model specs (what a user or an upstream system
    would put in the raw zone) and register their station, outcome and spec partitions (what
    the landing and spec sensors do). Returns
    the HRRR hours, stations and outcome locations landed. ``hourly_model_hours``: also the 46
    synthetic hours the demo's hourly model trains on (landed first, so that every demo step
    sees the same raw zone on a second `make demo`)."""
    from snoiq_assets.defs.datadecide.demo import seed_demo as seed_datadecide
    from snoiq_assets.defs.models.demo import land_specs
    from snoiq_assets.defs.models.specs import register_spec_files
    from snoiq_assets.defs.hrrr.demo import HOURLY_MODEL_PARTITIONS, HOURLY_MODEL_VARIABLES, seed_synthetic_hours
    from snoiq_assets.defs.hrrr.demo import seed_demo as seed_hrrr
    from snoiq_assets.defs.stations.assets import register_outcome_files, register_station_files
    from snoiq_assets.defs.stations.demo import seed_demo as seed_stations

    print("landing the bundled samples in the raw zone (files already there unchanged are left alone)")
    landing = LandOnce(demo.store)
    seed_stations(landing)
    hours = seed_hrrr(landing)
    seed_datadecide(landing)
    land_specs(landing)
    if hourly_model_hours:
        seed_synthetic_hours(landing, HOURLY_MODEL_PARTITIONS, columns=HOURLY_MODEL_VARIABLES, packing="grid_ccsds")
    stations = sorted(set(register_station_files(demo.instance, demo.store))
                      | set(demo.instance.get_dynamic_partitions("station_files")))
    locations = sorted(set(register_outcome_files(demo.instance, demo.store))
                       | set(demo.instance.get_dynamic_partitions("outcome_locations")))
    _new, refused = register_spec_files(demo.instance, demo.store)
    for key, reason in refused.items():
        print(f"  model spec refused and quarantined: {key}: {reason}")
    return hours, stations, locations


def hour_spans(hours: list[str], run_configs: dict[str, dict]) -> list[dict]:
    """``Demo.run`` arguments covering ``hours``: runs of consecutive hours that share a run config
    become one range run (``range_tags``), a lone hour a one-partition run."""
    from snoiq_assets.defs.partitions import range_tags
    from snoiq_assets.lib.hours import hour_of

    groups: list[list[str]] = []
    for hour in sorted(hours):
        last = groups[-1][-1] if groups else None
        if (last is not None and run_configs[hour] == run_configs[last]
                and hour_of(hour) - hour_of(last) == dt.timedelta(hours=1)):
            groups[-1].append(hour)
        else:
            groups.append([hour])
    spans = []
    for group in groups:
        if len(group) == 1:
            spans.append({"partition_key": group[0], "run_config": run_configs[group[0]]})
        else:
            spans.append({"run_config": run_configs[group[0]], "tags": range_tags(group[0], group[-1])})
    return spans


def run_all(demo: Demo) -> None:
    from snoiq_assets.defs.hrrr.demo import DEMO_RUN_CONFIG, HOURLY_MODEL_PARTITIONS, HOURLY_MODEL_RUN_CONFIG, SYNTH_PARTITIONS
    from snoiq_assets.lib.hrrr.rawkeys import partition_landing_key
    from snoiq_assets.defs.models.demo import HOURLY_SPEC, PORTLAND_SPEC, ROAD_WEATHER_SPECS
    from snoiq_assets.defs.partitions import range_tags

    import os

    # SNOIQ_DEMO_FAST=1: fewer trees and CV folds (the test suite's end-to-end run).
    fast = os.environ.get("SNOIQ_DEMO_FAST") == "1"
    hours, stations, locations = land(demo, hourly_model_hours=True)

    print("stations")
    demo.run("station_metadata", ["station_metadata"])
    for station in stations:
        demo.run("observations", ["observations_raw", "observations_clean", "observations_rejects"],
                 partition_key=station)
    for location in locations:
        demo.run("outcome_of_interest", ["outcome_of_interest", "outcome_rejects"], partition_key=location)

    print("hrrr and grid-join features")
    # Consecutive hours with the same selection run as one range, as a backfill runs them: one run
    # (and one decoder child) for the three synthetic hours instead of one per hour.
    spans = hour_spans(hours, DEMO_RUN_CONFIG)
    for span in spans:
        demo.run("hrrr_raw", ["hrrr_raw"], **span)
    grid_source = partition_landing_key(SYNTH_PARTITIONS[0], 0)
    demo.run("hrrr_grid", ["hrrr_grid"], run_config={"ops": {"hrrr_grid": {"config": {"source_key": grid_source}}}})
    # The index before the decode: hrrr_fields takes each lead's station windows as it decodes
    # (hrrr_station_windows), which the grid join then reads instead of the whole grid.
    demo.run("station_grid_index", ["station_grid_index"])
    for span in spans:
        demo.run("hrrr_fields + grid_join_features", ["hrrr_fields", "hrrr_station_windows", "grid_join_features"],
                 **span)
    # The 46 hours the hourly spec trains on; with every other input, before any spec trains, so
    # a spec's table is newer than all the data it covers (the retraining sensor finds nothing new).
    span = range_tags(HOURLY_MODEL_PARTITIONS[0], HOURLY_MODEL_PARTITIONS[-1])
    demo.run("hrrr_raw + hrrr_fields + grid_join_features",
             ["hrrr_raw", "hrrr_fields", "hrrr_station_windows", "grid_join_features"], run_config=HOURLY_MODEL_RUN_CONFIG,
             tags=span)

    print(f"model spec {PORTLAND_SPEC}: daily precipitation at Portland (GSOD)")
    run_spec(demo, PORTLAND_SPEC, fast)

    print(f"model spec {HOURLY_SPEC}: hourly air temperature at USCRN Nunn from grid-join features (48 hours)")
    run_spec(demo, HOURLY_SPEC, fast)

    for spec_id in ROAD_WEATHER_SPECS:
        print(f"model spec {spec_id}: INDOT stations, HRRR point forecasts, leads 1-18, trained Dec-Feb, tested on March")
        run_spec(demo, spec_id, fast)
    print("hourly_predictions: each hourly champion on the forecast cycles its spec covers")
    demo.run("hourly_predictions", ["hourly_predictions"],
             tags=range_tags(*PREDICTED_CYCLES))

    print("datadecide")
    demo.run("datadecide tables", [k.to_user_string() for k in demo.group_keys("datadecide")])


if __name__ == "__main__":
    sys.exit(main())
