"""DataDecide checkpoints <-> W&B runs, and the finetune-plus-pretrain join."""

from __future__ import annotations

import json

import polars as pl

from snoiq_assets.lib.datadecide.names import parse_run_name, recipe_key

MATCHED_PREFIX = "raw/datadecide/matched_runs/"

MATCHED_SCHEMA = {
    "checkpoint": pl.String,
    "checkpoint_owner": pl.String,
    "model_name": pl.String,
    "recipe": pl.String,
    "recipe_key": pl.String,
    "size": pl.String,
    "size_params": pl.Float64,
    "seed": pl.Int64,
    "chinchilla_mult": pl.Float64,
    "run_id": pl.String,
    "run_name": pl.String,
    "project": pl.String,
    "group": pl.String,
    "url": pl.String,
    "runs_in_checkpoint": pl.Int64,
    "source_file": pl.String,
}


class MatchedRunsError(ValueError):
    pass


def parse_matched_runs(raw: bytes, source_file: str) -> tuple[pl.DataFrame, list[dict]]:
    """``{s3 prefix: {model_name, runs: [{run_id, run_name, project, group, url}]}}`` -> one row per run."""
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise MatchedRunsError(f"{source_file} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MatchedRunsError(f"{source_file}: expected an object keyed by checkpoint, got {type(obj).__name__}")
    rows, rejects = [], []
    for ckpt, entry in obj.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("runs"), list):
            rejects.append({"file": source_file, "line": None, "error": f"checkpoint {ckpt!r} has no runs list",
                            "text": json.dumps(entry, default=str)[:2000]})
            continue
        model = entry.get("model_name")
        parsed = parse_run_name(model) if model else {}
        owner = ckpt.rstrip("/").split("/")[-2] if "/" in ckpt else None
        for run in entry["runs"]:
            if not isinstance(run, dict) or not run.get("run_id"):
                rejects.append({"file": source_file, "line": None, "error": f"checkpoint {ckpt!r}: run without run_id",
                                "text": json.dumps(run, default=str)[:2000]})
                continue
            rp = parse_run_name(run.get("run_name"))
            rows.append({
                "checkpoint": ckpt,
                "checkpoint_owner": owner,
                "model_name": model,
                "recipe": parsed.get("recipe") or rp["recipe"],
                "recipe_key": parsed.get("recipe_key") or rp["recipe_key"],
                "size": parsed.get("size") or rp["size"],
                "size_params": parsed.get("size_params") or rp["size_params"],
                "seed": parsed.get("seed") if parsed.get("seed") is not None else rp["seed"],
                "chinchilla_mult": rp["chinchilla_mult"],
                "run_id": str(run["run_id"]),
                "run_name": run.get("run_name"),
                "project": run.get("project"),
                "group": run.get("group"),
                "url": run.get("url"),
                "runs_in_checkpoint": len(entry["runs"]),
                "source_file": source_file,
            })
    return pl.DataFrame(rows, schema=MATCHED_SCHEMA).unique(maintain_order=True), rejects


def finetune_pretrain(matched: pl.DataFrame, evals: pl.DataFrame, runs: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per (recipe, size, seed, step, task): eval results joined to the matched W&B runs.

    Eval rows without a matched run are kept (``run_ids`` null); W&B run columns come along when
    the run was ingested.
    """
    per_model = matched.group_by(["recipe_key", "size", "seed"]).agg(
        pl.col("recipe").first(),
        pl.col("model_name").first(),
        pl.col("checkpoint").first(),
        pl.col("run_id").unique().sort().alias("run_ids"),
        pl.col("project").first().alias("wandb_project"),
    )
    ev = evals.select(
        "recipe_key", pl.col("params").alias("size"), "seed", "step", "tokens", "compute", "task", "primary_score", "data"
    )
    out = ev.join(per_model, on=["recipe_key", "size", "seed"], how="full", coalesce=True)
    if runs is not None and runs.height and "run_id" in runs.columns:
        summary_cols = [c for c in runs.columns if c.startswith("summary.")][:200]
        r = runs.select(["run_id", *summary_cols])
        first = out.with_columns(pl.col("run_ids").list.first().alias("run_id"))
        out = first.join(r, on="run_id", how="left")
    return out.sort(["recipe_key", "size", "seed", "step", "task"], nulls_last=True)
