"""The champion decision: is the best new model promoted over the current champion?

A candidate is promoted when it beats every applicable baseline (``baseline_verdict``: a forecast
model persistence, climatology and the raw NWP forecast in RMSE at every lead; any other model
persistence and climatology overall) and, when there is a champion, its metric (re-scored on the
candidate's test period where possible) by more than ``min_improvement``. There is no switch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Optional

from snoiq_assets.lib.models import ModelError

METRICS = ("rmse", "mae")  # lower is better


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    current_value: Optional[float] = None


def check_rule(metric: str, min_improvement: float) -> None:
    if metric not in METRICS:
        raise ModelError(f"metric must be rmse or mae; got {metric!r}")
    if not 0 <= min_improvement < 1:
        raise ModelError(f"min_improvement must be in [0, 1); got {min_improvement}")


def baseline_verdict(candidate: dict) -> Optional[str]:
    """None when a trained_models row beats every applicable baseline on its held-out period, else why not."""
    metrics = json.loads(candidate.get("metrics_json") or "{}")
    if "beats_baselines_every_lead" in metrics:
        failures = metrics.get("baseline_failures") or []
        return None if not failures else f"does not beat every baseline at every lead: {'; '.join(failures[:6])}"
    if candidate["skill_persistence"] > 0 and candidate["skill_climatology"] > 0:
        return None
    return (f"does not beat both baselines (skill vs persistence {candidate['skill_persistence']:.3f}, "
            f"vs climatology {candidate['skill_climatology']:.3f})")


def best_candidate(ranked: list[dict]) -> tuple[dict, Optional[str]]:
    """(the best row that beats every baseline, None), or (the best row, why none qualifies);
    ``ranked`` is sorted best first."""
    verdicts = [baseline_verdict(c) for c in ranked]
    for cand, verdict in zip(ranked, verdicts):
        if verdict is None:
            return cand, None
    return ranked[0], "no candidate beats every baseline: " + "; ".join(
        f"{c['model_type']} {v}" for c, v in zip(ranked, verdicts))


def decide(best: dict, current: Optional[dict], metric: str, min_improvement: float, refusal: Optional[str],
           rescore_current: Callable[[], tuple[float, str]]) -> Decision:
    """``best``: the candidate's trained_models row; ``current``: the champion record (or None);
    ``rescore_current``: the champion's metric on the candidate's test period and how it was
    obtained (raises ModelError when it cannot be re-scored; the stored value is used then);
    ``refusal``: why no candidate beats every baseline (``best_candidate``), or None."""
    check_rule(metric, min_improvement)
    cand_value = float(best[metric])
    if refusal is not None:
        return Decision(False, refusal)
    if current is None:
        return Decision(True, "no current champion")
    if current.get("model_prefix") == best["model_prefix"]:
        return Decision(False, "the best candidate is already the champion")
    try:
        cur_value, how = rescore_current()
    except ModelError as exc:
        cur_value = float(current.get(metric, float("inf")))
        how = f"stored value (could not re-score: {exc})"
    threshold = cur_value * (1 - min_improvement)
    if cand_value < threshold:
        return Decision(True, f"{best['model_type']} {metric} {cand_value:.4f} beats the champion's {cur_value:.4f} "
                              f"({how}) by more than {min_improvement:.1%}", cur_value)
    return Decision(False, f"{best['model_type']} {metric} {cand_value:.4f} does not beat the champion's "
                           f"{cur_value:.4f} ({how}) by {min_improvement:.1%} (needs < {threshold:.4f})", cur_value)
