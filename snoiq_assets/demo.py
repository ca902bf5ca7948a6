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

from snoiq_assets.lib.storage import store_from_settings
from snoiq_assets.settings import Settings, SettingsError

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
        graph = defs.resolve_asset_graph()
        self.assets = list(graph.assets_defs)
        self.resources = dict(defs.resources or {})
        self.ok = 0

    def run(self, title: str, selection: list[str], *, partition_key: str | None = None,
            run_config: dict | None = None, tags: dict | None = None) -> dg.ExecuteInProcessResult:
        t0 = time.perf_counter()
        result = dg.materialize(
            self.assets, selection=selection, partition_key=partition_key, run_config=run_config or {},
            instance=self.instance, resources=self.resources, tags=tags, raise_on_error=False,
        )
        took = time.perf_counter() - t0
        if not result.success:
            from snoiq_assets_failure import describe  # pragma: no cover - replaced below

            raise SystemExit(describe(result))
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
    try:
        settings = Settings.from_env()
        store_from_settings(settings).check()
    except SettingsError as exc:
        print(f"snoiq settings error: {exc}", file=sys.stderr)
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
    for prefix in ("lake/", "models/", "quarantine/"):
        keys = [o.key for o in demo.store.list(prefix)]
        if keys:
            top = sorted({"/".join(k.split("/")[:2]) for k in keys})
            print(f"  {demo.store.uri(prefix)}  {len(keys)} objects: {', '.join(t.split('/', 1)[1] for t in top)}")
    print(f"  DuckDB: {settings.duckdb_path}")
    print(f"  Dagster instance: {instance.root_directory}  (see it with `make dev`)")
    return 0


class DemoFailure(RuntimeError):
    pass


def run_all(demo: Demo) -> None:
    raise NotImplementedError  # filled in below once every domain's demo exists


if __name__ == "__main__":
    sys.exit(main())
