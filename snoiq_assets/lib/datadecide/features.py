"""Early-window features of training curves: the first k% of training, summarised."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl

FEATURE_COLUMNS = ["early_last", "early_mean", "early_slope", "pl_a", "pl_b", "pl_c", "early_points", "log_size_params"]


def power_law_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Fit ``y = a * x^(-b) + c``; fall back to a log-log line (c = 0) if the fit fails."""
    from scipy.optimize import curve_fit

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return (np.nan, np.nan, np.nan)
    xs = x / x.max()
    if len(x) >= 4:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                span = float(np.ptp(y)) or 1.0
                p0 = (span * np.sign(y[0] - y[-1] or 1.0), 0.5, float(y[-1]))
                (a, b, c), _ = curve_fit(lambda t, a, b, c: a * np.power(t, -b) + c, xs, y, p0=p0, maxfev=2000)
            if np.all(np.isfinite([a, b, c])):
                return (float(a), float(b), float(c))
        except (RuntimeError, ValueError, TypeError):
            pass
    if np.all(y > 0):
        slope, intercept = np.polyfit(np.log(xs), np.log(y), 1)
        return (float(np.exp(intercept)), float(-slope), 0.0)
    return (np.nan, np.nan, np.nan)


def early_window_features(
    long: pl.DataFrame, runs: pl.DataFrame | None = None, fractions=(0.2,), min_points: int = 2, metric_pattern: str = r"^eval/"
) -> pl.DataFrame:
    """Per (run, metric, k): features of the first k of training and the final value (the target).

    The x axis is tokens when logged, else the step. Curves with fewer than ``min_points`` points in
    the window are skipped.
    """
    cols = ["project", "run_id", "run_name", "metric", "k", "x_axis", "final_x", "final_value", *FEATURE_COLUMNS, "recipe", "size"]
    rows = []
    data = long.filter(pl.col("value").is_not_null() & pl.col("value").is_finite() & pl.col("metric").str.contains(metric_pattern))
    meta = {}
    if runs is not None and runs.height:
        for r in runs.select([c for c in ("project", "run_id", "recipe", "size", "size_params") if c in runs.columns]).iter_rows(named=True):
            meta[(r["project"], r["run_id"])] = r
    for (project, run_id, run_name, metric), g in data.group_by(["project", "run_id", "run_name", "metric"]):
        axis = "tokens" if g["tokens"].is_not_null().all() else ("step" if g["step"].is_not_null().all() else None)
        if axis is None:
            continue
        g = g.sort(axis)
        x = g[axis].cast(pl.Float64).to_numpy()
        y = g["value"].to_numpy()
        if len(x) < min_points + 1 or x[-1] <= 0:
            continue
        m = meta.get((project, run_id), {})
        size_params = m.get("size_params")
        for k in fractions:
            sel = x <= k * x[-1]
            if sel.sum() < min_points:
                continue
            xe, ye = x[sel], y[sel]
            slope = float(np.polyfit(xe / x[-1], ye, 1)[0]) if len(xe) >= 2 and np.ptp(xe) > 0 else np.nan
            a, b, c = power_law_fit(xe, ye)
            rows.append({
                "project": project, "run_id": run_id, "run_name": run_name, "metric": metric, "k": float(k),
                "x_axis": axis, "final_x": float(x[-1]), "final_value": float(y[-1]),
                "early_last": float(ye[-1]), "early_mean": float(ye.mean()), "early_slope": slope,
                "pl_a": a, "pl_b": b, "pl_c": c, "early_points": int(sel.sum()),
                "log_size_params": float(np.log10(size_params)) if size_params else None,
                "recipe": m.get("recipe") or project, "size": m.get("size"),
            })
    schema = {c: pl.Float64 for c in cols}
    schema.update({c: pl.String for c in ("project", "run_id", "run_name", "metric", "x_axis", "recipe", "size")})
    schema["early_points"] = pl.Int64
    return pl.DataFrame(rows, schema=schema).select(cols).sort(["project", "run_id", "metric", "k"])
