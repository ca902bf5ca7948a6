"""Shared helpers for the benchmarks: timing, results files, a throwaway S3 server."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def wall_times(fn, repeat: int) -> list[float]:
    """Wall time of each of ``repeat`` runs of ``fn``."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def best_of(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by other load on the machine)."""
    return min(wall_times(fn, repeat))


def median_of(fn, repeat: int = 5) -> float:
    return statistics.median(wall_times(fn, repeat))


def write_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))
    print(f"-> {path}")
    return path


def on_both_backends(bench, *args) -> dict:
    """Run ``bench(settings, *args)`` on a temp local folder and on a throwaway SeaweedFS bucket."""
    import tempfile

    from snoiq_assets.settings import Settings
    from snoiq_assets_tests.s3server import SeaweedS3

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["local"] = bench(Settings.from_env({"SNOIQ_HOME": str(Path(tmp) / "home")}), *args)
        server = SeaweedS3(Path(tmp) / "weed").start()
        try:
            env = server.env(server.create_bucket("bench"))
            env["SNOIQ_HOME"] = str(Path(tmp) / "s3home")
            results["s3"] = bench(Settings.from_env(env), *args)
        finally:
            server.stop()
    return results
