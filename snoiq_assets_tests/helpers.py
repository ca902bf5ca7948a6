"""Small helpers for tests that inspect Dagster results."""

from __future__ import annotations


def failure_messages(result) -> str:
    """The full text (with causes) of every step failure in an ExecuteInProcessResult."""
    texts = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            texts.append(event.event_specific_data.error.to_string())
    return "\n".join(texts)


def location_assets(defs) -> list:
    """Every asset and check of the code location, unbound, for dg.materialize(..., resources=...)."""
    return [*(defs.assets or []), *(defs.asset_checks or [])]
