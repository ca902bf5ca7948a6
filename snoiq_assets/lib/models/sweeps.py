"""Sweep files: a grid of trained_models runs of one model spec, written as YAML by a user.

``raw/sweeps/<sweep_id>.yaml`` (the sweep id is the file name)::

    spec: portland_precip           # the model spec the runs train (raw/model_specs/<spec>.yaml)
    tag: depth-vs-rate              # optional: short tag on every run's experiments row
    description: does depth matter more than the learning rate?   # optional free text
    model_types: [xgboost]          # default [xgboost]; one run per type and grid point
    parallel: 2                     # runs side by side; each fit gets cpus // parallel threads
    base:                           # trained_models run config shared by every run
      cv_folds: 2
      hyperparameters: {n_estimators: 100}
    grid:                           # hyperparameter -> values; every combination is one run
      max_depth: [3, 5]
      learning_rate: [0.03, 0.1]

No Dagster here: ``parse_sweep`` checks the document and says what is wrong with it; the
sensor in defs/models/sensors.py turns a valid one into runs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any


from snoiq_assets.lib.cpus import available_cpus
from snoiq_assets.lib.keys import UnsafeNameError, safe_identifier
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models.experiments import check_tag
from snoiq_assets.lib.models.train import MODEL_TYPES
from snoiq_assets.lib.yamldoc import load_mapping

SWEEPS_PREFIX = "raw/sweeps/"
SWEEP_SUFFIXES = (".yaml", ".yml")
MAX_RUNS = 200  # a typo in a grid should not queue ten thousand runs
KEYS = {"spec", "model_types", "parallel", "base", "grid", "tag", "description"}


class SweepError(ModelError):
    """A sweep file that cannot be run; the message names the file and what is wrong."""


def sweep_id_for_key(key: str) -> str:
    """``raw/sweeps/depth-vs-rate.yaml`` -> ``depth-vs-rate`` (a safe identifier, or refused)."""
    name = key[len(SWEEPS_PREFIX):]
    if "/" in name or not name.endswith(SWEEP_SUFFIXES):
        raise UnsafeNameError(f"{key!r} is not raw/sweeps/<sweep_id>.yaml")
    return safe_identifier(name.rsplit(".", 1)[0], "sweep id")


@dataclass(frozen=True)
class SweepSpec:
    sweep_id: str
    spec_id: str
    model_types: tuple[str, ...]
    parallel: int
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return len(self.model_types) * math.prod(len(v) for v in self.grid.values())


def parse_sweep(text: str | bytes, sweep_id: str, where: str, config_fields: set[str] | None = None) -> SweepSpec:
    """Parse and check a sweep document. ``config_fields``: the keys ``base`` may use (the
    trained_models config's fields); ``where`` names the file in every error."""
    doc = load_mapping(text, where, f"a sweep is a mapping with keys {sorted(KEYS)}", SweepError)
    unknown = sorted(set(doc) - KEYS)
    if unknown:
        raise SweepError(f"{where}: unknown key(s) {unknown}; a sweep has {sorted(KEYS)}")
    try:
        spec_id = safe_identifier(doc.get("spec"), "spec")
    except UnsafeNameError as exc:
        raise SweepError(f"{where}: a sweep names the model spec it trains (spec: <spec_id>); {exc}") from None
    model_types = doc.get("model_types", ["xgboost"])
    if isinstance(model_types, str):
        model_types = [model_types]
    if not isinstance(model_types, list) or not model_types or any(m not in MODEL_TYPES for m in model_types):
        raise SweepError(f"{where}: model_types must be a non-empty list of {list(MODEL_TYPES)}; got {model_types!r}")
    parallel = doc.get("parallel", 2)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= 16:
        raise SweepError(f"{where}: parallel must be a whole number from 1 to 16; got {parallel!r}")
    base = doc.get("base") or {}
    if not isinstance(base, dict):
        raise SweepError(f"{where}: base must be a mapping of trained_models config; got {type(base).__name__}")
    if "sweep_id" in base:
        raise SweepError(f"{where}: base must not set sweep_id; it is the file name ({sweep_id})")
    for name in ("tag", "description"):
        if name in doc:
            if name in base:
                raise SweepError(f"{where}: {name} is given both at the top and in base; give it once")
            if not isinstance(doc[name], str):
                raise SweepError(f"{where}: {name} must be text; got {doc[name]!r}")
            base = {**base, name: doc[name]}
    try:
        check_tag(base.get("tag"), base.get("description"))
    except ValueError as exc:
        raise SweepError(f"{where}: {exc}") from None
    if config_fields is not None:
        bad = sorted(set(base) - config_fields)
        if bad:
            raise SweepError(f"{where}: base has key(s) {bad} that trained_models config does not know")
    grid = doc.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise SweepError(f"{where}: grid must be a non-empty mapping of hyperparameter -> list of values")
    for name, values in grid.items():
        if not isinstance(name, str) or not isinstance(values, list) or not values:
            raise SweepError(f"{where}: grid.{name} must be a non-empty list of values; got {values!r}")
        if any(isinstance(v, (dict, list)) for v in values):
            raise SweepError(f"{where}: grid.{name} values must be numbers, strings or booleans")
        if name in ("spec", "model_types", "sweep_id"):
            raise SweepError(f"{where}: grid.{name}: the grid varies hyperparameters; set {name} at the top")
    spec = SweepSpec(sweep_id, spec_id, tuple(dict.fromkeys(model_types)), parallel, dict(base), {k: list(v) for k, v in grid.items()})
    if spec.runs > MAX_RUNS:
        raise SweepError(f"{where}: {spec.runs} runs is more than the {MAX_RUNS} a sweep may start; split it")
    return spec


def sweep_run_configs(base: dict[str, Any], grid: dict[str, list[Any]], sweep_id: str,
                      parallel: int = 1, cpus: int | None = None) -> list[dict]:
    """One trained_models run_config per point of the grid.

    ``parallel``: how many of these runs will execute side by side. Each run then gets
    ``cpus // parallel`` threads (at least 1), so k parallel runs do not oversubscribe the
    machine (two runs with all threads each on 2 cores are slower than one after the other).
    A ``n_jobs`` already in ``base`` is kept.
    """
    if parallel < 1:
        raise ModelError(f"parallel must be at least 1; got {parallel}")
    threads = max(1, (cpus or available_cpus()) // parallel)
    keys = sorted(grid)
    configs = []
    for values in itertools.product(*(grid[k] for k in keys)):
        hp = {**base.get("hyperparameters", {}), **dict(zip(keys, values))}
        cfg = {"n_jobs": threads, **base, "hyperparameters": hp, "sweep_id": sweep_id}
        configs.append({"ops": {"trained_models": {"config": cfg}}})
    return configs
