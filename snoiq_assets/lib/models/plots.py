"""The two PNGs logged with every training: feature importance, predicted vs observed."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def feature_importance_png(importance: dict[str, float], path: Path, top: int = 20, title: str = "") -> Path:
    plt = _plt()
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(items) + 1)))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3b6ea8")
    ax.set_xlabel("relative importance")
    ax.set_title(title or "feature importance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def predicted_vs_observed_png(observed, predicted, path: Path, title: str = "", unit: str = "") -> Path:
    plt = _plt()
    y, p = np.asarray(observed, float), np.asarray(predicted, float)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y, p, s=8, alpha=0.6, color="#3b6ea8")
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel(f"observed {unit}".strip())
    ax.set_ylabel(f"predicted {unit}".strip())
    ax.set_title(title or "held-out period")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
