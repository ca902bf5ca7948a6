"""`python -m snoiq_assets.snapshots prune --keep N [--apply]`: prune training-data snapshots.

Keeps the snapshots of current champions, of every run a registered MLflow model version
points to, and of the last N successful runs per model spec; lists the rest. Without
``--apply`` it is a dry run (nothing is deleted). With it, each pruned snapshot leaves
``snapshots/<sha256>.pruned.json``, and reproducing one of its runs is refused as "pruned".
Also `make prune-snapshots KEEP=N` (dry run) and `make prune-snapshots KEEP=N APPLY=1`.
"""

from __future__ import annotations

import argparse
import sys

from snoiq_assets.check import run_store_command
from snoiq_assets.lib.models import retention


def registered_run_ids(settings) -> set[str]:
    """The MLflow run of every registered model version (every version a promotion registered)."""
    from snoiq_assets.defs.models.resources import mlflow_resource

    client = mlflow_resource(settings).client()
    return {mv.run_id for mv in client.search_model_versions(max_results=100_000) if mv.run_id}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snoiq_assets.snapshots", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prune = sub.add_parser("prune", help="prune snapshots no champion, registered version or recent run needs")
    prune.add_argument("--keep", type=int, required=True, help="successful runs to keep per model spec (newest first)")
    prune.add_argument("--apply", action="store_true", help="delete (without it: a dry run)")
    args = parser.parse_args(argv)

    def prune_snapshots(settings, store) -> int:
        plan = retention.plan(store, args.keep, registered_run_ids(settings))
        print(plan.summary())
        if not args.apply:
            print("dry run: nothing deleted (add --apply to prune)")
            return 0
        done = retention.apply(store, plan)
        print(f"pruned {len(done)} snapshot(s), {plan.bytes_freed:,} bytes")
        return 0

    return run_store_command(prune_snapshots)

if __name__ == "__main__":
    sys.exit(main())
