"""DataDecide assets: W&B runs/history, HF eval results, matched runs, early-window forecasts.

Each asset's main frame goes to the ``io_manager`` (``lake/<asset>.parquet``); the DuckDB tables
are written from the same in-memory frames through the ``duckdb`` resource (pool
``duckdb_writer``: one DuckDB writer at a time). Side tables (rejects, wide history) are Parquet
under ``lake/datadecide/`` (``duck.write_side_table``).
"""


import tempfile
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource

from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.datadecide import duck
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
from snoiq_assets.lib.datadecide.matching import MATCHED_PREFIX, MatchedRunsError, finetune_pretrain, parse_matched_runs
from snoiq_assets.lib.datadecide.wandb_io import WandbUnavailable, export_wandb, ingest_history, ingest_runs

GROUP = "datadecide"
POOL = "duckdb_writer"


class WandbExportConfig(dg.Config):
    entity: str = "ai2-llm"
    projects: list[str] = []
    fetch: bool = True
    max_runs: int | None = None


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
            res = export_wandb(store.get_store(), config.entity, config.projects, max_runs=config.max_runs)
            runs = res.runs
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
    frames, rejects = [], []
    keys = [i.key for i in object_store.list(MATCHED_PREFIX) if i.key.endswith(".json")]
    for key in keys:
        try:
            df, rej = parse_matched_runs(object_store.get(key), key)
        except MatchedRunsError as exc:
            rejects.append({"file": key, "line": None, "error": str(exc), "text": ""})
            continue
        frames.append(df)
        rejects.extend(rej)
    if not frames:
        raise dg.Failure(f"no readable matched-runs index under {MATCHED_PREFIX} ({len(keys)} file(s), {len(rejects)} rejected)")
    matched = pl.concat(frames).unique(maintain_order=True)
    joined = finetune_pretrain(matched, hf_eval_results, wandb_runs)
    rej = rejects_frame(rejects)
    _log_rejects(context, rej, "matched_runs")
    duck.write_side_table(object_store, "finetune_pretrain", joined)
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"matched_runs": matched, "finetune_pretrain": joined, "matched_runs_rejects": rej})
    context.add_output_metadata({"run_records": matched.height, "checkpoints": matched["checkpoint"].n_unique(),
                                 "finetune_pretrain_rows": joined.height, "rejects": rej.height})
    return matched


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
                       early_window_features: pl.DataFrame) -> pl.DataFrame:
    try:
        scores, preds = grouped_cv(early_window_features, config.k, models=tuple(config.models))
    except ForecastError as exc:
        raise dg.Failure(str(exc)) from None
    with _connect(duckdb) as conn:
        duck.write_tables(conn, {"final_metric_model": scores, "final_metric_predictions": preds})
    context.add_output_metadata({"scores": dg.MetadataValue.md(scores.to_pandas().to_markdown(index=False))
                                 if _has_tabulate() else str(scores.to_dicts())})
    return scores


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


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


ASSETS = [wandb_export, wandb_history, wandb_runs, hf_eval_results, matched_runs, early_window_features, final_metric_model]
CHECKS = [wandb_history_unique, final_metric_model_scored]
