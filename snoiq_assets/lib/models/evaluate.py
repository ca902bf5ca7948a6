"""One training run on a training table: choose rows and features, split by time, cross-validate
with rolling origins, fit, score on the held-out period against persistence and climatology.

A forecast table (the hourly table: one row per station, cycle and lead) is split so that no
training row is valid at or after the split and no test row comes from a cycle before it; its
persistence is the last observation at or before the cycle (the table's ``persistence``), its
third baseline the raw NWP forecast (``raw_forecast``), and it is scored per lead hour
(``leads.skill_by_lead``). ``residual_of: raw_forecast`` fits the NWP's error (target minus the
raw forecast) and adds the forecast back: trees cannot extrapolate, and a March warmer than every
training day would otherwise be predicted no warmer than February.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from snoiq_assets.lib.models import InsufficientDataError, ModelError
from snoiq_assets.lib.models import baselines, leads as L, metrics as M
from snoiq_assets.lib.models.splits import (MIN_TEST_ROWS, MIN_TRAIN_ROWS, period_text, rolling_origin, split_point,
                                            time_split)
from snoiq_assets.lib.models.train import FittedModel, check_model_type, check_transform, fit

FEATURE_SETS = ("all", "station", "grid")


@dataclass(frozen=True)
class RunSpec:
    model_type: str
    target: str
    locations: tuple[str, ...] | None = None
    resolution_days: int | None = None  # checked against a daily table's; not used for an hourly one
    hourly: bool = False  # the table must be the hourly grid-join table (and vice versa)
    feature_set: str = "all"  # all | station | grid
    features: tuple[str, ...] | None = None  # explicit list overrides feature_set
    transform: str = "none"
    params: dict = field(default_factory=dict)
    split_date: dt.date | dt.datetime | None = None
    test_fraction: float = 0.2
    cv_folds: int = 3
    seed: int = 0
    n_jobs: int | None = 1  # threads per fit; 0, -1 or None = all CPUs
    min_train_rows: int = MIN_TRAIN_ROWS
    min_test_rows: int = MIN_TEST_ROWS
    residual_of: str | None = None  # "raw_forecast": fit target minus that column, add it back
    leads: tuple[int, ...] | None = None  # a forecast table's lead hours to train and score on


RESIDUAL_COLUMNS = ("raw_forecast",)


@dataclass
class RunResult:
    model: FittedModel
    metrics: dict
    window: dict
    features: list[str]
    test_frame: pl.DataFrame  # location, period_start, observed, predicted, baselines
    rows: pl.DataFrame  # the rows used (location, period_start, target)
    data: pl.DataFrame | None = None  # the table slice the run used (unlabelled rows too): what a snapshot keeps
    by_lead: pl.DataFrame | None = None  # forecast tables: leads.skill_by_lead of the test period


def select_features(table: pl.DataFrame, info: dict, spec: RunSpec) -> list[str]:
    available = [c for c in info.get("feature_columns", []) if c in table.columns]
    if spec.features:
        missing = [f for f in spec.features if f not in table.columns]
        if missing:
            raise ModelError(f"feature(s) {missing[:5]} are not in the training table; it has {available[:10]}...")
        return list(spec.features)
    if spec.feature_set not in FEATURE_SETS:
        raise ModelError(f"unknown feature set {spec.feature_set!r}; use one of {', '.join(FEATURE_SETS)} or list features")
    if spec.feature_set == "station":
        chosen = [c for c in available if not c.startswith("grid_")]
    elif spec.feature_set == "grid":
        chosen = [c for c in available if c.startswith("grid_") or c.startswith("target__lag") or c.startswith("season_")]
        if not any(c.startswith("grid_") for c in chosen):
            raise ModelError("feature set 'grid' was asked for but the training table has no grid features for this period")
    else:
        chosen = available
    if not chosen:
        raise ModelError("no feature columns to train on")
    return chosen


def prepare(table: pl.DataFrame, info: dict, spec: RunSpec) -> tuple[pl.DataFrame, list[str]]:
    check_model_type(spec.model_type)
    check_transform(spec.transform)
    if spec.target != info.get("target"):
        raise ModelError(
            f"the training table was built for target {info.get('target')!r}, not {spec.target!r}; "
            "rebuild training_table with that target"
        )
    table_hourly = info.get("resolution") == "hourly"
    if spec.hourly and not table_hourly:
        raise ModelError("an hourly model was asked for, but the training table is daily; rebuild training_table with hourly: true")
    if table_hourly and not spec.hourly:
        raise ModelError("the training table is hourly (built from grid_join_features); set hourly: true to train on it")
    if (not table_hourly and spec.resolution_days is not None
            and int(spec.resolution_days) != int(info.get("resolution_days", -1))):
        raise ModelError(
            f"the training table has resolution_days={info.get('resolution_days')}, not {spec.resolution_days}; rebuild it"
        )
    if "target" not in table.columns:
        raise ModelError(f"the training table has no 'target' column; it has {table.columns[:10]}...")
    if spec.locations:
        known = set(table["location"].unique().to_list())
        unknown = [loc for loc in spec.locations if loc not in known]
        if unknown:
            raise ModelError(f"location(s) {unknown} are not in the training table (it has {sorted(known)[:10]})")
        table = table.filter(pl.col("location").is_in(list(spec.locations)))
    forecast = "cycle_time" in table.columns
    if spec.leads is not None:
        if not forecast:
            raise ModelError("leads were given but the training table has no forecast leads (cycle_time, forecast_hour)")
        have = set(table["forecast_hour"].cast(pl.Int64).unique().to_list())
        absent = sorted(set(spec.leads) - have)
        if absent:
            raise ModelError(f"lead(s) {absent} are not in the training table; it has leads {sorted(have)}")
        table = table.filter(pl.col("forecast_hour").cast(pl.Int64).is_in(list(spec.leads)))
    if spec.residual_of is not None:
        if spec.residual_of not in RESIDUAL_COLUMNS or spec.residual_of not in table.columns:
            raise ModelError(f"residual_of must name a baseline column of the table ({', '.join(RESIDUAL_COLUMNS)}); "
                             f"got {spec.residual_of!r}")
        n_null = int(table.filter(pl.col("target").is_not_null())[spec.residual_of].null_count())
        if n_null:
            raise ModelError(f"residual_of {spec.residual_of!r}: {n_null} labelled rows have no {spec.residual_of}")
    table = table.sort(["location", "cycle_time", "forecast_hour"] if forecast else ["location", "period_start"])
    if table["target"].is_not_null().sum() == 0:
        raise ModelError(f"target {spec.target!r} is all null for the selected location(s)")
    feats = select_features(table, info, spec)
    return table, feats


def feature_matrix(frame: pl.DataFrame, feats: list[str]) -> np.ndarray:
    # Nulls become NaN (missing, handled by every model type); NaN or inf in the data are
    # non-finite values and are refused here (one vectorised pass over all columns).
    sub = frame.select([pl.col(f).cast(pl.Float64) for f in feats])
    bad = sub.select([(pl.col(f).is_nan() | pl.col(f).is_infinite()).any().alias(f) for f in feats]).row(0)
    nan_cols = [f for f, b in zip(feats, bad) if b]
    if nan_cols:
        raise ModelError(f"non-finite feature values (NaN or inf, not null) in column(s) {nan_cols[:10]}")
    return sub.to_numpy().astype(float, copy=False)


def train_and_evaluate(table: pl.DataFrame, info: dict, spec: RunSpec) -> RunResult:
    table, feats = prepare(table, info, spec)
    if "cycle_time" in table.columns:
        return _train_forecast(table, feats, spec)
    has_target = table["target"].is_not_null().to_numpy()
    labelled = table.filter(pl.col("target").is_not_null())
    dates = labelled["period_start"].to_numpy()
    split = time_split(dates, spec.split_date, spec.test_fraction, spec.min_train_rows, spec.min_test_rows)
    X = feature_matrix(labelled, feats)
    y = labelled["target"].to_numpy().astype(float)

    cv_rmse: list[float] = []
    if spec.cv_folds > 0:
        train_dates = dates[split.train]
        try:
            folds = rolling_origin(train_dates, spec.cv_folds, spec.min_train_rows, max(1, spec.min_test_rows // 2))
        except InsufficientDataError as exc:
            raise InsufficientDataError(f"rolling-origin cross-validation on the training period: {exc}") from None
        idx_train = np.flatnonzero(split.train)
        for tr, te in folds:
            m = fit(spec.model_type, X[idx_train[tr]], y[idx_train[tr]], feats, spec.params, spec.transform, spec.seed, spec.n_jobs)
            cv_rmse.append(M.rmse(y[idx_train[te]], m.predict(X[idx_train[te]])))

    model = fit(spec.model_type, X[split.train], y[split.train], feats, spec.params, spec.transform, spec.seed, spec.n_jobs)
    y_te = y[split.test]
    pred = model.predict(X[split.test])
    if not np.isfinite(pred).all():
        raise ModelError("the model produced non-finite predictions on the test period")

    # Baselines on the full consecutive table (so "previous period" is really the previous one),
    # restricted to the same test rows.
    full_train_mask = np.zeros(table.height, dtype=bool)
    full_train_mask[np.flatnonzero(has_target)[split.train]] = True
    pers_all, n_filled = baselines.persistence(table, full_train_mask)
    clim_all = baselines.climatology(table, full_train_mask)
    test_rows = np.flatnonzero(has_target)[split.test]
    pers, clim = pers_all[test_rows], clim_all[test_rows]

    out = M.regression_metrics(y_te, pred)
    out.update({
        "mse": M.mse(y_te, pred),
        "persistence_rmse": M.rmse(y_te, pers), "climatology_rmse": M.rmse(y_te, clim),
        "persistence_mae": M.mae(y_te, pers), "climatology_mae": M.mae(y_te, clim),
        "skill_persistence": M.skill(y_te, pred, pers), "skill_climatology": M.skill(y_te, pred, clim),
        "persistence_filled_rows": n_filled,
        "cv_folds": len(cv_rmse),
        "cv_rmse_mean": float(np.mean(cv_rmse)) if cv_rmse else None,
        "cv_rmse_std": float(np.std(cv_rmse)) if cv_rmse else None,
    })
    for i, v in enumerate(cv_rmse):
        out[f"cv_rmse_fold{i}"] = v
    test_frame = labelled.filter(pl.Series(split.test)).select("location", "period_start").with_columns(
        pl.Series("observed", y_te), pl.Series("predicted", pred),
        pl.Series("persistence", pers), pl.Series("climatology", clim),
    )
    window = split.describe(dates)
    return RunResult(model=model, metrics=out, window=window, features=feats, test_frame=test_frame,
                     rows=labelled.select("location", "period_start", "target"), data=table)


def _cv(X, y, offset, dates, train_mask, feats, spec: RunSpec) -> list[float]:
    if spec.cv_folds <= 0:
        return []
    try:
        folds = rolling_origin(dates[train_mask], spec.cv_folds, spec.min_train_rows, max(1, spec.min_test_rows // 2))
    except InsufficientDataError as exc:
        raise InsufficientDataError(f"rolling-origin cross-validation on the training period: {exc}") from None
    idx = np.flatnonzero(train_mask)
    out = []
    for tr, te in folds:
        m = fit(spec.model_type, X[idx[tr]], y[idx[tr]] - offset[idx[tr]], feats, spec.params, spec.transform, spec.seed, spec.n_jobs)
        out.append(M.rmse(y[idx[te]], m.predict(X[idx[te]]) + offset[idx[te]]))
    return out


def _train_forecast(table: pl.DataFrame, feats: list[str], spec: RunSpec) -> RunResult:
    """A forecast table (station x cycle x lead): see the module docstring."""
    labelled = table.filter(pl.col("target").is_not_null())
    valid = labelled["period_start"].to_numpy()
    split = time_split(valid, spec.split_date, spec.test_fraction, spec.min_train_rows, spec.min_test_rows)
    cut = split_point(split.split_date)
    cycle = labelled["cycle_time"].dt.replace_time_zone(None).to_numpy()
    test = split.test & (cycle >= cut)  # a forecast from before the split is in neither period
    train = split.train
    if int(test.sum()) < spec.min_test_rows:
        raise InsufficientDataError(f"{int(test.sum())} test rows from cycles at or after {split.split_date} "
                                    f"(need at least {spec.min_test_rows})")
    lead = labelled["forecast_hour"].cast(pl.Int64).to_numpy()
    thin = {int(k): int(((lead == k) & test).sum()) for k in np.unique(lead) if ((lead == k) & test).sum() < spec.min_test_rows}
    if thin:
        raise InsufficientDataError(f"the split leaves too few test rows at lead(s) {thin} (need at least "
                                    f"{spec.min_test_rows} per lead)")
    X = feature_matrix(labelled, feats)
    y = labelled["target"].to_numpy().astype(float)
    offset = (labelled[spec.residual_of].to_numpy().astype(float) if spec.residual_of
              else np.zeros(labelled.height))
    cv_rmse = _cv(X, y, offset, valid, train, feats, spec)
    model = fit(spec.model_type, X[train], y[train] - offset[train], feats, spec.params, spec.transform, spec.seed, spec.n_jobs)
    pred = model.predict(X[test]) + offset[test]
    if not np.isfinite(pred).all():
        raise ModelError("the model produced non-finite predictions on the test period")
    y_te = y[test]
    train_mask = np.zeros(labelled.height, dtype=bool)
    train_mask[train] = True
    pers = labelled["persistence"].to_numpy().astype(float) if "persistence" in labelled.columns else np.full(labelled.height, np.nan)
    fallback = float(np.mean(y[train]))
    n_filled = int((~np.isfinite(pers[test])).sum())
    pers = np.where(np.isfinite(pers), pers, fallback)
    clim = baselines.climatology(labelled, train_mask)
    test_frame = labelled.filter(pl.Series(test)).select("location", "cycle_time", "forecast_hour", "period_start").with_columns(
        pl.Series("observed", y_te), pl.Series("predicted", pred),
        pl.Series("persistence", pers[test]), pl.Series("climatology", clim[test]),
    )
    if "raw_forecast" in labelled.columns and labelled.filter(pl.Series(test))["raw_forecast"].null_count() == 0:
        test_frame = test_frame.with_columns(labelled.filter(pl.Series(test))["raw_forecast"].alias("raw_forecast"))
    by_lead = L.skill_by_lead(test_frame, spec.model_type)
    failures = L.baseline_failures(by_lead, spec.model_type)
    out = M.regression_metrics(y_te, pred)
    out["mse"] = M.mse(y_te, pred)
    for b in L.applicable_baselines(test_frame):
        base = test_frame[b].to_numpy()
        out.update({f"{b}_rmse": M.rmse(y_te, base), f"{b}_mae": M.mae(y_te, base), f"skill_{b}": M.skill(y_te, pred, base)})
    out.update({
        "persistence_filled_rows": n_filled, "cv_folds": len(cv_rmse),
        "cv_rmse_mean": float(np.mean(cv_rmse)) if cv_rmse else None,
        "cv_rmse_std": float(np.std(cv_rmse)) if cv_rmse else None,
        "beats_baselines_every_lead": not failures, "baseline_failures": failures,
        "leads": sorted(int(k) for k in np.unique(lead[test])), "residual_of": spec.residual_of,
    })
    for i, v in enumerate(cv_rmse):
        out[f"cv_rmse_fold{i}"] = v
    window = split.describe(valid)
    window.update({"test_rows": int(test.sum()), "test_start": period_text(valid[test].min()),
                   "test_end": period_text(valid[test].max()), "test_cycles_from": window["split_date"]})
    return RunResult(model=model, metrics=out, window=window, features=feats, test_frame=test_frame,
                     rows=labelled.select("location", "period_start", "target"), by_lead=by_lead, data=table)


def period_between(table: pl.DataFrame, start: dt.date | dt.datetime, end: dt.date | dt.datetime) -> pl.Expr:
    """Rows whose period starts in [start, end]. Dates are whole days (an hourly table's rows of
    the end date are inside); datetimes (UTC) are compared to the period start itself."""
    col = pl.col("period_start")
    if isinstance(table.schema["period_start"], pl.Datetime):
        col = col.cast(pl.Datetime("us", "UTC"))
        lo = pl.lit(start).cast(pl.Datetime("us", "UTC")) if isinstance(start, dt.datetime) else None
        hi = pl.lit(end).cast(pl.Datetime("us", "UTC")) if isinstance(end, dt.datetime) else None
        lower = col >= lo if lo is not None else col.dt.date() >= start
        upper = col <= hi if hi is not None else col.dt.date() <= end
        return lower & upper
    as_day = lambda v: v.date() if isinstance(v, dt.datetime) else v  # noqa: E731
    return col.is_between(as_day(start), as_day(end))


def score_on(model: FittedModel, table: pl.DataFrame, start, end, locations=None) -> tuple[np.ndarray, np.ndarray]:
    """Observed and predicted target of ``model`` on the labelled rows in [start, end]."""
    t = table.filter(pl.col("target").is_not_null() & period_between(table, start, end))
    if locations:
        t = t.filter(pl.col("location").is_in(list(locations)))
    if t.height == 0:
        raise InsufficientDataError(f"no labelled rows between {start} and {end} to score on")
    return t["target"].to_numpy().astype(float), model.predict(feature_matrix(t, model.feature_names))

