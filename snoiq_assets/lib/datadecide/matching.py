"""DataDecide checkpoints <-> W&B runs, and the finetune-plus-pretrain join."""

from __future__ import annotations

import json
import re

import polars as pl

from snoiq_assets.lib.datadecide.jsonl import reject
from snoiq_assets.lib.datadecide.names import parse_run_name

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
    except json.JSONDecodeError as exc:
        # the index is one JSON object: a file cut short ends inside it, not at its closing brace
        ends_early = not raw.rstrip().endswith((b"}", b"]"))
        why = "the file ends inside the JSON document (truncated)" if ends_early else "malformed JSON"
        raise MatchedRunsError(
            f"{source_file} ({len(raw):,} bytes): {why}: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MatchedRunsError(f"{source_file} ({len(raw):,} bytes) is not JSON text: {exc}") from None
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

    ``score_level`` says what a row's ``primary_score`` is: ``seed`` (the eval source names the
    seed: that checkpoint's own score), ``recipe_size_mean`` (the source numbers its runs without
    naming their seeds, as the DataDecide grid export does: the mean over its ``score_runs`` runs of
    that recipe and size, the same for each seed's checkpoint) or null (no eval result for it).
    Eval rows without a matched run are kept (``run_ids`` null); W&B run columns come along when
    the run was ingested.
    """
    keys = ["recipe_key", "size", "seed"]
    per_model = matched.group_by(keys).agg(
        pl.col("recipe").first(),
        pl.col("model_name").first(),
        pl.col("checkpoint").first(),
        pl.col("run_id").unique().sort().alias("run_ids"),
        pl.col("project").first().alias("wandb_project"),
    )
    ev = evals.select(
        "recipe_key", pl.col("params").alias("size"), "seed", "step", "tokens", "compute", "task", "primary_score",
        "primary_metric", "data"
    )
    seeded = ev.filter(pl.col("seed").is_not_null()).with_columns(pl.lit(1, pl.UInt32).alias("score_runs"))
    by_seed = seeded.join(per_model, on=keys, how="full", coalesce=True).with_columns(
        pl.when(pl.col("primary_score").is_not_null()).then(pl.lit("seed")).alias("score_level"))
    unseeded = (
        ev.filter(pl.col("seed").is_null())
        .group_by(["recipe_key", "size", "step", "task", "primary_metric"])
        .agg(pl.col("data").first(), pl.col("tokens").mean(), pl.col("compute").mean(),
             pl.col("primary_score").mean(), pl.col("primary_score").count().alias("score_runs"))
    )
    # checkpoints no seed-level result scored: give them their recipe and size's mean
    unscored = by_seed.filter(pl.col("model_name").is_not_null() & pl.col("primary_score").is_null())
    by_mean = unscored.select(per_model.columns).join(unseeded, on=["recipe_key", "size"], how="inner").with_columns(
        pl.lit("recipe_size_mean").alias("score_level"))
    eval_only = unseeded.join(per_model, on=["recipe_key", "size"], how="anti")
    out = pl.concat([
        by_seed.join(by_mean.select(keys).unique(), on=keys, how="anti", nulls_equal=True),
        by_mean, eval_only,
    ], how="diagonal_relaxed")
    if runs is not None and runs.height and "run_id" in runs.columns:
        summary_cols = [c for c in runs.columns if c.startswith("summary.")][:200]
        r = runs.select(["run_id", *summary_cols])
        first = out.with_columns(pl.col("run_ids").list.first().alias("run_id"))
        out = first.join(r, on="run_id", how="left")
    return out.sort(["recipe_key", "size", "seed", "step", "task"], nulls_last=True)


# ----- checkpoint lists ------------------------------------------------------------------
CHECKPOINTS_PREFIX = "raw/datadecide/checkpoints/"
CHECKPOINT_SCHEMA = {
    "model_name": pl.String,
    "recipe": pl.String,
    "recipe_key": pl.String,
    "size": pl.String,
    "size_params": pl.Float64,
    "seed": pl.Int64,
    "checkpoints_location": pl.String,
    "revision": pl.String,
    "step": pl.Int64,
    "source_file": pl.String,
    "source_line": pl.Int64,
}
_REVISION = re.compile(r"^step(?P<step>\d+)(?:-[A-Za-z0-9_.-]+)?$")


def parse_checkpoint_list(raw: bytes, source_file: str) -> tuple[pl.DataFrame, list[dict]]:
    """DataDecide checkpoint list (JSONL, one model per line:
    ``{"model_name": "dolma17-150M-6198", "checkpoints_location": "...", "revisions": ["step38157-unsharded-hf"]}``)
    -> one row per (model, revision) with recipe, size and seed parsed from the model name.
    Malformed lines go to the rejects with their line number; the rest is kept."""
    rows, rejects = [], []
    for line_no, line in enumerate(raw.splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            rec = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            rejects.append(reject(source_file, line_no, f"malformed JSON: {exc}", text))
            continue
        problem = _checkpoint_problem(rec)
        if problem:
            rejects.append(reject(source_file, line_no, problem, text))
            continue
        parsed = parse_run_name(rec["model_name"])
        for revision in rec["revisions"]:
            m = _REVISION.match(revision)
            rows.append({
                "model_name": rec["model_name"], "recipe": parsed["recipe"], "recipe_key": parsed["recipe_key"],
                "size": parsed["size"], "size_params": parsed["size_params"], "seed": parsed["seed"],
                "checkpoints_location": rec.get("checkpoints_location"), "revision": revision,
                "step": int(m["step"]) if m else None, "source_file": source_file, "source_line": line_no,
            })
    return pl.DataFrame(rows, schema=CHECKPOINT_SCHEMA), rejects


def _checkpoint_problem(rec) -> str | None:
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    name = rec.get("model_name")
    if not isinstance(name, str) or not name.strip():
        return "no model_name"
    if parse_run_name(name)["run_kind"] != "checkpoint":
        return f"model_name {name!r} is not <recipe>-<size>-<seed>"
    revisions = rec.get("revisions")
    if not isinstance(revisions, list) or not revisions or not all(isinstance(r, str) and r for r in revisions):
        return "revisions is not a non-empty list of strings"
    location = rec.get("checkpoints_location")
    if location is not None and not isinstance(location, str):
        return f"checkpoints_location is a {type(location).__name__}, not a string"
    return None


def join_checkpoints(checkpoints: pl.DataFrame, matched: pl.DataFrame, runs: pl.DataFrame | None) -> pl.DataFrame:
    """Checkpoint rows + the matched W&B run ids of the same model name + how many of those runs
    ``wandb_runs`` holds."""
    per_model = matched.group_by("model_name").agg(
        pl.col("checkpoint").first().alias("matched_checkpoint"),
        pl.col("run_id").unique().sort().alias("matched_run_ids"),
        pl.col("project").unique().sort().alias("wandb_projects"),
    )
    out = checkpoints.join(per_model, on="model_name", how="left")
    known = set(runs["run_id"].to_list()) if runs is not None and runs.height and "run_id" in runs.columns else set()
    return out.with_columns(
        pl.col("matched_run_ids").list.eval(pl.element().is_in(list(known)).cast(pl.Int64)).list.sum()
        .fill_null(0).alias("runs_in_wandb_runs")
    )
