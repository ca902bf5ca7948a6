"""Which snapshots may go: those of runs that are neither champions nor among the last N
successful runs of their model spec, and that no registered MLflow model version points to.

A snapshot is shared by every run that used the same rows, so it stays while any of its runs
is kept. Snapshots no run references (a run that failed after writing one) may go too.
``plan`` decides and changes nothing (the dry run); ``apply`` deletes what a plan lists,
leaving a ``.pruned.json`` note per snapshot so a later reproduction says "pruned".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models import experiments as X
from snoiq_assets.lib.models.snapshots import list_snapshots, prune_snapshot
from snoiq_assets.lib.models.store import champion_records, read_metadata
from snoiq_assets.lib.storage import ObjectStore


@dataclass
class PrunePlan:
    keep_last: int
    kept: dict[str, list[str]] = field(default_factory=dict)  # sha256 -> why
    prune: dict[str, list[str]] = field(default_factory=dict)  # sha256 -> the runs that used it
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def bytes_freed(self) -> int:
        return sum(self.sizes[s] for s in self.prune)

    def summary(self) -> str:
        lines = [f"{len(self.sizes)} snapshot(s), {sum(self.sizes.values()):,} bytes; keep the last {self.keep_last} "
                 f"run(s) per spec, champions and registered versions"]
        for sha, why in sorted(self.kept.items()):
            lines.append(f"  keep  {sha[:16]}  {self.sizes.get(sha, 0):>12,} B  {'; '.join(sorted(set(why)))}")
        for sha, runs in sorted(self.prune.items()):
            used = f"runs {', '.join(runs[:3])}{'...' if len(runs) > 3 else ''}" if runs else "no run refers to it"
            lines.append(f"  prune {sha[:16]}  {self.sizes[sha]:>12,} B  {used}")
        lines.append(f"{len(self.prune)} to prune, {self.bytes_freed:,} bytes")
        return "\n".join(lines)


def plan(store: ObjectStore, keep_last: int, registered_mlflow_run_ids: set[str]) -> PrunePlan:
    if keep_last < 0:
        raise ModelError(f"keep_last must be 0 or more; got {keep_last}")
    sizes = list_snapshots(store)
    rows = [r for r in X.read_all(store).to_pylist() if r["snapshot_sha256"]]
    out = PrunePlan(keep_last=keep_last, sizes=sizes)
    keep: dict[str, list[str]] = defaultdict(list)

    champions = champion_records(store)
    for champ in champions:
        sha = champ.get("snapshot_sha256")
        if not sha:
            try:
                sha = (read_metadata(store, champ["model_prefix"]).get("snapshot") or {}).get("sha256")
            except ModelError:
                sha = None
        if sha:
            keep[sha].append(f"champion {champ.get('model_prefix')}")
    champion_prefixes = {c.get("model_prefix") for c in champions}

    by_spec: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["model_prefix"] in champion_prefixes:
            keep[r["snapshot_sha256"]].append(f"champion run {r['run_id']}")
        if r["mlflow_run_id"] and r["mlflow_run_id"] in registered_mlflow_run_ids:
            keep[r["snapshot_sha256"]].append(f"registered MLflow run {r['mlflow_run_id']}")
        if r["status"] == "success":
            by_spec[r["spec_key"] or "(no spec)"].append(r)
    for spec, runs in by_spec.items():
        runs.sort(key=lambda r: (r["started_at"], r["run_id"]), reverse=True)
        for r in runs[:keep_last]:
            keep[r["snapshot_sha256"]].append(f"last {keep_last} of {spec}")

    used: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        used[r["snapshot_sha256"]].append(r["run_id"])
    for sha in sizes:
        if sha in keep:
            out.kept[sha] = keep[sha]
        else:
            out.prune[sha] = sorted(used.get(sha, []))
    return out


def apply(store: ObjectStore, prune_plan: PrunePlan) -> list[str]:
    """Delete what the plan lists; return the hashes pruned."""
    done = []
    for sha, runs in sorted(prune_plan.prune.items()):
        prune_snapshot(store, sha, f"retention: not a champion's, not registered, not among the last "
                                   f"{prune_plan.keep_last} runs of its spec", runs)
        done.append(sha)
    return done
