"""Executor benchmark: the same single-run backfill chunks of hrrr_raw + hrrr_fields (ten default
variables, real HRRR grid) run by Dagster's multiprocess executor and by the Celery executor
(``SNOIQ_EXECUTOR=celery``, two Celery workers on a Debian ``redis-server`` broker started on a
loopback port), on one Dagster instance and one local lake, in the same process.

Each executor backfills its own hours (the same number, from identical GRIBs re-dated per hour),
chunk by chunk, one run at a time, from the code location as deployed (loaded from a file, so
the executor is the one the environment selects). The multiprocess executor runs twice: with
Dagster's default start method (``spawn``: a fresh interpreter per step) as the baseline, and
as the code location configures it (``forkserver``). Throughput = partitions per minute of wall
time over all chunks; the ratios are Celery's over the multiprocess executor's (forkserver), and
forkserver's over spawn's.

Usage: ``.venv/bin/python benchmarks/bench_executors.py [--hours 8] [--chunk 4]``.
Writes benchmarks/results/executors.json.
"""

import pyproj  # noqa: F401  isort: skip  (must load before eccodes/cfgrib)

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from benchmarks._common import write_results  # noqa: E402
from benchmarks.bench_backfill import build_gribs  # noqa: E402

UTC = dt.timezone.utc
START = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)
SPAWN = {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}


def location(tmp: Path, executor: str):
    """The code location built from the environment now (one file per executor: a file is
    imported once per process)."""
    from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

    path = tmp / f"bench_location_{executor}.py"
    path.write_text("from snoiq_assets.definitions import build_definitions\n"
                    "from snoiq_assets.settings import Settings\n"
                    "defs = build_definitions(Settings.from_env())\n")
    return ReconstructableJob(ReconstructableRepository.for_file(str(path), "defs", working_directory=str(ROOT)),
                              "__ASSET_JOB")


def backfill(instance, job, pks: list[str], chunk: int, execution: dict | None = None) -> dict:
    from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES

    sel = {"leads": [0], "variables": list(DEFAULT_VARIABLES)}
    walls = []
    t_all = time.perf_counter()
    for i in range(0, len(pks), chunk):
        part = pks[i:i + chunk]
        t0 = time.perf_counter()
        with dg.execute_job(job, instance=instance, asset_selection=[dg.AssetKey("hrrr_raw"), dg.AssetKey("hrrr_fields")],
                            run_config={"ops": {"hrrr_raw": {"config": sel}, "hrrr_fields": {"config": sel}},
                                        **({"execution": execution} if execution else {})},
                            tags={"dagster/asset_partition_range_start": part[0],
                                  "dagster/asset_partition_range_end": part[-1]}) as result:
            assert result.success, part
        walls.append(time.perf_counter() - t0)
        print(f"  {part[0]}..{part[-1]}: {walls[-1]:.1f} s", flush=True)
    wall = time.perf_counter() - t_all
    return {"partitions": len(pks), "runs": len(walls), "wall_s": wall, "run_wall_s": walls,
            "partitions_per_minute": len(pks) / (wall / 60)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=int, default=8, help="hourly partitions per executor (default 8)")
    ap.add_argument("--chunk", type=int, default=4, help="partitions per single-run backfill (default 4)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="snoiq-bench-executors-"))
    home, dhome = tmp / "snoiq", tmp / "dagster_home"
    home.mkdir()
    dhome.mkdir()
    # the instance as `make` sets it up (SQLite storage): the forkserver preloads its classes
    shutil.copy(ROOT / "dagster.local.yaml", dhome / "dagster.yaml")
    for var in [v for v in os.environ if v.startswith(("SNOIQ_", "AWS_"))]:
        del os.environ[var]
    os.environ.update(SNOIQ_HOME=str(home), SNOIQ_PROFILE="local", DAGSTER_HOME=str(dhome))

    from snoiq_assets.defs.hrrr.assets import hrrr_grid
    from snoiq_assets.defs.resources import build_resources
    from snoiq_assets.lib.hours import hour_key
    from snoiq_assets.lib.hrrr.rawkeys import landing_key
    from snoiq_assets.settings import Settings
    from snoiq_assets_tests.celery_cluster import CeleryCluster

    hours = [START + dt.timedelta(hours=i) for i in range(3 * args.hours)]
    pks = [hour_key(h) for h in hours]
    results: dict = {"hours_per_executor": args.hours, "chunk": args.chunk, "cpu_count": os.cpu_count(),
                     "assets": ["hrrr_raw", "hrrr_fields"]}
    try:
        build_gribs(home, hours)
        with dg.DagsterInstance.get() as instance:
            assert dg.materialize([hrrr_grid], resources=build_resources(Settings.from_env()), instance=instance,
                                  run_config={"ops": {"hrrr_grid": {"config": {"source_key": landing_key(hours[0], 0)}}}}
                                  ).success
            # The baseline: Dagster's default start method, each step a fresh interpreter that
            # imports the code location; then the code location's default, steps forked from one
            # preloaded forkserver per run (defs/executors.py).
            print("multiprocess executor, spawn (Dagster's default start method):")
            results["multiprocess_spawn"] = backfill(instance, location(tmp, "multiprocess"), pks[2 * args.hours:],
                                                     args.chunk, SPAWN)
            print("multiprocess executor, forkserver (the code location's default):")
            results["multiprocess"] = backfill(instance, location(tmp, "multiprocess"), pks[:args.hours], args.chunk)
            with CeleryCluster(tmp / "celery", {**os.environ, "SNOIQ_EXECUTOR": "celery"}, workers=2) as cluster:
                os.environ.update({k: cluster.env[k] for k in ("SNOIQ_EXECUTOR", "SNOIQ_CELERY_BROKER",
                                                                 "SNOIQ_CELERY_BACKEND")})
                print("celery executor, 2 workers:")
                results["celery_2_workers"] = backfill(instance, location(tmp, "celery"), pks[args.hours:2 * args.hours],
                                                         args.chunk)
        results["celery_throughput_ratio_vs_multiprocess"] = (
            results["celery_2_workers"]["partitions_per_minute"] / results["multiprocess"]["partitions_per_minute"])
        results["forkserver_throughput_ratio_vs_spawn"] = (
            results["multiprocess"]["partitions_per_minute"] / results["multiprocess_spawn"]["partitions_per_minute"])
        results["load_average_1m_at_end"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_results("executors", results)


if __name__ == "__main__":
    main()
