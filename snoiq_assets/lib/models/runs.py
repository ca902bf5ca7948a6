"""What a training run's configuration means: its split point, typed hyperparameters and the
location its models are stored under."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from snoiq_assets.lib.dates import optional_date
from snoiq_assets.lib.keys import safe_identifier
from snoiq_assets.lib.models import ModelError

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
