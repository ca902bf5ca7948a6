"""`python -m snoiq_assets.reproduce RUN`: retrain a past run from its snapshot and compare.

RUN is an experiments run id (``experiments.run_id``), an MLflow run id, or
``champion:<location>/<target>``. Says whether the current git commit is the recorded one
(nothing is checked out), retrains from ``snapshots/<sha256>.parquet`` with the recorded
parameters and seed, and prints recorded against reproduced metrics. Writes a report to
``reproductions/<run_id>/``; never touches the original run's files or rows.

Exit status: 0 metrics identical or within tolerance; 1 they differ; 2 refused (unknown run,
snapshot pruned, missing or not matching its hash, a failed run, bad settings).
Also `make reproduce RUN=<id>`, and the `reproduce_job` in the Dagster UI.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from snoiq_assets.check import run_store_command
from snoiq_assets.lib.models.reproduce import DEFAULT_TOLERANCE, reproduce, resolve_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snoiq_assets.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="experiments run id, MLflow run id, or champion:<location>/<target>")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest relative metric difference accepted when not identical (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    def reproduce_run(_settings, store) -> int:
        rep = reproduce(store, resolve_run(store, args.run), tolerance=args.tolerance)
        if args.json:
            print(json.dumps({**asdict(rep), "same_code": rep.same_code, "ok": rep.ok}, indent=2, default=str))
        else:
            print(rep.summary())
        return 0 if rep.ok else 1

    return run_store_command(reproduce_run)

if __name__ == "__main__":
    sys.exit(main())
