"""Skill by lead hour: a forecast model scored against every baseline at each lead.

A forecast spec's test frame has, per row, ``forecast_hour``, ``observed``, ``predicted`` and the
baselines ``persistence`` (the last observation at or before the cycle, held for every lead),
``climatology`` and, where the table has an NWP counterpart of the target, ``raw_forecast``.
``skill_by_lead`` gives one row per (lead_hour, model) with RMSE, MAE, bias (predicted minus
observed) and the row count; the model's rows also carry its MSE skill score against each
baseline. A model beats the baselines only when its RMSE is lower than each applicable
baseline's at EVERY lead (``baseline_failures`` lists where it is not).
"""

from __future__ import annotations

import numpy as np
import polars as pl

BASELINES = ("persistence", "climatology", "raw_forecast")
SKILL_SCHEMA = {"lead_hour": pl.Int32, "model": pl.Utf8, "rmse": pl.Float64, "mae": pl.Float64, "bias": pl.Float64,
                "n_rows": pl.Int64, "skill_vs_persistence": pl.Float64, "skill_vs_climatology": pl.Float64,
                "skill_vs_raw_forecast": pl.Float64}


def applicable_baselines(test_frame: pl.DataFrame) -> list[str]:
    return [b for b in BASELINES if b in test_frame.columns and test_frame[b].is_not_null().all()]


def skill_by_lead(test_frame: pl.DataFrame, model: str) -> pl.DataFrame:
    """One row per (lead_hour, model or baseline name), sorted by lead then model."""
    bases = applicable_baselines(test_frame)
    err = {name: pl.col(col) - pl.col("observed") for name, col in [(model, "predicted"), *[(b, b) for b in bases]]}
    per_lead = test_frame.group_by("forecast_hour").agg(
        pl.len().alias("n_rows"),
        *[(e ** 2).mean().alias(f"{n}__mse") for n, e in err.items()],
        *[e.abs().mean().alias(f"{n}__mae") for n, e in err.items()],
        *[e.mean().alias(f"{n}__bias") for n, e in err.items()],
    ).sort("forecast_hour")
    rows = []
    for r in per_lead.iter_rows(named=True):
        for name in err:
            row = {"lead_hour": int(r["forecast_hour"]), "model": name, "rmse": float(np.sqrt(r[f"{name}__mse"])),
                   "mae": r[f"{name}__mae"], "bias": r[f"{name}__bias"], "n_rows": r["n_rows"]}
            for b in BASELINES:
                base = r.get(f"{b}__mse")
                row[f"skill_vs_{b}"] = (None if name != model or base is None or base == 0
                                        else 1.0 - r[f"{name}__mse"] / base)
            rows.append(row)
    return pl.DataFrame(rows, schema=SKILL_SCHEMA)


def baseline_failures(by_lead: pl.DataFrame, model: str) -> list[str]:
    """Where ``model`` does not beat a baseline's RMSE: ["lead 3: persistence 0.91 <= model 0.95", ...]."""
    wide = by_lead.pivot(on="model", index="lead_hour", values="rmse").sort("lead_hour")
    out = []
    for r in wide.iter_rows(named=True):
        for b in BASELINES:
            if b in r and r[b] is not None and not r[model] < r[b]:
                out.append(f"lead {r['lead_hour']}: {b} RMSE {r[b]:.3f} <= {model} {r[model]:.3f}")
    return out


def rmse_table(by_lead: pl.DataFrame) -> pl.DataFrame:
    """lead_hour x (model, baselines) RMSE, for reports and metadata."""
    return by_lead.pivot(on="model", index="lead_hour", values="rmse").sort("lead_hour")


def markdown_table(table: pl.DataFrame) -> str:
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(str(v) if isinstance(v, int) else f"{v:.3f}" for v in row) + " |" for row in table.iter_rows()]
    return "\n".join([head, *body])


def format_rmse_table(by_lead: pl.DataFrame, title: str = "") -> str:
    wide = rmse_table(by_lead)
    cols = wide.columns
    lines = ([title] if title else []) + ["  ".join(f"{c:>13}" for c in cols)]
    for r in wide.iter_rows():
        lines.append("  ".join(f"{v:>13}" if isinstance(v, int) else f"{v:>13.3f}" for v in r))
    return "\n".join(lines)


SKILL_TABLE = "skill_by_lead"
SKILL_TABLE_COLUMNS = ("spec_id", "model", "lead_hour", "rmse", "mae", "bias", "n_rows")


def skill_table_rows(by_lead: pl.DataFrame, spec_id: str) -> pl.DataFrame:
    """``by_lead`` in the DuckDB ``skill_by_lead`` shape: spec_id, model (the model type or a
    baseline name: persistence, climatology, raw_forecast), lead_hour, rmse, mae, bias, n_rows."""
    return by_lead.select(pl.lit(spec_id).alias("spec_id"), "model", "lead_hour", "rmse", "mae", "bias", "n_rows")


def write_skill_table(duckdb_path, rows: pl.DataFrame, timeout_s: float = 60.0) -> bool:
    """Replace the (spec_id, model) rows of ``skill_by_lead`` with ``rows`` (a model's latest run
    and its baselines); False when the file stayed locked by another writer for ``timeout_s``."""
    from snoiq_assets.lib.models.experiments import _connect

    con = _connect(duckdb_path, timeout_s)
    if con is None:
        return False
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {SKILL_TABLE} (spec_id VARCHAR, model VARCHAR, lead_hour INTEGER, "
                    "rmse DOUBLE, mae DOUBLE, bias DOUBLE, n_rows BIGINT)")
        con.register("_skill_new", rows.select(SKILL_TABLE_COLUMNS).to_arrow())
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(f"DELETE FROM {SKILL_TABLE} WHERE (spec_id, model) IN (SELECT DISTINCT spec_id, model FROM _skill_new)")
            con.execute(f"INSERT INTO {SKILL_TABLE} SELECT {', '.join(SKILL_TABLE_COLUMNS)} FROM _skill_new")
            con.execute("COMMIT")
        finally:
            con.unregister("_skill_new")
        return True
    finally:
        con.close()
