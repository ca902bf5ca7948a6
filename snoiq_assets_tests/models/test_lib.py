"""Domain logic: splits, metrics, baselines, model types and native formats, the model store."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from snoiq_assets.lib.features.training import TrainingTableSpec, build_training_table
from snoiq_assets.lib.models import InsufficientDataError, ModelError
from snoiq_assets.lib.models import baselines, metrics as M
from snoiq_assets.lib.models.evaluate import RunSpec, train_and_evaluate
from snoiq_assets.lib.models.splits import parse_period, rolling_origin, time_split
from snoiq_assets.lib.models.store import load_bundle, model_prefix, save_bundle
from snoiq_assets.lib.models.train import MODEL_TYPES, fit
from snoiq_assets_tests.models.conftest import FAST, STATION, gsod_clean


@pytest.fixture(scope="module")
def portland():
    table, info = build_training_table(gsod_clean().lazy(), TrainingTableSpec(target="precip_mm", resolution_days=1))
    return table, info


def test_rmse_is_root_of_mean_squared_error():
    y, p = [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 5.0]
    assert M.mse(y, p) == pytest.approx(7.0)
    assert M.rmse(y, p) == pytest.approx(math.sqrt(7.0))  # not the MAE (2.0), not mean of roots
    assert M.mae(y, p) == pytest.approx(2.0)
    assert M.bias(y, p) == pytest.approx(2.0)
    assert M.r2([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert M.r2([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == pytest.approx(0.0)
    assert M.skill([0, 0], [1, 1], [2, 2]) == pytest.approx(1 - 1 / 4)
    with pytest.raises(ModelError, match="same length"):
        M.rmse([1, 2], [1])


def test_time_split_never_mixes_past_and_future():
    dates = np.array([np.datetime64("2020-01-01") + np.timedelta64(i, "D") for i in range(100)])
    rng = np.random.default_rng(1)
    shuffled = rng.permutation(dates)
    s = time_split(shuffled, dt.date(2020, 3, 1), min_train=10, min_test=10)
    assert shuffled[s.train].max() < np.datetime64("2020-03-01") <= shuffled[s.test].min()
    auto = time_split(dates, None, test_fraction=0.2, min_train=10, min_test=10)
    assert auto.test.sum() == 20 and dates[auto.train].max() < dates[auto.test].min()
    folds = rolling_origin(dates, n_folds=3, min_train=10, min_test=5)
    assert len(folds) == 3
    for (tr, te), (tr2, _) in zip(folds, folds[1:]):
        assert dates[tr].max() < dates[te].min() and len(tr2) > len(tr)  # expanding, ordered


def test_too_little_data_says_how_much_is_needed():
    dates = np.array([np.datetime64("2020-01-01") + np.timedelta64(i, "D") for i in range(20)])
    with pytest.raises(InsufficientDataError, match=r"need at least 30"):
        time_split(dates, dt.date(2020, 1, 15))
    with pytest.raises(InsufficientDataError, match="need"):
        rolling_origin(dates, n_folds=5, min_train=10, min_test=5)


def test_baselines_on_consecutive_periods():
    frame = pl.DataFrame({
        "location": ["a"] * 6, "period_start": [dt.date(2020, m, 1) for m in (1, 2, 3, 1, 2, 3)][:3] + [dt.date(2021, m, 1) for m in (1, 2, 3)],
        "target": [1.0, 2.0, None, 5.0, 6.0, 7.0],
    })
    train = np.array([True, True, False, False, False, False])
    pers, filled = baselines.persistence(frame, train)
    assert pers[4] == 5.0 and pers[5] == 6.0 and filled == 2  # first row and the row after a null
    clim = baselines.climatology(frame, train)
    assert clim[3] == 1.0 and clim[4] == 2.0 and clim[5] == 1.5  # same month, else location mean


def test_portland_daily_precip_beats_both_baselines(portland):
    table, info = portland
    r = train_and_evaluate(table, info, RunSpec(model_type="lightgbm", target="precip_mm", params=FAST, cv_folds=2,
                                                split_date=dt.date(2022, 6, 1)))
    assert r.metrics["skill_persistence"] > 0 and r.metrics["skill_climatology"] > 0
    assert r.metrics["rmse"] == pytest.approx(math.sqrt(float(((r.test_frame["predicted"] - r.test_frame["observed"]) ** 2).mean())))
    assert r.window["train_end"] < "2022-06-01" <= r.window["test_start"]
    assert r.metrics["cv_folds"] == 2


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_native_formats_roundtrip_through_the_store(store, portland, model_type):
    table, info = portland
    r = train_and_evaluate(table, info, RunSpec(model_type=model_type, target="precip_mm", params=FAST, cv_folds=0,
                                                transform="log1p"))
    meta = {"location": STATION, "run_timestamp": "20240101T000000000000Z", "target": "precip_mm",
            "training_window": r.window, "metrics": r.metrics, "data_versions": {"training_table": "abc"},
            "resolution_days": 1}
    prefix = save_bundle(store, r.model, meta)
    assert prefix == model_prefix(STATION, "20240101T000000000000Z", model_type)
    keys = sorted(i.key.rsplit("/", 1)[1] for i in store.list(prefix + "/"))
    assert keys == sorted(["manifest.json", "metadata.json", {"xgboost": "model.ubj", "lightgbm": "model.txt", "random_forest": "model.skops"}[model_type]])
    loaded, m = load_bundle(store, prefix, table.columns)
    X = table.select(r.features).to_numpy().astype(float)[-50:]
    np.testing.assert_allclose(loaded.predict(X), r.model.predict(X), rtol=1e-6)
    assert m["target_transform"] == "log1p" and m["features"] == r.features
    # No pickle anywhere in the bundle.
    for info_ in store.list(prefix + "/"):
        assert not store.get(info_.key).startswith(b"\x80")


def test_bad_model_inputs_are_refused(store, portland):
    table, info = portland
    with pytest.raises(ModelError, match="unknown model type 'catboost'"):
        train_and_evaluate(table, info, RunSpec(model_type="catboost", target="precip_mm"))
    with pytest.raises(ModelError, match="built for target 'precip_mm'"):
        train_and_evaluate(table, info, RunSpec(model_type="xgboost", target="snowfall_mm"))
    nulls = table.with_columns(pl.lit(None, pl.Float64).alias("target"))
    with pytest.raises(ModelError, match="all null"):
        train_and_evaluate(nulls, info, RunSpec(model_type="xgboost", target="precip_mm"))
    inf = table.with_columns(pl.when(pl.col("period_start") == dt.date(2017, 1, 5)).then(float("inf")).otherwise(pl.col("air_temp_c")).alias("air_temp_c"))
    with pytest.raises(ModelError, match="non-finite.*air_temp_c"):
        train_and_evaluate(inf, info, RunSpec(model_type="xgboost", target="precip_mm", cv_folds=0))
    with pytest.raises(ModelError, match="-1"):
        fit("xgboost", np.zeros((5, 1)), np.array([-2.0, 0, 0, 0, 0]), ["a"], transform="log1p")
    with pytest.raises(ModelError, match="feature set"):
        train_and_evaluate(table, info, RunSpec(model_type="xgboost", target="precip_mm", feature_set="grid"))


def test_model_metadata_is_checked_before_use(store, portland):
    table, info = portland
    r = train_and_evaluate(table, info, RunSpec(model_type="xgboost", target="precip_mm", params=FAST, cv_folds=0))
    meta = {"location": STATION, "run_timestamp": "20240102T000000000000Z", "target": "precip_mm",
            "training_window": r.window, "metrics": r.metrics, "data_versions": {}, "resolution_days": 1}
    prefix = save_bundle(store, r.model, meta)
    with pytest.raises(ModelError, match="lacks 1 of them.*air_temp_c"):
        load_bundle(store, prefix, [c for c in table.columns if c != "air_temp_c"])
    # Tampering and truncation: snoiq_assets_tests/models/test_store_integrity.py


def test_threads_come_from_config_or_hyperparameters():
    from snoiq_assets.lib.models.sweeps import sweep_run_configs
    from snoiq_assets.lib.cpus import available_cpus
    from snoiq_assets.lib.models.train import split_threads

    assert split_threads({"max_depth": 3}, 1) == ({"max_depth": 3}, 1)
    assert split_threads({}, -1) == ({}, available_cpus()) and split_threads({}, 0)[1] == available_cpus()
    assert split_threads({"nthread": 2, "max_depth": 3}, 1) == ({"max_depth": 3}, 2)  # hyperparameter wins
    with pytest.raises(ModelError, match="whole number of threads"):
        split_threads({"n_jobs": 1.5}, 1)
    m = fit("lightgbm", np.arange(200.0).reshape(100, 2), np.arange(100.0), ["a", "b"], {"n_estimators": 5, "num_threads": 1})
    assert m.native.get_params()["n_jobs"] == 1
    grid = {"max_depth": [3, 5], "learning_rate": [0.03, 0.1], "n_estimators": [100, 200]}
    par = sweep_run_configs({"target": "precip_mm"}, grid, "s1", parallel=2, cpus=2)
    seq = sweep_run_configs({"target": "precip_mm"}, grid, "s1", parallel=1, cpus=2)
    assert len(par) == 8 and {c["ops"]["trained_models"]["config"]["n_jobs"] for c in par} == {1}
    assert {c["ops"]["trained_models"]["config"]["n_jobs"] for c in seq} == {2}
    assert {c["ops"]["trained_models"]["config"]["sweep_id"] for c in par} == {"s1"}
    with pytest.raises(ModelError, match="parallel"):
        sweep_run_configs({}, grid, "s1", parallel=0)


def test_hourly_periods_split_between_hours_not_days():
    hours = np.arange(np.datetime64("2023-01-01T01"), np.datetime64("2023-01-03T01"), np.timedelta64(1, "h")).astype("datetime64[us]")
    s = time_split(hours, test_fraction=0.25, min_train=12, min_test=8)
    assert int(s.train.sum()) == 36 and int(s.test.sum()) == 12
    assert s.split_date == dt.datetime(2023, 1, 2, 13, tzinfo=dt.timezone.utc)
    w = s.describe(hours)
    assert w["train_end"] == "2023-01-02T12:00" and w["test_start"] == "2023-01-02T13:00" and w["test_end"] == "2023-01-03T00:00"
    assert parse_period(w["test_start"]) == dt.datetime(2023, 1, 2, 13, tzinfo=dt.timezone.utc)
    # A split given as an hour, and as a date (midnight).
    s2 = time_split(hours, dt.datetime(2023, 1, 2, 6, tzinfo=dt.timezone.utc), min_train=12, min_test=8)
    assert int(s2.train.sum()) == 29
    s3 = time_split(hours, dt.date(2023, 1, 2), min_train=12, min_test=8)
    assert int(s3.train.sum()) == 23 and s3.describe(hours)["split_date"] == "2023-01-02"
    folds = rolling_origin(hours[s.train], 2, min_train=12, min_test=4)
    assert [(len(a), len(b)) for a, b in folds] == [(12, 12), (24, 12)]
    for tr, te in folds:
        assert hours[tr].max() < hours[te].min()
    # Daily periods keep their date text.
    days = np.arange(np.datetime64("2023-01-01"), np.datetime64("2023-03-01"))
    assert time_split(days).describe(days)["test_end"] == "2023-02-28"
    assert parse_period("2023-02-28") == dt.date(2023, 2, 28)


def test_hourly_climatology_is_by_hour_of_day():
    ts = pl.datetime_range(dt.datetime(2023, 1, 1), dt.datetime(2023, 1, 4, 23), "1h", eager=True, time_zone="UTC")
    frame = pl.DataFrame({"location": ["S"] * len(ts), "period_start": ts,
                          "target": [float(t.hour) for t in ts]})
    train = np.array([t.day < 4 for t in ts])
    clim = baselines.climatology(frame, train)
    # The diurnal cycle: hour h is predicted as h, not as the month's mean of 11.5.
    assert np.allclose(clim[~train], np.arange(24))


def test_promotion_decision():
    """lib/models/promotion.py: the champion rule without MLflow or Dagster; no switch past the baselines."""
    import json

    from snoiq_assets.lib.models.promotion import best_candidate, decide

    best = {"model_type": "xgboost", "model_prefix": "models/a/2/model_type=xgboost", "rmse": 0.9, "mae": 0.5,
            "skill_persistence": 0.2, "skill_climatology": 0.1}
    champion = {"model_prefix": "models/a/1/model_type=lightgbm", "rmse": 1.0}

    def never():
        raise AssertionError("not re-scored")

    assert best_candidate([best]) == (best, None)
    assert decide(best, None, "rmse", 0.02, None, never).promote
    weak = {**best, "skill_climatology": -0.1}
    chosen, refusal = best_candidate([weak])
    d = decide(chosen, None, "rmse", 0.02, refusal, never)
    assert not d.promote and "does not beat both baselines" in d.reason and "-0.100" in d.reason
    # A better-scoring candidate that misses a baseline gives way to one that beats them all.
    assert best_candidate([{**weak, "rmse": 0.5}, best]) == (best, None)
    # A forecast model must win at every lead: its failures are in the reason.
    lead_miss = {**best, "metrics_json": json.dumps({"beats_baselines_every_lead": False,
                                                     "baseline_failures": ["lead 1: persistence RMSE 1.100 <= xgboost 1.200"]})}
    chosen, refusal = best_candidate([lead_miss])
    assert refusal.startswith("no candidate beats every baseline") and "lead 1: persistence RMSE 1.100" in refusal
    assert not decide(chosen, None, "rmse", 0.02, refusal, never).promote
    same = decide(best, {**champion, "model_prefix": best["model_prefix"]}, "rmse", 0.02, None, never)
    assert not same.promote and "already the champion" in same.reason

    d = decide(best, champion, "rmse", 0.02, None, lambda: (1.0, "re-scored on 2023-01-01..2023-12-31"))
    assert d.promote and d.current_value == 1.0 and "re-scored on 2023-01-01" in d.reason
    d = decide(best, champion, "rmse", 0.2, None, lambda: (1.0, "re-scored"))
    assert not d.promote and "needs < 0.8000" in d.reason

    def cannot():
        raise ModelError("resolution differs")

    d = decide(best, {**champion, "rmse": 0.5}, "rmse", 0.02, None, cannot)
    assert not d.promote and d.current_value == 0.5 and "stored value (could not re-score: resolution differs)" in d.reason
    with pytest.raises(ModelError, match="metric must be rmse or mae"):
        decide(best, None, "r2", 0.02, None, never)
    with pytest.raises(ModelError, match=r"min_improvement must be in \[0, 1\)"):
        decide(best, None, "rmse", 1.0, None, never)


def test_run_config_meaning():
    from snoiq_assets.lib.models.runs import resolve_location, split_point, typed_params

    assert typed_params({"n_estimators": 100.0, "learning_rate": 0.1, "max_depth": 3.5}) == \
        {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3.5}
    assert split_point("2022-06-01", False) == dt.date(2022, 6, 1)
    assert split_point("2023-01-02T13", True) == dt.datetime(2023, 1, 2, 13, tzinfo=dt.timezone.utc)
    with pytest.raises(ModelError, match="is not a date"):
        split_point("2023-01-02T99", True)
    assert resolve_location(None, None, {"locations": ["KPDX"]}) == ("KPDX", ["KPDX"])
    assert resolve_location("region", ["A", "B"], {}) == ("region", ["A", "B"])
    with pytest.raises(ModelError, match="config 'location' is required"):
        resolve_location(None, None, {"locations": ["A", "B"]})
