"""``champion_model`` (one partition per model spec): the spec's best held-out model, promoted
(MLflow alias ``champion``, champion record in the model store under the spec's location and
target, which no other spec may claim) only when lib/models/promotion.py says so. Every decision,
promoted or kept, is recorded under ``models/<location>/champion-history/``."""

import datetime as dt
import json
from typing import Any

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from snoiq_assets.defs.models.resources import MlflowResource
from snoiq_assets.defs.partitions import model_spec_partitions
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.features.training import info_from_schema_metadata
from snoiq_assets.lib.keys import safe_identifier
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models import experiments as X
from snoiq_assets.lib.models import metrics as M
from snoiq_assets.lib.models.evaluate import score_on
from snoiq_assets.lib.models.specs import ModelSpec, read_spec
from snoiq_assets.lib.models.promotion import best_candidate, check_rule, decide
from snoiq_assets.lib.models.splits import parse_period
from snoiq_assets.lib.models.mlflow_conventions import experiment_name
from snoiq_assets.lib.models.store import (
    champion_key, load_bundle, read_champion, read_metadata, record_champion_decision, write_champion,
)
from snoiq_assets.lib.parquet import StoredParquet

GROUP = "models"


def registered_name(spec: ModelSpec) -> str:
    return spec.champion.registered_model_name or f"snoiq-{spec.spec_id}"


@dg.asset(
    group_name=GROUP,
    partitions_def=model_spec_partitions,
    ins={
        "trained_models": dg.AssetIn(metadata={"allow_missing_partitions": True}),
        "training_table": dg.AssetIn(),
    },
    description="The best held-out model that beats every baseline (forecasts: persistence, climatology and the raw "
                "NWP forecast at every lead), promoted only when it also beats the current champion by a margin.",
    kinds={"mlflow"},
)
def champion_model(
    context: dg.AssetExecutionContext,
    store: ObjectStoreResource,
    mlflow: MlflowResource,
    duckdb: DuckDBResource,
    trained_models: pl.DataFrame,
    training_table: StoredParquet,
) -> pl.DataFrame:
    object_store = store.get_store()
    spec = read_spec(object_store, context.partition_key)
    config = spec.champion
    check_rule(config.metric, config.min_improvement)
    location = safe_identifier(spec.store_location, "location")
    cands = trained_models.filter(pl.col("spec") == spec.spec_id) if trained_models.height else trained_models
    if cands.height == 0:
        raise ModelError(f"no trained models for spec {spec.spec_id!r}; materialise trained_models first")
    best, refusal = best_candidate(list(cands.sort(config.metric).iter_rows(named=True)))
    now = dt.datetime.now(dt.timezone.utc)
    current = read_champion(object_store, location, spec.target)

    def rescore_current() -> tuple[float, str]:
        # Fair comparison: score the current champion on the candidate's test period.
        start, end = parse_period(best["test_start"]), parse_period(best["test_end"])
        table = training_table.read(spec.spec_id)
        cur_model, cur_meta = load_bundle(object_store, current["model_prefix"], table.columns)
        if cur_meta.get("resolution_days") != info_from_schema_metadata(training_table.metadata(spec.spec_id)).get("resolution_days"):
            raise ModelError("resolution differs")
        y, p = score_on(cur_model, table, start, end, cur_meta.get("stations") or [location])
        return (M.rmse(y, p) if config.metric == "rmse" else M.mae(y, p)), f"re-scored on {start}..{end}"

    decision = decide(best, current, config.metric, config.min_improvement, refusal,
                      rescore_current)
    cand_meta = read_metadata(object_store, best["model_prefix"])
    record: dict[str, Any] = {"candidate_prefix": best["model_prefix"], "candidate_model_type": best["model_type"],
                              "candidate_" + config.metric: float(best[config.metric]), "metric": config.metric,
                              "min_improvement": config.min_improvement, "decided_at": now.isoformat(),
                              # What champion_history shows: the model, its run and the rows it trained on.
                              "spec_key": cand_meta.get("spec_key"), "candidate_run_id": cand_meta.get("run_id"),
                              "snapshot_sha256": (cand_meta.get("snapshot") or {}).get("sha256"),
                              "training_window": cand_meta.get("training_window")}
    if decision.current_value is not None:
        record["current_prefix"] = current.get("model_prefix")
        record["current_" + config.metric] = decision.current_value
    record.update({"promoted": decision.promote, "reason": decision.reason})
    version = current.get("registered_version") if current else None
    name = registered_name(spec)
    if decision.promote:
        version = mlflow.register_champion(name, best["mlflow_run_id"], best["model_prefix"], object_store,
                                           training_table.read(spec.spec_id))
        meta = cand_meta
        write_champion(object_store, location, spec.target, {
            "model_prefix": best["model_prefix"], "model_type": best["model_type"], "mlflow_run_id": best["mlflow_run_id"],
            "registered_model": name, "registered_version": version, "alias": "champion", "promoted_at": now.isoformat(),
            config.metric: float(best[config.metric]), "rmse": best["rmse"], "mae": best["mae"],
            "features": len(meta["features"]), "target": spec.target, "spec": spec.spec_id, "resolution": meta.get("resolution", "daily"),
            "stations": meta.get("stations") or [location],
            "run_id": meta.get("run_id"), "snapshot_sha256": (meta.get("snapshot") or {}).get("sha256"),
        })
    record["registered_model"] = name
    record["registered_version"] = version
    record_champion_decision(object_store, location, record, now)
    context.log.info(f"champion decision: {'promoted' if decision.promote else 'kept'}: {decision.reason}")
    if X.refresh_champion_history(object_store, duckdb.database) is None:
        context.log.warning("the DuckDB file was locked; champion_history catches up at the next refresh")
    champion_file = champion_key(location, spec.target)
    context.add_output_metadata({"spec": spec.spec_id, "promoted": decision.promote, "reason": decision.reason,
                                 "champion": dg.MetadataValue.path(object_store.uri(champion_file))
                                 if object_store.exists(champion_file) else "none yet",
                                 "mlflow_experiment": dg.MetadataValue.url(mlflow.experiment_url(
                                     mlflow.experiment_id(experiment_name(spec.spec_id)))),
                                 "registered_model": name,
                                 "registered_version": str(version), "candidate": best["model_prefix"]})
    return pl.DataFrame([{k: (json.dumps(v) if isinstance(v, (dict, list)) else (None if v is None else str(v)))
                          for k, v in record.items()}])
