"""Reproduce a past training run from its snapshot: same rows, same parameters and seed.

A run is named by its experiments run id, its MLflow run id, or ``champion:<location>/<target>``
(the current champion of that model). The reproduction reads the run's row (the record of
parameters, stations, metrics and commit), checks the snapshot's bytes against its hash,
retrains with ``run_spec`` (the function training uses) on exactly the recorded features, and
compares every recorded metric.

Verdicts: ``identical`` (every metric equal to the last bit: what a fixed seed, the same thread
count and the same library versions give for all three model types), ``within_tolerance`` (the
largest relative difference is at most ``tolerance``, default 1e-6: what another thread count or
library build can give), ``differ``. The current commit is compared with the recorded one and
the difference reported; nothing is checked out. Nothing of the original run is written: the
report goes to ``reproductions/<run_id>/<timestamp>.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import asdict, dataclass, field

from snoiq_assets.lib.keys import join_key, safe_identifier
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models import experiments as X
from snoiq_assets.lib.models.evaluate import train_and_evaluate
from snoiq_assets.lib.models.runs import run_spec
from snoiq_assets.lib.models.snapshots import read_snapshot
from snoiq_assets.lib.models.store import champion_key, read_metadata
from snoiq_assets.lib.storage import ObjectStore

DEFAULT_TOLERANCE = 1e-6
REPORTS_PREFIX = "reproductions"
_CHAMPION_REF = re.compile(r"^champion:([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)$")


class RunNotFound(ModelError):
    pass


class NotReproducible(ModelError):
    pass


@dataclass
class Reproduction:
    run_id: str
    mlflow_run_id: str | None
    model_type: str
    snapshot_sha256: str
    snapshot_rows: int
    verdict: str  # identical | within_tolerance | differ
    tolerance: float
    max_relative_difference: float
    recorded_commit: str
    current_commit: str
    window_matches: bool
    metrics: dict[str, dict] = field(default_factory=dict)  # name -> {recorded, reproduced, relative_difference}
    reproduced_at: str = ""

    @property
    def same_code(self) -> bool:
        return self.recorded_commit == self.current_commit and not self.current_commit.endswith("+dirty")

    @property
    def ok(self) -> bool:
        return self.verdict in ("identical", "within_tolerance") and self.window_matches

    def summary(self) -> str:
        lines = [f"run {self.run_id} ({self.model_type}, MLflow {self.mlflow_run_id}) from snapshot "
                 f"{self.snapshot_sha256[:12]}... ({self.snapshot_rows} rows)"]
        recorded, current = self.recorded_commit, self.current_commit
        if self.same_code:
            lines.append(f"code: the recorded commit {recorded[:12]}")
        elif recorded == current:
            lines.append(f"code: the recorded commit {recorded.removesuffix('+dirty')[:12]}, but with uncommitted changes "
                         "then and now: the code may differ")
        else:
            lines.append(f"code DIFFERS: recorded {recorded}, running {current} (nothing was checked out; "
                         f"`git checkout {recorded.removesuffix('+dirty')}` runs the recorded code)")
        if not self.window_matches:
            lines.append("the split gave other train/test rows than recorded")
        shown = {"identical": "metrics IDENTICAL",
                 "within_tolerance": f"metrics within tolerance (largest relative difference "
                                     f"{self.max_relative_difference:.3g} <= {self.tolerance:g})",
                 "differ": f"metrics DIFFER (largest relative difference {self.max_relative_difference:.3g} "
                           f"> {self.tolerance:g})"}[self.verdict]
        lines.append(shown)
        for name in ("rmse", "mae", "r2", "skill_persistence", "skill_climatology", "cv_rmse_mean"):
            if name in self.metrics:
                m = self.metrics[name]
                lines.append(f"  {name:18s} recorded {m['recorded']!r:>24}  reproduced {m['reproduced']!r:>24}")
        return "\n".join(lines)


def _row_by_mlflow_id(store: ObjectStore, mlflow_run_id: str) -> dict | None:
    table = X.read_all(store)
    for row in table.to_pylist():
        if row["mlflow_run_id"] == mlflow_run_id:
            return row
    return None


def resolve_run(store: ObjectStore, ref: str) -> dict:
    """The experiments row a reference names; RunNotFound naming the reference otherwise."""
    if not isinstance(ref, str) or not ref.strip():
        raise RunNotFound("no run given: name an experiments run id, an MLflow run id or champion:<location>/<target>")
    ref = ref.strip()
    m = _CHAMPION_REF.match(ref)
    if m:
        key = champion_key(m.group(1), m.group(2))
        if not store.exists(key):
            raise RunNotFound(f"no champion for location {m.group(1)!r} and target {m.group(2)!r} ({key} does not exist)")
        champ = store.get_json(key)
        run_id = champ.get("run_id") or read_metadata(store, champ["model_prefix"]).get("run_id")
        if not run_id:
            raise RunNotFound(f"the champion {champ['model_prefix']} was stored before runs were recorded with it")
        ref = run_id
    try:
        safe_identifier(ref, "run id")
    except ValueError:
        raise RunNotFound(f"{ref!r} is not a run id (letters, digits, '_', '.', '-')") from None
    row = X.read_row(store, ref) or _row_by_mlflow_id(store, ref)
    if row is None:
        raise RunNotFound(f"no run {ref!r}: it is neither an experiments run id nor an MLflow run id in "
                          "experiments/ (nor champion:<location>/<target>)")
    return row


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compare_metrics(recorded: dict, reproduced: dict) -> tuple[dict[str, dict], float]:
    out, worst = {}, 0.0
    for name, old in sorted(recorded.items()):
        if not (old is None or isinstance(old, (int, float))) or isinstance(old, bool):
            continue
        new = reproduced.get(name)
        if _same(old, new):
            rel = 0.0
        elif old is None or new is None:
            rel = math.inf
        else:
            rel = abs(float(new) - float(old)) / max(abs(float(old)), 1e-12)
        worst = max(worst, rel)
        out[name] = {"recorded": old, "reproduced": new, "relative_difference": rel}
    return out, worst


def reproduce(store: ObjectStore, row: dict, *, tolerance: float = DEFAULT_TOLERANCE,
              current_commit: str | None = None) -> Reproduction:
    """Retrain the run of ``row`` from its snapshot and compare; write the report. Refuses
    (ModelError naming the run and the reason) when it cannot be reproduced."""
    run_id = row["run_id"]
    if row["status"] != "success":
        raise NotReproducible(f"run {run_id} failed ({(row.get('error') or '')[:200]}); it has no result to reproduce")
    sha = row.get("snapshot_sha256")
    if not sha:
        raise NotReproducible(f"run {run_id} was trained before snapshots were kept: its rows were not stored")
    if not 0 <= tolerance < 1:
        raise ModelError(f"tolerance must be in [0, 1); got {tolerance}")
    table, info = read_snapshot(store, sha, run_id)
    params = json.loads(row["params"])
    stations = json.loads(row["data_versions"] or "{}").get("stations")
    spec = run_spec(params, row["model_type"], stations, features=info["feature_columns"])
    result = train_and_evaluate(table, info, spec)
    recorded = json.loads(row["metrics"])
    compared, worst = compare_metrics(recorded, result.metrics)
    verdict = "identical" if worst == 0 else ("within_tolerance" if worst <= tolerance else "differ")
    # The split must give the recorded train/test rows (the model's metadata records them).
    window_matches = True
    if row.get("model_prefix"):
        try:
            recorded_window = read_metadata(store, row["model_prefix"])["training_window"]
        except ModelError:  # the model was deleted or is refused: the metrics still compare
            recorded_window = None
        if recorded_window:
            window_matches = all(recorded_window.get(k) == result.window.get(k) for k in recorded_window)
    now = dt.datetime.now(dt.timezone.utc)
    rep = Reproduction(
        run_id=run_id, mlflow_run_id=row.get("mlflow_run_id"), model_type=row["model_type"], snapshot_sha256=sha,
        snapshot_rows=table.height, verdict=verdict, tolerance=tolerance, max_relative_difference=worst,
        recorded_commit=row.get("git_commit") or "unknown", current_commit=current_commit or X.git_commit(),
        window_matches=window_matches, metrics=compared,
        reproduced_at=now.isoformat(),
    )
    store.put_json(join_key(REPORTS_PREFIX, safe_identifier(run_id, "run id"), f"{now:%Y%m%dT%H%M%S%fZ}.json"),
                   {**asdict(rep), "same_code": rep.same_code, "ok": rep.ok})
    return rep
