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
    return _step_config(ops, step)


# A demo step's name -> the ops whose config it needs; "all" gives every op's config.
STEP_OPS = {"table": ["training_table"], "train": ["trained_models"], "champion": ["champion_model"],
            "predict": ["predictions"]}


def _step_config(ops: dict[str, Any], step: str) -> dict[str, Any]:
    """The run config of one demo step: only the ops that step runs (a run accepts only its own)."""
    wanted = {name: keys for name, keys in STEP_OPS.items() if all(k in ops for k in keys)} | {"all": list(ops)}
    if step not in wanted:
        raise ValueError(f"unknown demo step {step!r}; use one of {', '.join(wanted)}")
    return {"ops": {k: ops[k] for k in wanted[step]}}


HOURLY_STATION = "94074"  # USCRN CO Nunn 7 NNE: 48 hourly rows, 2023-01-01T01..2023-01-03T00 UTC
HOURLY_TARGET = "air_temp_c"


def hourly_demo_run_config(step: str = "all", *, fast: bool = False) -> dict[str, Any]:
    """The hourly model on grid-join features: Nunn's 48 hours, the last 12 held out. The minimum
    rows are lowered knowingly (two days of hours is what is bundled). The grid values are
    synthetic, so this model does not beat its baselines and is not promoted: the champion
    decision says why (the promotion rule has no switch)."""
    hp = {"n_estimators": 40, "max_depth": 3} if fast else {"n_estimators": 150, "max_depth": 3}
    ops: dict[str, Any] = {
        # Some of the 46 hours decode fewer variables: keep their rows with those features
        # missing (the tree models take missing values) rather than lose most of two days.
        "training_table": {"config": {"target": HOURLY_TARGET, "hourly": True, "locations": [HOURLY_STATION],
                                      "missing_features": "fill"}},
        "trained_models": {"config": {"target": HOURLY_TARGET, "hourly": True, "location": HOURLY_STATION,
                                      "test_fraction": 0.25, "cv_folds": 2, "min_train_rows": 12, "min_test_rows": 8,
                                      "hyperparameters": hp}},
        "champion_model": {"config": {"location": HOURLY_STATION, "target": HOURLY_TARGET}},
    }
    return _step_config(ops, step)


ROAD_WEATHER_LOCATION = "indot_rwis"  # the name the four stations' models are stored under
ROAD_WEATHER_SITES = ["fort_wayne", "gas_city", "jeffersonville", "scottsburg"]
ROAD_WEATHER_TARGET = "air_temp_c"
# Per type: modest sizes (a random forest of 145,000 rows is the slow one).
ROAD_WEATHER_PARAMS = {
    "xgboost": {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.08},
    "lightgbm": {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 50},
    "random_forest": {"n_estimators": 40, "max_depth": 14, "min_samples_leaf": 20, "max_features": 0.5},
}


def road_weather_demo_run_config(step: str = "all", *, model_type: str = "lightgbm", fast: bool = False) -> dict[str, Any]:
    """The road-weather spec on real data: INDOT stations' 2 m air temperature from HRRR point
    forecasts (raw/point_forecasts/), hourly, leads 1-18, trained on December 2018 - February
    2019 (two rolling-origin folds inside it), tested on March, fitting HRRR's error. The
    champion must beat raw HRRR, persistence and climatology at every lead to be promoted."""
    hp = dict(ROAD_WEATHER_PARAMS[model_type])
    if fast and model_type == "random_forest":  # the slow one; the boosted models keep their size
        hp["n_estimators"] = 20
    ops: dict[str, Any] = {
        "training_table": {"config": {"target": ROAD_WEATHER_TARGET, "hourly": True, "forecast_source": "point_forecasts",
                                      "locations": ROAD_WEATHER_SITES, "leads": list(range(1, 19))}},
        "trained_models": {"config": {"target": ROAD_WEATHER_TARGET, "hourly": True, "location": ROAD_WEATHER_LOCATION,
                                      "locations": ROAD_WEATHER_SITES, "split_date": "2019-03-01", "cv_folds": 2,
                                      "leads": list(range(1, 19)), "residual_of": "raw_forecast",
                                      "hyperparameters": hp}},
        "champion_model": {"config": {"location": ROAD_WEATHER_LOCATION, "target": ROAD_WEATHER_TARGET}},
    }
    return _step_config(ops, step)
