"""What a training run's configuration means: its split point, typed hyperparameters and the
location its models are stored under."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from snoiq_assets.lib.dates import optional_date
from snoiq_assets.lib.keys import safe_identifier
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models.evaluate import RunSpec
from snoiq_assets.lib.models.splits import MIN_TEST_ROWS, MIN_TRAIN_ROWS

INTEGER_PARAMS = {"n_estimators", "max_depth", "num_leaves", "min_child_samples", "min_samples_leaf",
                  "min_samples_split", "subsample_freq", "max_bin", "min_child_weight_int"}


def model_date(text: Optional[str], what: str) -> Optional[dt.date]:
    return optional_date(text, what, ModelError)


def split_point(text: Optional[str], hourly: bool) -> Optional[dt.date | dt.datetime]:
    """A split date (YYYY-MM-DD), or for an hourly model also an hour (YYYY-MM-DDTHH[:MM], UTC)."""
    if not text or not hourly or "T" not in text:
        return model_date(text, "split_date")
    try:
        return dt.datetime.fromisoformat(text if len(text) > 13 else text + ":00").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ModelError(f"split_date={text!r} is not a date (YYYY-MM-DD) or an hour (YYYY-MM-DDTHH)") from None


def typed_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as the libraries want them: whole-number floats of integer parameters
    (a YAML ``100.0``) become ints."""
    return {k: int(v) if k in INTEGER_PARAMS and isinstance(v, float) and v.is_integer() else v for k, v in raw.items()}


def resolve_location(config_location: Optional[str], locations: Optional[list[str]], info: dict) -> tuple[str, list[str]]:
    """(the name models are stored under, the stations trained on), from the config or, when
    it names none, the training table's only location."""
    if config_location:
        name = safe_identifier(config_location, "location")
        return name, list(locations or [name])
    if locations and len(locations) == 1:
        return safe_identifier(locations[0], "location"), list(locations)
    known = info.get("locations") or []
    if len(known) == 1:
        return safe_identifier(known[0], "location"), list(known)
    raise ModelError(f"config 'location' is required when the training table holds several locations ({known[:5]})")


def run_spec(config: dict, model_type: str, stations, features=None) -> RunSpec:
    """The RunSpec of a trained_models config (as the experiments row's ``params`` records it):
    training and its reproduction build the spec with this one function. ``features``: an exact
    list that overrides the config's choice (a reproduction passes the recorded one)."""
    chosen = features if features is not None else config.get("features")
    hourly = bool(config.get("hourly", False))
    return RunSpec(
        model_type=model_type, target=config["target"], locations=tuple(stations) if stations else None,
        resolution_days=config.get("resolution_days", 1), hourly=hourly, feature_set=config.get("feature_set", "all"),
        features=tuple(chosen) if chosen else None, transform="log1p" if config.get("log_transform") else "none",
        params=typed_params(config.get("hyperparameters") or {}), split_date=split_point(config.get("split_date"), hourly),
        test_fraction=config.get("test_fraction", 0.2), cv_folds=config.get("cv_folds", 3), seed=config.get("seed", 0),
        n_jobs=config.get("n_jobs", -1), min_train_rows=config.get("min_train_rows", MIN_TRAIN_ROWS),
        min_test_rows=config.get("min_test_rows", MIN_TEST_ROWS),
        leads=tuple(config["leads"]) if config.get("leads") else None, residual_of=config.get("residual_of"),
    )
