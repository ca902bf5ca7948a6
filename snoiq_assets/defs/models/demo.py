"""Run configs for the demo on the bundled data: the real GSOD Portland file (station-only
features), daily precipitation, all three model types, promotion and a prediction window.

    from snoiq_assets.defs.models.demo import demo_run_config
    dg.materialize([...], run_config=demo_run_config("train"), partition_key="xgboost")
"""

from __future__ import annotations

from typing import Any

DEMO_STATION = "72698024229"  # PORTLAND INTERNATIONAL AIRPORT, OR (GSOD)
DEMO_TARGET = "precip_mm"


def demo_run_config(step: str = "all", *, station: str = DEMO_STATION, target: str = DEMO_TARGET,
                    resolution_days: int = 1, split_date: str = "2022-06-01",
                    predict_start: str = "2023-01-01", predict_end: str = "2023-12-31",
                    fast: bool = False) -> dict[str, Any]:
    """step: "table", "train", "champion", "predict" or "all" (every op's config)."""
    hp = {"n_estimators": 60} if fast else {}
    ops: dict[str, Any] = {
        "training_table": {"config": {"target": target, "resolution_days": resolution_days, "locations": [station]}},
        "trained_models": {"config": {"target": target, "location": station, "resolution_days": resolution_days,
                                      "feature_set": "all", "split_date": split_date, "cv_folds": 2 if fast else 3,
                                      "hyperparameters": hp}},
        "champion_model": {"config": {"location": station, "target": target, "min_improvement": 0.02}},
        "predictions": {"config": {"location": station, "target": target, "start_date": predict_start, "end_date": predict_end}},
    }
    wanted = {"table": ["training_table"], "train": ["trained_models"], "champion": ["champion_model"],
              "predict": ["predictions"], "all": list(ops)}
    if step not in wanted:
        raise ValueError(f"unknown demo step {step!r}; use one of {', '.join(wanted)}")
    return {"ops": {k: ops[k] for k in wanted[step]}}
