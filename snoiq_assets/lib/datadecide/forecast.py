"""Forecast the final metric from early-window features; grouped CV by recipe; decision accuracy."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from snoiq_assets.lib.datadecide.features import FEATURE_COLUMNS

MODEL_NAMES = ("elasticnet", "gaussian_process", "xgboost", "lightgbm")


class ForecastError(ValueError):
    pass


def make_model(name: str, seed: int = 0):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "elasticnet":
        from sklearn.linear_model import ElasticNet

        return make_pipeline(SimpleImputer(), StandardScaler(), ElasticNet(alpha=1e-3, l1_ratio=0.5, max_iter=20000))
    if name == "gaussian_process":
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = ConstantKernel() * RBF(length_scale=1.0) + WhiteKernel()
        return make_pipeline(SimpleImputer(), StandardScaler(), GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=seed))
    if name == "xgboost":
        from xgboost import XGBRegressor

        return XGBRegressor(n_estimators=100, max_depth=3, learning_rate=0.1, n_jobs=1, random_state=seed)
    if name == "lightgbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(n_estimators=100, learning_rate=0.05, min_child_samples=2, n_jobs=1, verbose=-1, random_state=seed)
    raise ForecastError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")


def decision_accuracy(frame: pl.DataFrame, by: list[str], recipe: str = "recipe", actual: str = "final_value", pred: str = "prediction") -> tuple[float, int]:
    """Share of recipe pairs (within each ``by`` group) whose predicted order matches the actual one.

    Pairs with equal actual values are not counted. Returns (accuracy or NaN, number of pairs).
    """
    correct = total = 0
    agg = frame.group_by(by + [recipe]).agg(pl.col(actual).mean(), pl.col(pred).mean())
    for _, g in agg.group_by(by):
        vals = list(zip(g[actual].to_list(), g[pred].to_list()))
        for (a1, p1), (a2, p2) in itertools.combinations(vals, 2):
            if a1 == a2 or a1 is None or a2 is None:
                continue
            total += 1
            correct += int(np.sign(a1 - a2) == np.sign(p1 - p2))
    return (correct / total if total else float("nan")), total


def grouped_cv(features: pl.DataFrame, k: float, models=MODEL_NAMES, n_splits: int = 5, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Out-of-fold predictions of ``final_value`` with GroupKFold over recipes, for window ``k``.

    Returns (scores: model, k, rmse, decision_accuracy, pairs, samples, groups, folds; predictions).
    Decision accuracy compares recipes at the same size on the same metric.
    """
    import warnings

    from sklearn.model_selection import GroupKFold

    data = features.filter((pl.col("k") == k) & pl.col("final_value").is_finite() & pl.col("early_last").is_finite())
    groups = data["recipe"].to_numpy()
    n_groups = len(set(groups))
    if n_groups < 2:
        raise ForecastError(f"grouped CV needs runs from at least 2 recipes; window k={k} has {n_groups}")
    X = data.select(FEATURE_COLUMNS).cast(pl.Float64).to_numpy()
    y = data["final_value"].to_numpy()
    folds = min(n_splits, n_groups)
    scores, preds = [], []
    for name in models:
        oof = np.full(len(y), np.nan)
        for train, test in GroupKFold(n_splits=folds).split(X, y, groups):
            model = make_model(name, seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X[train], y[train])
            oof[test] = model.predict(X[test])
        frame = data.select("project", "run_id", "metric", "recipe", "size", "final_value").with_columns(
            pl.Series("prediction", oof), pl.lit(name).alias("model"), pl.lit(k).alias("k")
        )
        rmse = float(np.sqrt(np.nanmean((oof - y) ** 2)))
        acc, pairs = decision_accuracy(frame.with_columns(pl.col("size").fill_null("?")), by=["size", "metric"])
        scores.append({"model": name, "k": k, "rmse": rmse, "decision_accuracy": acc, "pairs": pairs,
                       "samples": len(y), "groups": n_groups, "folds": folds})
        preds.append(frame)
    return pl.DataFrame(scores), pl.concat(preds)
