"""Fit, predict, save and load per model type, in each library's own format (never pickle).

- xgboost: ``model.ubj`` (UBJSON, XGBoost's native binary; ``model.json`` is read too)
- lightgbm: ``model.txt`` (LightGBM's text model)
- random_forest: ``model.skops`` (skops, loaded with an explicit allow-list of types)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snoiq_assets.lib.cpus import available_cpus
from snoiq_assets.lib.models import ModelError

MODEL_TYPES = ("xgboost", "lightgbm", "random_forest")
MODEL_FILES = {"xgboost": "model.ubj", "lightgbm": "model.txt", "random_forest": "model.skops"}
MODEL_FORMATS = {"xgboost": "xgboost-ubj", "lightgbm": "lightgbm-text", "random_forest": "skops"}
TRANSFORMS = ("none", "log1p")

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05, "subsample": 0.8, "colsample_bytree": 0.8},
    "lightgbm": {"n_estimators": 300, "num_leaves": 15, "learning_rate": 0.05, "subsample": 0.8, "subsample_freq": 1,
                 "colsample_bytree": 0.8, "min_child_samples": 10},
    # A third of the features per split (R randomForest's regression default): on the Portland
    # spec's 288 features, 2.6x faster than scikit-learn's all-features default, RMSE within 0.5%.
    "random_forest": {"n_estimators": 200, "max_depth": 12, "min_samples_leaf": 2, "max_features": 0.33},
}

# Types a random-forest .skops file may contain; anything else is refused at load.
_SKOPS_ALLOWED = {
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.ndarray", "numpy.dtype", "numpy.float64", "numpy.int64", "numpy.random.mtrand.RandomState",
    "builtins.slice",
}


# Names the libraries use for their thread count; given in the hyperparameters they override n_jobs.
THREAD_PARAMS = ("n_jobs", "nthread", "num_threads", "n_threads")


def resolve_threads(n_jobs: int | None) -> int:
    """Threads for one fit: a positive number as given; 0, -1 or None = every CPU this process may use."""
    if n_jobs is None or n_jobs <= 0:
        return available_cpus()
    return int(n_jobs)


def split_threads(params: dict | None, n_jobs: int | None) -> tuple[dict, int]:
    """(params without thread keys, threads): a thread key in the hyperparameters wins."""
    p = dict(params or {})
    for k in THREAD_PARAMS:
        if k in p:
            v = p.pop(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
                raise ModelError(f"hyperparameter {k}={v!r} must be a whole number of threads (0 or -1 = all CPUs)")
            n_jobs = int(v)
    return p, resolve_threads(n_jobs)


def check_model_type(model_type: str) -> str:
    if model_type not in MODEL_TYPES:
        raise ModelError(f"unknown model type {model_type!r}; use one of {', '.join(MODEL_TYPES)}")
    return model_type


def check_transform(transform: str) -> str:
    if transform not in TRANSFORMS:
        raise ModelError(f"unknown target transform {transform!r}; use one of {', '.join(TRANSFORMS)}")
    return transform


def check_features(X: np.ndarray, names: list[str]) -> None:
    """Nulls arrive as NaN and are treated as missing; +/-inf is refused."""
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ModelError(f"feature matrix has shape {X.shape}; expected {len(names)} columns")
    bad = np.isinf(X)
    if bad.any():
        cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise ModelError(f"non-finite (infinite) feature values in column(s) {cols[:10]}; fix or drop them before training")


@dataclass
class FittedModel:
    model_type: str
    native: Any
    feature_names: list[str]
    transform: str = "none"

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_features(X, self.feature_names)
        raw = self.native.predict(X)
        raw = np.asarray(raw, dtype=float)
        return np.expm1(raw) if self.transform == "log1p" else raw

    def feature_importance(self) -> dict[str, float]:
        if self.model_type == "lightgbm":
            booster = getattr(self.native, "booster_", self.native)
            vals = booster.feature_importance(importance_type="gain")
        else:
            vals = self.native.feature_importances_
        vals = np.asarray(vals, dtype=float)
        total = vals.sum() or 1.0
        return {n: float(v / total) for n, v in zip(self.feature_names, vals)}


def fit(model_type: str, X: np.ndarray, y: np.ndarray, feature_names: list[str], params: dict | None = None,
        transform: str = "none", seed: int = 0, n_jobs: int | None = 1) -> FittedModel:
    """Fit one model. ``n_jobs``: threads (0, -1 or None = all CPUs); ``n_jobs``/``nthread``/
    ``num_threads`` in ``params`` override it."""
    check_model_type(model_type)
    check_transform(transform)
    check_features(X, feature_names)
    y = np.asarray(y, dtype=float)
    if not np.isfinite(y).all():
        raise ModelError("the target has non-finite values in the training rows")
    if transform == "log1p":
        if (y <= -1).any():
            raise ModelError(f"log1p transform needs a target above -1; the minimum is {y.min():g}")
        y = np.log1p(y)
    params, n_jobs = split_threads(params, n_jobs)
    p = {**DEFAULT_PARAMS[model_type], **params}
    if model_type == "xgboost":
        import xgboost as xgb

        model = xgb.XGBRegressor(**p, random_state=seed, n_jobs=n_jobs, tree_method="hist")
        model.fit(X, y)
    elif model_type == "lightgbm":
        import lightgbm as lgb

        model = lgb.LGBMRegressor(**p, random_state=seed, n_jobs=n_jobs, verbose=-1)
        model.fit(X, y)
    else:
        from sklearn.ensemble import RandomForestRegressor

        model = RandomForestRegressor(**p, random_state=seed, n_jobs=n_jobs)
        model.fit(X, y)
        # Trees are fitted in parallel but seeded one by one (deterministic). A parallel predict
        # adds the trees' outputs in whatever order the threads finish, which changes the last
        # bits between runs; one thread adds them in tree order, so a reproduction is identical.
        model.set_params(n_jobs=1)
    return FittedModel(model_type, model, list(feature_names), transform)


def save_native(model: FittedModel, directory: Path) -> Path:
    """Write the model in its library's own format; return the file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILES[model.model_type]
    if model.model_type == "xgboost":
        model.native.get_booster().save_model(str(path))
    elif model.model_type == "lightgbm":
        booster = getattr(model.native, "booster_", model.native)
        booster.save_model(str(path))
    else:
        import skops.io as sio

        sio.dump(model.native, path)
    return path


def load_native(model_type: str, path: Path, feature_names: list[str], transform: str) -> FittedModel:
    check_model_type(model_type)
    path = Path(path)
    expected = MODEL_FILES[model_type]
    if path.name != expected and not (model_type == "xgboost" and path.name == "model.json"):
        raise ModelError(f"a {model_type} model must be stored as {expected}; found {path.name}")
    if model_type == "xgboost":
        import xgboost as xgb

        native = xgb.XGBRegressor()
        try:
            native.load_model(str(path))
        except (xgb.core.XGBoostError, UnicodeDecodeError, ValueError) as exc:
            # A truncated UBJSON file raises UnicodeDecodeError inside XGBoost's reader.
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{path.name} is not a valid XGBoost model: {type(exc).__name__}: {first}") from None
        n = native.get_booster().num_features()
    elif model_type == "lightgbm":
        import lightgbm as lgb

        try:
            native = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise ModelError(f"{path.name} is not a valid LightGBM model: {exc}") from None
        n = native.num_feature()
    else:
        import skops.io as sio

        try:
            untrusted = set(sio.get_untrusted_types(file=path))
        except Exception as exc:  # noqa: BLE001 - any parse failure means "not a skops file"
            raise ModelError(f"{path.name} is not a valid skops file: {type(exc).__name__}") from None
        refused = sorted(untrusted - _SKOPS_ALLOWED)
        if refused:
            raise ModelError(f"{path.name} contains types that are not allowed in a random-forest model: {refused[:5]}")
        native = sio.load(path, trusted=sorted(untrusted))
        if type(native).__name__ != "RandomForestRegressor":
            raise ModelError(f"{path.name} holds a {type(native).__name__}, not a RandomForestRegressor")
        n = native.n_features_in_
    if n != len(feature_names):
        raise ModelError(f"{path.name} expects {n} features but its metadata lists {len(feature_names)}")
    return FittedModel(model_type, native, list(feature_names), transform)
