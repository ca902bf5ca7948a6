"""DataDecide assets: W&B runs/history, HF eval results, matched runs, early-window forecasts.

Each asset's main frame goes to the ``io_manager`` (``lake/<asset>.parquet``); the DuckDB tables
are written from the same in-memory frames through the ``duckdb`` resource (pool
``duckdb_writer``: one DuckDB writer at a time). Side tables (rejects, wide history) are Parquet
under ``lake/datadecide/`` (``duck.write_side_table``).
"""


import tempfile
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource

from snoiq_assets.defs.metadata import markdown_table
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.datadecide import duck
from snoiq_assets.lib.datadecide.decision import MISSING_RULE, TIE_RULE, DecisionError, decision_accuracy_by_size as build_decision
from snoiq_assets.lib.datadecide.decision import eval_values
from snoiq_assets.lib.datadecide.features import early_window_features as build_features
from snoiq_assets.lib.datadecide.forecast import MODEL_NAMES, ForecastError, grouped_cv
from snoiq_assets.lib.datadecide.hf import (
    DEFAULT_REPO,
    HubUnavailable,
    fetch_hf_eval_results,
    ingest_eval_results,
    ingest_recipes,
)
from snoiq_assets.lib.datadecide.jsonl import rejects_frame
from snoiq_assets.lib.datadecide.matching import (
    CHECKPOINTS_PREFIX,
    MATCHED_PREFIX,
    MatchedRunsError,
    finetune_pretrain,
    join_checkpoints,
    parse_checkpoint_list,
    parse_matched_runs,
)
from snoiq_assets.lib.datadecide.names import recipe_key
from snoiq_assets.lib.datadecide.wandb_io import WandbUnavailable, export_wandb, ingest_history, ingest_runs

GROUP = "datadecide"
POOL = "duckdb_writer"


class WandbExportConfig(dg.Config):
    entity: str = "ai2-llm"
    projects: list[str] = []
    fetch: bool = True
    max_runs: int | None = None
    parallel: int = 4               # projects fetched side by side
    requests_per_second: float = 10.0   # over all projects; 429s are retried after Retry-After or a backoff


class HfConfig(dg.Config):
    repo_id: str = DEFAULT_REPO
    revision: str | None = None
    fetch: bool = True


class FeatureConfig(dg.Config):
    fractions: list[float] = [0.1, 0.2, 0.3]
    metric_pattern: str = r"^eval/"


class ModelConfig(dg.Config):
    k: float = 0.2
    models: list[str] = list(MODEL_NAMES)


def _connect(duckdb: DuckDBResource):
    """The DuckDB file lives in SNOIQ_HOME, which an s3-profile run may not have created yet."""
    Path(duckdb.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return duckdb.get_connection()


def _parse_landed(object_store, prefix: str, suffix: str, parse: Callable[[bytes, str], tuple[pl.DataFrame, list[dict]]],
                  unreadable_file: type[Exception] | tuple[type[Exception], ...] = ()
                  ) -> tuple[list[str], list[pl.DataFrame], pl.DataFrame]:
    """Parse every landed ``prefix*suffix`` file: its keys, the parsed frames and one rejects frame.
    A file whose parser raises ``unreadable_file`` becomes a single reject naming it, and the others carry on."""
    frames, rejects = [], []
    keys = [i.key for i in object_store.list(prefix) if i.key.endswith(suffix)]
    for key in keys:
        try:
            df, rej = parse(object_store.get(key), key)
        except unreadable_file as exc:
            rejects.append({"file": key, "line": None, "error": str(exc), "text": ""})
            continue
        frames.append(df)
        rejects.extend(rej)
    return keys, frames, rejects_frame(rejects)


def _log_rejects(context, rejects: pl.DataFrame, what: str) -> None:
    if rejects.height:
        first = rejects.row(0, named=True)
        context.log.warning(
            f"{what}: {rejects.height} rejected input(s), kept in table {what}_rejects; "
            f"first: {first['file']} line {first['line']}: {first['error']}"
        )


@dg.asset(group_name=GROUP, description="Fetch W&B runs and history into raw/wandb/ (skipped with no key or network).")
def wandb_export(context: dg.AssetExecutionContext, config: WandbExportConfig, store: ObjectStoreResource) -> dg.MaterializeResult:
    status, runs = "fetched", 0
    if not config.fetch:
        status = "fetch disabled; ingesting landed exports"
    else:
        try:
            res = export_wandb(store.get_store(), config.entity, config.projects, max_runs=config.max_runs,
                               parallel=config.parallel, requests_per_second=config.requests_per_second)
            runs = res.runs
            status = (f"fetched {res.runs} run(s) ({res.history_rows} history rows, {res.skipped_done} already done), "
                      f"{res.requests} requests, {res.rate_limited} rate-limited and retried")
        except WandbUnavailable as exc:
            status = f"{exc}; ingesting landed exports"
            context.log.warning(status)
    landed = sum(1 for _ in store.get_store().list("raw/wandb/"))
    return dg.MaterializeResult(metadata={"status": status, "runs_fetched": runs, "files_landed": landed})


@dg.asset(
    group_name=GROUP,
    deps=[wandb_export],
    pool=POOL,
    description="W&B history in long form (project, run, step, tokens, metric, value); wide form beside it.",
)
def wandb_history(context: dg.AssetExecutionContext, store: ObjectStoreResource, duckdb: DuckDBResource) -> pl.DataFrame:
    object_store = store.get_store()
    res = ingest_history(object_store)
    _log_rejects(context, res.rejects, "wandb_history")
    wide_uri = duck.write_side_table(object_store, "wandb_history_wide", res.wide)
    duck.write_side_table(object_store, "wandb_history_rejects", res.rejects)
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"wandb_history": res.long, "wandb_history_wide": res.wide, "wandb_history_rejects": res.rejects})
    context.add_output_metadata({
        "files": res.files, "runs": res.long.select("project", "run_id").n_unique() if res.long.height else 0,
        "metrics": res.long["metric"].n_unique(), "wide_rows": res.wide.height, "wide_columns": res.wide.width,
        "wide_uri": dg.MetadataValue.path(wide_uri), "rejects": res.rejects.height,
    })
    return res.long


@dg.asset(group_name=GROUP, deps=[wandb_export], pool=POOL, description="One typed, flat row per W&B run; run name parsed.")
def wandb_runs(context: dg.AssetExecutionContext, store: ObjectStoreResource, duckdb: DuckDBResource, wandb_history: pl.DataFrame) -> pl.DataFrame:
    object_store = store.get_store()
    res = ingest_runs(object_store, wandb_history)
    _log_rejects(context, res.rejects, "wandb_runs")
    duck.write_side_table(object_store, "wandb_runs_rejects", res.rejects)
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"wandb_runs": res.runs, "wandb_runs_dropped_constants": res.dropped_constants,
                                 "wandb_runs_rejects": res.rejects})
    context.add_output_metadata({"runs": res.runs.height, "columns": res.runs.width, "run_files": res.files,
                                 "dropped_constant_columns": res.dropped_constants.height, "rejects": res.rejects.height})
    return res.runs


HF_VIEWS = {
    "hf_eval_metrics": "SELECT params, data, recipe_key, seed, seed_label, step, tokens, task, "
    "unnest(map_keys(metrics)) AS metric, unnest(map_values(metrics)) AS value FROM hf_eval_results",
    "hf_eval_outputs": "SELECT params, data, recipe_key, seed, step, task, unnest(outputs, recursive := true) "
    "FROM hf_eval_results WHERE outputs IS NOT NULL",
}


@dg.asset(group_name=GROUP, pool=POOL, description="DataDecide eval results (HF hub or landed files), typed with nested outputs.")
def hf_eval_results(context: dg.AssetExecutionContext, config: HfConfig, store: ObjectStoreResource, duckdb: DuckDBResource):
    object_store = store.get_store()
    status = "fetch disabled"
    if config.fetch:
        cache = Path(store.home) / "cache" / "huggingface"
        try:
            landed = fetch_hf_eval_results(object_store, cache, config.repo_id, revision=config.revision)
            status = f"fetched {len(landed)} file(s) from {config.repo_id}"
        except HubUnavailable as exc:
            status = f"{exc}"
            context.log.warning(f"{exc}; ingesting landed files")
    recipes, recipe_rejects = ingest_recipes(object_store)
    with tempfile.TemporaryDirectory(prefix="snoiq-hf-") as tmp:
        out = Path(tmp) / "eval.parquet"
        res = ingest_eval_results(object_store, out)
        table = pq.read_table(out)
    rejects = pl.concat([res.rejects_frame(), rejects_frame(recipe_rejects)])
    _log_rejects(context, rejects, "hf_eval_results")
    duck.write_side_table(object_store, "hf_eval_results_rejects", rejects)
    duck.write_side_table(object_store, "datadecide_recipes", recipes)
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"hf_eval_results": table, "datadecide_recipes": recipes, "hf_eval_results_rejects": rejects},
                          views=HF_VIEWS)
    context.add_output_metadata({"hub": status, "rows": table.num_rows, "files": res.files, "recipes": recipes.height,
                                 "rejects": rejects.height})
    return table


@dg.asset(group_name=GROUP, pool=POOL, description="DataDecide checkpoints -> W&B runs; joined with eval results into finetune_pretrain.")
def matched_runs(context: dg.AssetExecutionContext, store: ObjectStoreResource, duckdb: DuckDBResource,
                 hf_eval_results: pl.DataFrame, wandb_runs: pl.DataFrame) -> pl.DataFrame:
    object_store = store.get_store()
    keys, frames, rej = _parse_landed(object_store, MATCHED_PREFIX, ".json", parse_matched_runs,
                                      unreadable_file=MatchedRunsError)
    _log_rejects(context, rej, "matched_runs")
    if not frames:
        # the rejects table says which file failed and why, also when nothing could be read
        duck.write_side_table(object_store, "matched_runs_rejects", rej)
        with _connect(duckdb) as conn:
            duck.write_tables(conn, {"matched_runs_rejects": rej})
        reasons = "; ".join(rej["error"].to_list()[:3]) or "no *.json file landed"
        raise dg.Failure(f"no readable matched-runs index under {MATCHED_PREFIX} ({len(keys)} file(s), "
                         f"{rej.height} rejected, see table matched_runs_rejects): {reasons}")
    matched = pl.concat(frames).unique(maintain_order=True)
    joined = finetune_pretrain(matched, hf_eval_results, wandb_runs)
    duck.write_side_table(object_store, "matched_runs_rejects", rej)
    duck.write_side_table(object_store, "finetune_pretrain", joined)
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"matched_runs": matched, "finetune_pretrain": joined, "matched_runs_rejects": rej})
    levels = dict(joined.group_by("score_level").len().iter_rows())
    context.add_output_metadata({"run_records": matched.height, "checkpoints": matched["checkpoint"].n_unique(),
                                 "finetune_pretrain_rows": joined.height, "rejects": rej.height,
                                 "finetune_pretrain_scored_by_seed": levels.get("seed", 0),
                                 "finetune_pretrain_scored_by_recipe_size_mean": levels.get("recipe_size_mean", 0),
                                 "finetune_pretrain_unscored": levels.get(None, 0)})
    return matched


@dg.asset(group_name=GROUP, pool=POOL, description="DataDecide checkpoint lists (JSONL) joined to matched runs and W&B runs by model name.")
def datadecide_checkpoints(context: dg.AssetExecutionContext, store: ObjectStoreResource, duckdb: DuckDBResource,
                           matched_runs: pl.DataFrame, wandb_runs: pl.DataFrame) -> pl.DataFrame:
    object_store = store.get_store()
    keys, frames, rej = _parse_landed(object_store, CHECKPOINTS_PREFIX, ".jsonl", parse_checkpoint_list)
    _log_rejects(context, rej, "datadecide_checkpoints")
    duck.write_side_table(object_store, "datadecide_checkpoints_rejects", rej)
    if not frames:
        raise dg.Failure(f"no checkpoint list (*.jsonl) under {CHECKPOINTS_PREFIX}")
    table = join_checkpoints(pl.concat(frames), matched_runs, wandb_runs)
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"datadecide_checkpoints": table, "datadecide_checkpoints_rejects": rej})
    matched = table.filter(pl.col("matched_run_ids").is_not_null()).height
    context.add_output_metadata({"files": len(keys), "rows": table.height, "models": table["model_name"].n_unique(),
                                 "matched_to_runs": matched, "with_run_in_wandb_runs": table.filter(pl.col("runs_in_wandb_runs") > 0).height,
                                 "rejects": rej.height})
    return table


@dg.asset(group_name=GROUP, pool=POOL, description="Features of the first k of each run's curve (last, mean, slope, power law).")
def early_window_features(context: dg.AssetExecutionContext, config: FeatureConfig, duckdb: DuckDBResource,
                          wandb_history: pl.DataFrame, wandb_runs: pl.DataFrame) -> pl.DataFrame:
    feats = build_features(wandb_history, wandb_runs, fractions=tuple(config.fractions), metric_pattern=config.metric_pattern)
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"early_window_features": feats})
    context.add_output_metadata({"rows": feats.height, "curves": feats.select("run_id", "metric").n_unique() if feats.height else 0})
    return feats


@dg.asset(group_name=GROUP, pool=POOL, description="Final-metric forecasts: grouped CV by recipe, RMSE and decision accuracy.")
def final_metric_model(context: dg.AssetExecutionContext, config: ModelConfig, duckdb: DuckDBResource,
                       store: ObjectStoreResource, early_window_features: pl.DataFrame) -> pl.DataFrame:
    try:
        scores, preds = grouped_cv(early_window_features, config.k, models=tuple(config.models))
    except ForecastError as exc:
        raise dg.Failure(str(exc)) from None
    preds = preds.with_columns(pl.col("recipe").map_elements(recipe_key, return_dtype=pl.String).alias("recipe_key"))
    duck.write_side_table(store.get_store(), "final_metric_predictions", preds)
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"final_metric_model": scores, "final_metric_predictions": preds})
    context.add_output_metadata({"scores": dg.MetadataValue.md(markdown_table(scores.to_dicts()))})
    return scores


@dg.asset(
    group_name=GROUP, pool=POOL, deps=[final_metric_model],
    description="The paper's headline: for each smaller size, the share of recipe pairs ranked as at the largest size "
                "(mean over runs), per metric; beside it the early-window forecast's accuracy on the same pairs.",
)
def decision_accuracy_by_size(context: dg.AssetExecutionContext, store: ObjectStoreResource, duckdb: DuckDBResource,
                              hf_eval_results: pl.DataFrame) -> pl.DataFrame:
    object_store = store.get_store()
    forecasts, best = None, None
    key = f"{duck.SIDE_TABLES_PREFIX}/final_metric_predictions.parquet"
    if object_store.exists(key):
        with object_store.local_path(key) as path:
            forecasts = pl.read_parquet(path)
        if forecasts.height:
            rmse = forecasts.group_by("model").agg(((pl.col("prediction") - pl.col("final_value")) ** 2).mean().sqrt().alias("rmse"))
            best = rmse.sort("rmse")["model"][0]
    try:
        table = build_decision(eval_values(hf_eval_results), forecasts, best)
    except DecisionError as exc:
        raise dg.Failure(f"decision accuracy: {exc} (hf_eval_results has {hf_eval_results.height} rows)") from None
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"decision_accuracy_by_size": table})
    top = table.sort("size_params", descending=True).unique(subset="metric", keep="first", maintain_order=True)
    context.add_output_metadata({
        "rows": table.height, "metrics": table["metric"].n_unique(),
        "ties": TIE_RULE, "missing_runs": MISSING_RULE,
        "ranking": "each recipe's mean over its runs (seeds, or replicates when the source has no seed labels) "
                   "at the run's last evaluated step; order only, so the metric's direction does not matter",
        "forecast_model": best or "none (final_metric_model has no predictions)",
        "forecast_pairs_covered": int(table["forecast_pairs"].sum()),
        "largest_smaller_size": dg.MetadataValue.md("\n".join(
            f"- {r['metric']}: {r['size']} vs {r['target_size']}: {r['decision_accuracy']:.1%} of {r['pairs']} pairs"
            for r in top.iter_rows(named=True) if r["decision_accuracy"] is not None)),
    })
    return table


@dg.asset_check(asset=wandb_history, description="No duplicate (run, step, tokens, metric) rows.")
def wandb_history_unique(wandb_history: pl.DataFrame) -> dg.AssetCheckResult:
    keys = ["project", "run_id", "step", "tokens", "metric"]
    dups = wandb_history.height - wandb_history.select(keys).unique().height
    return dg.AssetCheckResult(passed=dups == 0, metadata={"duplicates": dups, "rows": wandb_history.height})


@dg.asset_check(asset=final_metric_model, description="Every model scored with a finite RMSE.")
def final_metric_model_scored(final_metric_model: pl.DataFrame) -> dg.AssetCheckResult:
    finite = final_metric_model.filter(pl.col("rmse").is_finite()).height
    return dg.AssetCheckResult(passed=finite == final_metric_model.height and finite > 0,
                               metadata={"models": final_metric_model.height, "finite_rmse": finite})


def _all_null(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if c in frame.columns and frame.height and frame[c].null_count() == frame.height]


@dg.asset_check(asset=hf_eval_results, description="Eval results has rows, and its key columns are not null in every row.")
def hf_eval_results_not_empty(hf_eval_results: pl.DataFrame, store: ObjectStoreResource) -> dg.AssetCheckResult:
    from snoiq_assets.lib.datadecide.hf import EVAL_PREFIX

    files = [i.key for i in store.get_store().list(EVAL_PREFIX)]
    key_cols = ["params", "data", "recipe_key", "primary_score"]
    null_cols = _all_null(hf_eval_results, key_cols)
    if hf_eval_results.height == 0:
        cause = (f"no eval-results file landed under {EVAL_PREFIX} and the hub fetch is off or failed"
                 if not files else f"{len(files)} file(s) under {EVAL_PREFIX} gave no row: see table hf_eval_results_rejects")
    elif null_cols:
        cause = f"column(s) {', '.join(null_cols)} null in every row: the landed files do not carry them"
    else:
        cause = ""
    return dg.AssetCheckResult(passed=not cause, metadata={"rows": hf_eval_results.height, "files": len(files),
                                                           "cause": cause or "ok", "all_null_key_columns": null_cols})


@dg.asset_check(asset=matched_runs, additional_ins={"wandb_runs": dg.AssetIn("wandb_runs")},
                description="Matched runs find their W&B runs, and finetune_pretrain has scores: else the cause.")
def matched_runs_joins(matched_runs: pl.DataFrame, wandb_runs: pl.DataFrame, store: ObjectStoreResource) -> dg.AssetCheckResult:
    found = matched_runs.join(wandb_runs.select("run_id").unique(), on="run_id", how="semi").height if wandb_runs.height else 0
    causes = []
    if found == 0:
        mp = sorted(p for p in matched_runs["project"].unique().to_list() if p)
        wp = sorted(p for p in wandb_runs["project"].unique().to_list() if p) if wandb_runs.height else []
        common = sorted(set(mp) & set(wp))
        causes.append(
            f"matched_runs x wandb_runs matches 0 of {matched_runs.height} run ids: the matched runs are in W&B project(s) "
            f"{', '.join(mp)}, wandb_runs holds {', '.join(wp) or 'no run'}"
            + (f" (shared: {', '.join(common)}, but no run id in common)" if common else
               "; none shared, so no run can match: land those projects' run records (wandb_export with WANDB_API_KEY)"))
    with store.get_store().local_path(f"{duck.SIDE_TABLES_PREFIX}/finetune_pretrain.parquet") as path:
        joined = pl.read_parquet(path)
    scored = joined["primary_score"].is_not_null().sum()
    if scored == 0:
        causes.append(f"finetune_pretrain.primary_score is null in all {joined.height} rows: no eval result shares a "
                      f"recipe and size with a matched checkpoint")
    return dg.AssetCheckResult(passed=not causes, metadata={
        "matched_run_ids_in_wandb_runs": found, "finetune_pretrain_scored_rows": int(scored),
        "finetune_pretrain_rows": joined.height, "cause": " | ".join(causes) or "ok"})


@dg.asset_check(asset=datadecide_checkpoints, description="Checkpoint lists have rows that all find their matched runs.")
def datadecide_checkpoints_matched(datadecide_checkpoints: pl.DataFrame) -> dg.AssetCheckResult:
    unmatched = datadecide_checkpoints.filter(pl.col("matched_run_ids").is_null())
    null_cols = _all_null(datadecide_checkpoints, ["recipe", "size", "seed", "revision", "step"])
    cause = ("no checkpoint rows" if datadecide_checkpoints.height == 0 else
             f"{unmatched.height} checkpoint(s) without a matched run, e.g. {unmatched['model_name'][0]}" if unmatched.height else
             f"column(s) {', '.join(null_cols)} null in every row" if null_cols else "")
    return dg.AssetCheckResult(passed=not cause, metadata={"rows": datadecide_checkpoints.height,
                                                           "unmatched": unmatched.height, "cause": cause or "ok"})


@dg.asset_check(asset=decision_accuracy_by_size, description="Every size has recipe pairs and an accuracy.")
def decision_accuracy_has_pairs(decision_accuracy_by_size: pl.DataFrame) -> dg.AssetCheckResult:
    empty = decision_accuracy_by_size.filter(pl.col("pairs") == 0)
    cause = ("no rows: fewer than two sizes or no recipe evaluated at the largest size" if decision_accuracy_by_size.height == 0
             else f"{empty.height} size(s) with no comparable pair, e.g. {empty['size'][0]} ({empty['metric'][0]})" if empty.height
             else "")
    return dg.AssetCheckResult(passed=not cause, metadata={
        "rows": decision_accuracy_by_size.height, "cause": cause or "ok",
        "forecast_pairs_covered": int(decision_accuracy_by_size["forecast_pairs"].sum()) if decision_accuracy_by_size.height else 0})


ASSETS = [wandb_export, wandb_history, wandb_runs, hf_eval_results, matched_runs, datadecide_checkpoints,
          early_window_features, final_metric_model, decision_accuracy_by_size]
CHECKS = [wandb_history_unique, final_metric_model_scored, hf_eval_results_not_empty, matched_runs_joins,
          datadecide_checkpoints_matched, decision_accuracy_has_pairs]
