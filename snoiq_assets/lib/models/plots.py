"""The two PNGs logged with every training: feature importance, predicted vs observed.

Drawn on matplotlib's Agg canvas directly (no pyplot: no global figure state, safe in threads),
at a small dpi and with fixed margins instead of ``tight_layout`` (which measures every label
and cost more than the drawing itself).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 72


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def feature_importance_png(importance: dict[str, float], path: Path, top: int = 20, title: str = "") -> Path:
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    height = max(3.0, 0.25 * len(items) + 1.0)
    fig = _figure(7, height)
    # Room on the left for feature names (they can be long: air_temp_c__roll14d, target__lag1).
    fig.subplots_adjust(left=0.38, right=0.97, top=1 - 0.45 / height, bottom=0.55 / height)
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3b6ea8")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("relative importance")
    ax.set_title(title or "feature importance", fontsize=10)
    fig.savefig(path, dpi=DPI)
    return path


def predicted_vs_observed_png(observed, predicted, path: Path, title: str = "", unit: str = "") -> Path:
    y, p = np.asarray(observed, float), np.asarray(predicted, float)
    fig = _figure(5, 5)
    fig.subplots_adjust(left=0.14, right=0.96, top=0.92, bottom=0.11)
    ax = fig.add_subplot()
    ax.scatter(y, p, s=8, alpha=0.6, color="#3b6ea8", linewidths=0)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel(f"observed {unit}".strip())
    ax.set_ylabel(f"predicted {unit}".strip())
    ax.set_title(title or "held-out period", fontsize=10)
    fig.savefig(path, dpi=DPI)
    return path


def rmse_by_lead_png(by_lead, path: Path, title: str = "", unit: str = "") -> Path:
    """RMSE against lead hour: the model and each baseline (``leads.skill_by_lead`` rows)."""
    fig = _figure(6, 4)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.13)
    ax = fig.add_subplot()
    for name in sorted(set(by_lead["model"].to_list())):
        part = by_lead.filter(by_lead["model"] == name).sort("lead_hour")
        ax.plot(part["lead_hour"].to_list(), part["rmse"].to_list(), marker="o", markersize=3, label=name)
    ax.set_xlabel("lead hour")
    ax.set_ylabel(f"RMSE {unit}".strip())
    ax.legend(fontsize=8)
    ax.set_title(title or "RMSE by lead", fontsize=10)
    fig.savefig(path, dpi=DPI)
    return path
