"""The champion decision: is the best new model promoted over the current champion?

A candidate is promoted when there is no champion yet, or when it beats the champion's metric
(re-scored on the candidate's test period where possible) by more than ``min_improvement``; and,
unless told otherwise, only when it beats both baselines (persistence and climatology).
"""

from __future__ import annotations

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


def decide(best: dict, current: Optional[dict], metric: str, min_improvement: float, require_beats_baselines: bool,
           rescore_current: Callable[[], tuple[float, str]]) -> Decision:
    """``best``: the candidate's trained_models row; ``current``: the champion record (or None);
    ``rescore_current``: the champion's metric on the candidate's test period and how it was
    obtained (raises ModelError when it cannot be re-scored; the stored value is used then)."""
    check_rule(metric, min_improvement)
    cand_value = float(best[metric])
    if require_beats_baselines and not (best["skill_persistence"] > 0 and best["skill_climatology"] > 0):
        return Decision(False, f"best candidate ({best['model_type']}) does not beat both baselines "
                               f"(skill vs persistence {best['skill_persistence']:.3f}, "
                               f"vs climatology {best['skill_climatology']:.3f})")
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
