"""The one way an asset fails a run in which only some partitions (or models) failed: see
``lib/failures.py``. The metadata names the failed items with their reasons and the good ones;
the first failure's details (file, quarantined_to, message number ...) are also shown flat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import dagster as dg
import polars as pl

from snoiq_assets.lib.failures import PartialFailures


def partial_failure(failures: PartialFailures, consequence: str, **metadata) -> dg.Failure:
    first = failures.failed[failures.in_order()[0]]
    flat = {k: ("" if v is None else v) for k, v in first.items() if k != "error" and isinstance(v, (str, int, float))}
    return dg.Failure(
        description=failures.message(consequence),
        metadata={
            f"failed_{failures.what}": dg.MetadataValue.json(failures.failed),
            f"good_{failures.what}": dg.MetadataValue.json(failures.good),
            **flat,
            **metadata,
        },
    )


@dataclass(frozen=True)
class StoreGoodThenFail:
    """What an asset returns when the partitions that succeeded are real results worth keeping
    although others failed (trained_models: a model that trained is a model). The IO manager
    stores ``frames`` (one file and one materialisation per partition), then raises
    ``failure``, so only the failed partitions stay missing and are retried.

    ``also``: the good partitions of other assets of the same step, stored and recorded the same
    way before the failure is raised (hrrr_fields' station windows: Dagster takes a multi-asset's
    outputs in dependency order, and the step ends at the first output that fails)."""

    frames: dict[str, Any]
    failure: dg.Failure
    also: dict[dg.AssetKey, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Audited:
    """What an asset returns when its output must pass ``audit`` (the same rule as its blocking
    check) before anyone can read it: write-audit-publish. The IO manager writes each partition
    of ``frames`` (a frame, or ``{partition_key: frame}``) to staging, runs ``audit`` on the
    staged data, and publishes it into the lake only if the audit returns None; otherwise the
    step fails with the audit's reason and the partition is neither in the lake nor recorded."""

    frames: Any
    audit: Callable[[pl.DataFrame], str | None]
