"""Regression metrics and skill against a baseline."""

from __future__ import annotations

import math

import numpy as np

from snoiq_assets.lib.models import ModelError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ModelError(f"observed and predicted must be 1-d of the same length; got {y.shape} and {p.shape}")
    if y.size == 0:
        raise ModelError("no rows to score")
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise ModelError("observed or predicted values are not all finite")
    return y, p


def mse(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.mean((p - y) ** 2))


def rmse(y_true, y_pred) -> float:
    """The square root of the mean squared error (not the mean of absolute errors)."""
    return math.sqrt(mse(y_true, y_pred))


def mae(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - y)))


def bias(y_true, y_pred) -> float:
    """Mean of predicted minus observed (positive = over-prediction)."""
    y, p = _pair(y_true, y_pred)
    return float(np.mean(p - y))


def r2(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    ss_res = float(np.sum((y - p) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def skill(y_true, y_pred, y_baseline) -> float:
    """MSE skill score: 1 - MSE(model) / MSE(baseline). Positive = better than the baseline."""
    base = mse(y_true, y_baseline)
    if base == 0.0:
        return 0.0 if mse(y_true, y_pred) == 0.0 else float("-inf")
    return 1.0 - mse(y_true, y_pred) / base


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    return {"rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred), "r2": r2(y_true, y_pred), "bias": bias(y_true, y_pred)}
