"""Which model specs new data touches (no Dagster): the retraining sensor's rule.

New data is a materialisation of a trigger asset: clean observations (partition: a station),
outcomes (a location; target ``outcome``) or grid-join features (a forecast cycle, every
station of the grid index). A spec is touched when the data names one of its locations (any
location for forecasts), its target (observations carry every variable) and, for forecasts, it
is built from them (hourly specs reading grid_join_features; daily specs using grid features),
and only by data newer than the spec's last training table.
"""

from __future__ import annotations

from dataclasses import dataclass

from snoiq_assets.lib.models.specs import ModelSpec, covers


@dataclass(frozen=True)
class NewData:
    kind: str  # observations | outcomes | forecasts
    partition: str | None  # station, outcome location or cycle hour
    storage_id: int


def _touches(spec: ModelSpec, item: NewData) -> bool:
    if item.kind == "observations":
        return covers(spec, stations={item.partition}) and spec.target != "outcome"
    if item.kind == "outcomes":
        return covers(spec, stations={item.partition}, targets={"outcome"})
    return spec.forecast_source == "grid_join_features" and covers(spec, forecast_data=True)


def specs_touched(specs: dict[str, ModelSpec], data: list[NewData], trained_on: dict[str, int]) -> dict[str, set[str]]:
    """spec id -> what new data touches it (e.g. ``observations 94074``), for data newer than
    the spec's last training table (``trained_on``: its storage id)."""
    out: dict[str, set[str]] = {}
    for sid, spec in specs.items():
        for item in data:
            if item.storage_id > trained_on.get(sid, 0) and _touches(spec, item):
                out.setdefault(sid, set()).add(f"{item.kind} {item.partition}")
    return out


def describe(data: list[NewData]) -> str:
    """``observations: 94074, 72698024229; forecasts: 3 cycles``."""
    parts = []
    for kind in ("observations", "outcomes", "forecasts"):
        keys = sorted({d.partition or "(unpartitioned)" for d in data if d.kind == kind})
        if keys:
            parts.append(f"{kind}: {len(keys)} cycle(s) {keys[0]}..{keys[-1]}" if kind == "forecasts"
                         else f"{kind}: {', '.join(keys[:8])}")
    return "; ".join(parts)
