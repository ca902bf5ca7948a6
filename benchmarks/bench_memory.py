"""Peak memory of a day-long single-run chunk of every lead: 24 hourly cycle partitions x 19
leads (f00-f18) of hrrr_raw + hrrr_fields (ten default variables, real HRRR grid, APCP's hourly
bucket, accumulations de-accumulated) in one run, as a worker runs it. The GRIBs are landed
first (``benchmarks/noaa_archive.py``: encoded once per lead, re-dated per cycle), so hrrr_raw
validates them as landed and the run measures decoding and storing.

The run executes in a fresh child process (``dg.materialize``: the steps in that process, as
one step worker), so its peak resident set (``ru_maxrss``) is the run's alone; the decoder child
that ``hrrr_fields`` starts is reported apart (``RUSAGE_CHILDREN`` of the run process). The
baseline, in the same child before the run, is the process after importing the code location.

Usage: ``.venv/bin/python benchmarks/bench_memory.py [--hours 24] [--leads 19]``.
Writes benchmarks/results/memory.json.
"""

import pyproj  # noqa: F401  isort: skip  (must load before eccodes/cfgrib)

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402

UTC = dt.timezone.utc
START = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)
TARGET_BYTES = int(1.5 * 2**30)

RUN = r"""
import pyproj, json, resource, sys, time
sys.path.insert(0, {root!r})
import dagster as dg
from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid, hrrr_raw
from snoiq_assets.defs.resources import build_resources
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES
from snoiq_assets.settings import Settings
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
sel = {{"leads": list(range({leads})), "variables": list(DEFAULT_VARIABLES)}}
t0 = time.perf_counter()
with dg.DagsterInstance.get() as instance:
    # no station index here (hrrr_fields' windows input, declared as an external asset): the
    # fields alone, as the memory goal is about a day of decoded leads
    res = dg.materialize([hrrr_raw, hrrr_grid, hrrr_fields, dg.AssetSpec("station_grid_index")],
                         selection=[dg.AssetKey("hrrr_raw"), dg.AssetKey("hrrr_fields")], instance=instance,
                         resources=build_resources(Settings.from_env()),
                         run_config={{"ops": {{"hrrr_raw": {{"config": sel}}, "hrrr_fields": {{"config": sel}}}}}},
                         tags={{"dagster/asset_partition_range_start": {first!r},
                               "dagster/asset_partition_range_end": {last!r}}})
    assert res.success
print(json.dumps({{"baseline_after_imports_bytes": base, "wall_s": time.perf_counter() - t0,
                  "run_process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "decoder_child_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=int, default=24, help="cycle partitions in the single run (default 24, one day)")
    ap.add_argument("--leads", type=int, default=19, help="leads f00..f(N-1) of each cycle (default 19)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="snoiq-bench-memory-"))
    home, dhome = tmp / "snoiq", tmp / "dagster_home"
    home.mkdir()
    dhome.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOIQ_", "AWS_"))}
    env.update(SNOIQ_HOME=str(home), SNOIQ_PROFILE="local", DAGSTER_HOME=str(dhome))
    os.environ.update(env)

    import dagster as dg

    from benchmarks.noaa_archive import land_locally
    from snoiq_assets.defs.hrrr.assets import hrrr_grid
    from snoiq_assets.defs.resources import build_resources
    from snoiq_assets.lib.hours import hour_key
    from snoiq_assets.lib.hrrr.rawkeys import landing_key
    from snoiq_assets.settings import Settings

    hours = [START + dt.timedelta(hours=i) for i in range(args.hours)]
    try:
        landed = land_locally(home, tmp / "templates", hours, list(range(args.leads)))
        with dg.DagsterInstance.get() as instance:
            assert dg.materialize([hrrr_grid], resources=build_resources(Settings.from_env()), instance=instance,
                                  run_config={"ops": {"hrrr_grid": {"config": {"source_key": landing_key(hours[0], 0)}}}}
                                  ).success
        code = RUN.format(root=str(ROOT), first=hour_key(hours[0]), last=hour_key(hours[-1]), leads=args.leads)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"the run failed:\n{out.stderr[-4000:]}")
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        lake = home / "lake" / "hrrr_fields"
        measured["lake_files"] = sum(1 for _ in lake.rglob("f*.parquet"))
        measured["lake_bytes"] = sum(p.stat().st_size for p in lake.rglob("f*.parquet"))
        measured["spill_left"] = sorted(str(p.relative_to(home)) for p in (home / ".spill").rglob("*")) \
            if (home / ".spill").exists() else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak = measured["run_process_peak_rss_bytes"]
    cycle_leads = args.hours * args.leads
    results = {
        "what": f"one run, {args.hours} cycle partitions x {args.leads} leads of hrrr_raw + hrrr_fields, "
                "10 variables, GRIBs landed beforehand",
        "partitions": args.hours, "leads_per_partition": args.leads, "cycle_leads": cycle_leads,
        "grib_bytes_landed": landed["grib_bytes_total"], **measured,
        "run_process_peak_rss_mib": peak / 2**20,
        "per_cycle_lead_above_baseline_mib": (peak - measured["baseline_after_imports_bytes"]) / cycle_leads / 2**20,
        "target_bytes": TARGET_BYTES, "target_met": peak < TARGET_BYTES,
        "cpu_count": os.cpu_count(), "load_average_1m_at_end": os.getloadavg()[0],
    }
    write_results("memory", results)


if __name__ == "__main__":
    main()
