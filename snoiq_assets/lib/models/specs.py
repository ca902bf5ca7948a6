"""Model specs: the unit training tables, trained models, champions and predictions are keyed by.

A spec is a YAML file ``raw/model_specs/<spec_id>.yaml`` (the spec id is the file name)::

    target: air_temp_c                  # a training-table target (lib/features/training.py TARGETS)
    location: indot_rwis                # the name its models are stored under (models/<location>/...);
                                        # default: the only one of `locations`
    locations: [fort_wayne, gas_city]   # stations (or outcome locations) to train on
    resolution: hourly                  # hourly (one row per station, cycle and lead) or daily
    resolution_days: 1                  # daily only: the period length in days
    leads: [1, 2, 3]                    # hourly only: lead hours to train and score on
    forecast_source: point_forecasts    # hourly only: grid_join_features (default) or point_forecasts
    feature_set: all                    # all | station | grid; or `features: [name, ...]`
    transform: residual                 # none | log1p | residual (fit the raw forecast's error)
    split: {split_date: "2019-03-01", cv_folds: 2}   # or test_fraction; min_train_rows, min_test_rows
    table: {missing_features: fill}     # further training-table options (dates, lags, ...)
    hyperparameters: {lightgbm: {n_estimators: 150}}  # per model type
    model_types: [xgboost, lightgbm, random_forest]
    champion: {metric: rmse, min_improvement: 0.02}
    min_retrain_interval_minutes: 60    # retrain this spec at most this often (default: the setting)

No Dagster here: ``parse_spec`` checks the document on its own (ids, target, features, leads,
split) and says what is wrong; ``check_table`` checks it against the table built for it (leads
the data has, rows per lead on each side of the split) and names the number needed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal, Optional

import polars as pl
import pydantic

from snoiq_assets.lib.features.hourly import HOURLY_TARGETS
from snoiq_assets.lib.features.neighbourhood import STATS
from snoiq_assets.lib.features.training import TARGETS
from snoiq_assets.lib.keys import UnsafeNameError, safe_identifier
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models.evaluate import FEATURE_SETS
from snoiq_assets.lib.models.splits import MIN_TEST_ROWS, MIN_TRAIN_ROWS
from snoiq_assets.lib.models.train import MODEL_TYPES
from snoiq_assets.lib.yamldoc import load_mapping

SPECS_PREFIX = "raw/model_specs/"
SPEC_SUFFIXES = (".yaml", ".yml")
MAX_LEAD = 48  # HRRR's longest forecast
TRANSFORMS = ("none", "log1p", "residual")

# What a listed feature may be called: the columns the daily and hourly table builders make.
_STATS = "|".join(STATS)
FEATURE_PATTERNS = [re.compile(p) for p in (
    rf"grid_[A-Za-z0-9_]+__({_STATS})(__lag1)?",      # grid-join 5x5 statistics (daily: their lag)
    r"target__lag\d+h?",                               # the target's lags (hourly: before the cycle)
    r"[a-z0-9_]+__roll\d+d", r"[a-z0-9_]+__lag1",     # daily rolling means and lags of a variable
    r"forecast_hour|hour_sin|hour_cos|season_sin|season_cos|nwp_at_cycle|obs_minus_nwp_at_cycle",
)]


class SpecError(ModelError):
    """A spec that cannot be used; the message names the file and what is wrong."""


def spec_id_for_key(key: str) -> str:
    """``raw/model_specs/portland_precip.yaml`` -> ``portland_precip`` (a safe identifier, or refused)."""
    name = key[len(SPECS_PREFIX):] if key.startswith(SPECS_PREFIX) else key
    if "/" in name or not name.endswith(SPEC_SUFFIXES):
        raise UnsafeNameError(f"{key!r} is not {SPECS_PREFIX}<spec_id>.yaml")
    return safe_identifier(name.rsplit(".", 1)[0], "spec id")


def spec_key(spec_id: str) -> str:
    return f"{SPECS_PREFIX}{safe_identifier(spec_id, 'spec id')}.yaml"


class Split(pydantic.BaseModel, extra="forbid"):
    split_date: Optional[str] = None  # train before, test from (YYYY-MM-DD or YYYY-MM-DDTHH)
    test_fraction: float = pydantic.Field(0.2, gt=0, lt=1)
    cv_folds: int = pydantic.Field(3, ge=1, le=10)
    min_train_rows: int = pydantic.Field(MIN_TRAIN_ROWS, ge=1)
    min_test_rows: int = pydantic.Field(MIN_TEST_ROWS, ge=2)

    @pydantic.field_validator("split_date")
    @classmethod
    def _date(cls, v):
        if v is not None:
            try:
                dt.datetime.fromisoformat(v)
            except ValueError:
                raise ValueError(f"split_date {v!r} is not YYYY-MM-DD or YYYY-MM-DDTHH") from None
        return v

    def split_point(self) -> Optional[dt.datetime]:
        if self.split_date is None:
            return None
        t = dt.datetime.fromisoformat(self.split_date)
        return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t


class TableOptions(pydantic.BaseModel, extra="forbid"):
    start_date: Optional[str] = None
    end_date: Optional[str] = None
    lags: list[int] = [1, 2, 3]
    rolling_windows: list[int] = [3, 7, 14, 30]
    min_coverage: float = 0.5
    use_grid_features: bool = True
    outcome_agg: str = "mean"
    hourly_lags: Optional[list[int]] = None
    missing_features: Literal["drop", "fill"] = "drop"


class ChampionOptions(pydantic.BaseModel, extra="forbid"):
    metric: Literal["rmse", "mae"] = "rmse"
    min_improvement: float = pydantic.Field(0.02, ge=0, lt=1)
    registered_model_name: Optional[str] = None


class ModelSpec(pydantic.BaseModel, extra="forbid"):
    spec_id: str
    target: str
    location: Optional[str] = None
    locations: list[str] = pydantic.Field(min_length=1)
    resolution: Literal["daily", "hourly"]
    resolution_days: int = pydantic.Field(1, ge=1, le=366)
    leads: Optional[list[int]] = None
    forecast_source: Literal["grid_join_features", "point_forecasts"] = "grid_join_features"
    feature_set: str = "all"
    features: Optional[list[str]] = None
    transform: Literal["none", "log1p", "residual"] = "none"
    split: Split = Split()
    table: TableOptions = TableOptions()
    hyperparameters: dict[str, dict[str, Any]] = {}
    model_types: list[str] = list(MODEL_TYPES)
    champion: ChampionOptions = ChampionOptions()
    min_retrain_interval_minutes: Optional[int] = pydantic.Field(None, ge=0)
    description: Optional[str] = None

    @property
    def hourly(self) -> bool:
        return self.resolution == "hourly"

    @property
    def store_location(self) -> str:
        return self.location or self.locations[0]

    # ----- the configs of the assets a spec drives ---------------------------------------
    def table_config(self) -> dict[str, Any]:
        """training_table's options (defs/features/assets.py TrainingTableConfig)."""
        t = self.table.model_dump()
        hourly_lags = t.pop("hourly_lags")
        cfg = {"target": self.target, "resolution_days": self.resolution_days, "locations": list(self.locations),
               "hourly": self.hourly, "leads": self.leads, "forecast_source": self.forecast_source, **t}
        if hourly_lags is not None:
            cfg["hourly_lags"] = hourly_lags
        return cfg

    def train_config(self, model_type: str) -> dict[str, Any]:
        """trained_models' options for one model type (defs/models/training.py TrainModelConfig)."""
        return {"target": self.target, "location": self.store_location, "locations": list(self.locations),
                "resolution_days": self.resolution_days, "hourly": self.hourly, "feature_set": self.feature_set,
                "features": self.features, "log_transform": self.transform == "log1p",
                "residual_of": "raw_forecast" if self.transform == "residual" else None, "leads": self.leads,
                "hyperparameters": dict(self.hyperparameters.get(model_type, {})), **self.split.model_dump()}

    def describe(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def _problems(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()[:6])


def parse_spec(text: str | bytes, spec_id: str, where: str) -> ModelSpec:
    """Parse and check a spec document on its own; ``where`` names the file in every error."""
    try:
        safe_identifier(spec_id, "spec id")
    except UnsafeNameError as exc:
        raise SpecError(f"{where}: {exc}") from None
    doc = load_mapping(text, where, "a model spec is a mapping (target, locations, resolution, ...)", SpecError)
    if "spec_id" in doc and doc["spec_id"] != spec_id:
        raise SpecError(f"{where}: spec_id {doc['spec_id']!r} differs from the file name's {spec_id!r}")
    try:
        spec = ModelSpec(**{**doc, "spec_id": spec_id})
    except pydantic.ValidationError as exc:
        raise SpecError(f"{where}: {_problems(exc)}") from None
    _check(spec, where)
    return spec


def _check(spec: ModelSpec, where: str) -> None:
    if spec.target not in TARGETS:
        raise SpecError(f"{where}: unknown target {spec.target!r}; known targets: {', '.join(sorted(TARGETS))}")
    try:
        for loc in [*spec.locations, *([spec.location] if spec.location else [])]:
            safe_identifier(loc, "location")
    except UnsafeNameError as exc:
        raise SpecError(f"{where}: {exc}") from None
    if spec.location is None and len(spec.locations) > 1:
        raise SpecError(f"{where}: {len(spec.locations)} locations need `location`, the name their models are stored under")
    if spec.feature_set not in FEATURE_SETS:
        raise SpecError(f"{where}: unknown feature set {spec.feature_set!r}; use one of {', '.join(FEATURE_SETS)}")
    unknown = [f for f in spec.features or [] if not _known_feature(f, spec.hourly)]
    if unknown:
        raise SpecError(f"{where}: unknown feature(s) {unknown[:5]}: a feature is a training-table column "
                        f"(e.g. grid_TMP_2m__centre, target__lag1h, forecast_hour, air_temp_c__roll7d)")
    bad_types = sorted(set(spec.model_types) - set(MODEL_TYPES)) or sorted(set(spec.hyperparameters) - set(MODEL_TYPES))
    if bad_types or not spec.model_types:
        raise SpecError(f"{where}: unknown model type(s) {bad_types}; use {', '.join(MODEL_TYPES)}")
    if spec.hourly:
        if spec.target not in HOURLY_TARGETS:
            raise SpecError(f"{where}: target {spec.target!r} is not available hourly; hourly targets: "
                            f"{', '.join(HOURLY_TARGETS)}")
        if not spec.leads:
            raise SpecError(f"{where}: an hourly spec lists its lead hours (leads: [1, 2, ...])")
        outside = [k for k in spec.leads if not 0 <= k <= MAX_LEAD]
        if outside or len(set(spec.leads)) != len(spec.leads):
            raise SpecError(f"{where}: leads must be distinct whole hours 0..{MAX_LEAD}; got {outside or spec.leads}")
        if spec.transform == "log1p":
            raise SpecError(f"{where}: transform log1p is for daily amounts; an hourly spec uses none or residual")
    else:
        if spec.leads is not None:
            raise SpecError(f"{where}: leads are for hourly specs; a daily spec has none")
        if spec.transform == "residual":
            raise SpecError(f"{where}: transform residual fits a raw forecast's error, which only hourly tables have")
        if spec.forecast_source != "grid_join_features":
            raise SpecError(f"{where}: forecast_source is for hourly specs")


def _known_feature(name: str, hourly: bool) -> bool:
    return any(p.fullmatch(name) for p in FEATURE_PATTERNS) or (not hourly and re.fullmatch(r"[a-z][a-z0-9_]*", name) is not None)


def check_claims(spec: ModelSpec, others: dict[str, ModelSpec], where: str) -> None:
    """Two specs never share a champion: each (store location, target) belongs to one spec."""
    for other in others.values():
        if other.spec_id != spec.spec_id and (other.store_location, other.target) == (spec.store_location, spec.target):
            raise SpecError(f"{where}: location {spec.store_location!r} and target {spec.target!r} are spec "
                            f"{other.spec_id!r}'s (its models and champion live there); set another `location`")


def check_table(spec: ModelSpec, table: pl.DataFrame) -> dict[str, Any]:
    """The spec against the table built for it: every lead it names is in the data, and its
    split leaves every lead (or, daily, the table) enough labelled rows on each side. Returns
    the row counts; raises SpecError naming the leads and the number needed."""
    labelled = table.filter(pl.col("target").is_not_null())
    split = spec.split.split_point()
    need_train, need_test = spec.split.min_train_rows, spec.split.min_test_rows
    if not spec.hourly:
        return {"rows": labelled.height}
    have = sorted(set(labelled["forecast_hour"].cast(pl.Int64).unique().to_list())) if labelled.height else []
    absent = sorted(set(spec.leads) - set(have))
    if absent:
        raise SpecError(f"spec {spec.spec_id}: lead(s) {absent} are not in the data (labelled rows have leads "
                        f"{have or 'none'}); land forecasts for them or drop them from the spec")
    if split is None:
        return {"rows": labelled.height, "leads": have}
    cut = split.replace(tzinfo=None) if labelled["cycle_time"].dtype.time_zone is None else split
    counts = (labelled.with_columns(pl.col("forecast_hour").cast(pl.Int64).alias("_lead"),
                                    (pl.col("cycle_time") < cut).alias("_train"))
              .group_by("_lead").agg(pl.col("_train").sum().alias("train"), (~pl.col("_train")).sum().alias("test"))
              .sort("_lead"))
    thin = {int(r["_lead"]): (int(r["train"]), int(r["test"])) for r in counts.iter_rows(named=True)
            if r["train"] < need_train or r["test"] < need_test}
    if thin:
        shown = ", ".join(f"lead {k}: {tr} train / {te} test" for k, (tr, te) in list(thin.items())[:6])
        raise SpecError(f"spec {spec.spec_id}: split {spec.split.split_date} leaves too few rows ({shown}); each lead "
                        f"needs at least {need_train} training and {need_test} test rows")
    return {"rows": labelled.height, "leads": have,
            "train_rows": int(counts["train"].sum()), "test_rows": int(counts["test"].sum())}


def covers(spec: ModelSpec, stations: set[str] | None = None, targets: set[str] | None = None,
           leads: set[int] | None = None, forecast_data: bool = False) -> bool:
    """Whether new data touches this spec: one of its locations, its target (observations carry
    every variable, so None means any), and for forecast data one of its leads (hourly specs only)."""
    if stations is not None and not (set(spec.locations) & stations):
        return False
    if targets is not None and spec.target not in targets:
        return False
    if forecast_data:
        if not spec.hourly:
            return spec.table.use_grid_features
        if leads is not None and not (set(spec.leads or []) & leads):
            return False
    return True


def read_spec(store, spec_id: str) -> ModelSpec:
    """The landed spec ``spec_id``, checked; SpecError when it is missing or invalid."""
    key = spec_key(spec_id)
    if not store.exists(key):
        raise SpecError(f"model spec {spec_id!r} has no file {key}; land it there (the spec sensor registers it)")
    return parse_spec(store.get(key), spec_id, key)


def landed_specs(store) -> tuple[dict[str, ModelSpec], dict[str, str]]:
    """Every landed spec file: the valid specs by id, and the problems of the others by key."""
    specs, problems = {}, {}
    for info in store.list(SPECS_PREFIX):
        if not info.key.endswith(SPEC_SUFFIXES):
            continue
        try:
            spec_id = spec_id_for_key(info.key)
            specs[spec_id] = parse_spec(store.get(info.key), spec_id, info.key)
        except (SpecError, UnsafeNameError) as exc:
            problems[info.key] = str(exc)
    return specs, problems
