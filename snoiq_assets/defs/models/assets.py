"""`trained_models` (one partition per model type), `champion_model`, `predictions`.

Domain logic lives in snoiq_assets/lib/models; this file reads inputs, talks to MLflow, the
model store and the experiments table, and reports metadata.
"""


import datetime as dt
import itertools
import json
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource

from snoiq_assets.lib.dates import optional_date
from snoiq_assets.defs.io_manager import read_schema_metadata, write_partition
from snoiq_assets.defs.models.resources import MlflowResource
from snoiq_assets.defs.partitions import HOURLY_KEY_FORMAT, hourly_partitions, model_type_partitions
from snoiq_assets.defs.resources import ObjectStoreResource
from snoiq_assets.lib.features.hourly import hourly_feature_rows, lags_of
from snoiq_assets.lib.features.training import info_from_schema_metadata
from snoiq_assets.lib.keys import join_key, safe_identifier
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models import experiments as X
from snoiq_assets.lib.models import plots
from snoiq_assets.lib.models.evaluate import (
    feature_matrix, hyperparameters, period_between, run_spec, score_on, train_and_evaluate,
)
from snoiq_assets.lib.models.snapshots import mlflow_dataset, write_snapshot
from snoiq_assets.lib.models.splits import MIN_TEST_ROWS, MIN_TRAIN_ROWS, parse_period
from snoiq_assets.lib.models.store import (
    champion_key, check_scoring_columns, load_bundle, new_run_timestamp, predictions_key, read_metadata, save_bundle,
)
from snoiq_assets.lib.models.train import MODEL_FILES, available_cpus, resolve_threads, save_native

TRAINING_TABLE = dg.AssetKey("training_table")
GRID_JOIN_KEY = dg.AssetKey("grid_join_features")
OBS_KEY = dg.AssetKey("observations_clean")


def _date(text: Optional[str], what: str) -> Optional[dt.date]:
    return optional_date(text, what, ModelError)


class TrainModelConfig(dg.Config):
    target: str = "precip_mm"
    location: Optional[str] = None  # the name models are stored under; default: the only station
    locations: Optional[list[str]] = None  # stations to train on; default: [location]
    resolution_days: int = 1
    # hourly: train on the hourly grid-join training table (training_table with hourly: true);
    # resolution_days is then not used, and split_date may name an hour (YYYY-MM-DDTHH).
    hourly: bool = False
    feature_set: str = "all"  # all | station | grid
    features: Optional[list[str]] = None
    log_transform: bool = False  # fit on log1p(target), predict expm1
    hyperparameters: dict[str, Any] = {}
    split_date: Optional[str] = None  # train before, test from; default: last test_fraction of periods
    test_fraction: float = 0.2
    cv_folds: int = 3
    # The least data a model is trained and scored on (each CV fold's test needs half of
    # min_test_rows). Lower them only knowingly, e.g. for a first model on a few days of hours.
    min_train_rows: int = MIN_TRAIN_ROWS
    min_test_rows: int = MIN_TEST_ROWS
    seed: int = 0
    # Threads per fit: 0 or -1 = every CPU the run may use. A sweep running k runs side by side
    # sets cpus // k (see sweep_run_configs); "n_jobs"/"nthread" in hyperparameters override it.
    n_jobs: int = -1
    sweep_id: Optional[str] = None
    # What a git tag used to carry: a short tag (letters, digits, '_', '.', '-') and free text,
    # both in the experiments row (a sweep file's tag/description reach every run of it).
    tag: Optional[str] = None
    description: Optional[str] = None

    def stored_resolution_days(self) -> int:
        """What rows and metadata record: 0 for an hourly model, as the hourly table does."""
        return 0 if self.hourly else self.resolution_days


def _table_info(store: ObjectStoreResource) -> dict:
    """The training table's build info, from its Parquet footer only (on S3 a ranged read, not a
    download of the whole table that the IO manager has already loaded)."""
    return info_from_schema_metadata(read_schema_metadata(store, TRAINING_TABLE, None))


def _data_version(context: dg.AssetExecutionContext, key: dg.AssetKey) -> Optional[str]:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return (event.asset_materialization.tags or {}).get("dagster/data_version")


def _location(config_location: Optional[str], locations: Optional[list[str]], info: dict) -> tuple[str, list[str]]:
    if config_location:
        name = safe_identifier(config_location, "location")
        return name, list(locations or [name])
    if locations and len(locations) == 1:
        return safe_identifier(locations[0], "location"), list(locations)
    known = info.get("locations") or []
    if len(known) == 1:
        return safe_identifier(known[0], "location"), list(known)
    raise ModelError(f"config 'location' is required when the training table holds several locations ({known[:5]})")


TRAINED_SCHEMA = {
    "run_id": pl.Utf8, "model_type": pl.Utf8, "location": pl.Utf8, "target": pl.Utf8, "resolution_days": pl.Int64,
    "run_timestamp": pl.Utf8, "model_prefix": pl.Utf8, "mlflow_run_id": pl.Utf8, "test_start": pl.Utf8,
    "test_end": pl.Utf8, "rmse": pl.Float64, "mae": pl.Float64, "r2": pl.Float64, "bias": pl.Float64,
    "skill_persistence": pl.Float64, "skill_climatology": pl.Float64, "metrics_json": pl.Utf8,
}


@dataclass
class _Run:
    """Everything one model type's training in this Dagster run shares."""

    context: dg.AssetExecutionContext
    config: "TrainModelConfig"
    obj_store: Any
    mlflow: MlflowResource
    training_table: pl.DataFrame
    info: dict
    location: str
    stations: list[str]
    data_versions: dict[str, Any]
    git: str


@dg.asset(
    group_name="models",
    partitions_def=model_type_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"training_table": dg.AssetIn(key=TRAINING_TABLE)},
    description="One model per type, trained before the split date, scored after it against persistence and "
                "climatology. One run can train several types (a partition range): each gets its own MLflow run "
                "and experiments row, and one type failing does not stop the others.",
    kinds={"xgboost", "lightgbm", "scikitlearn", "mlflow"},
)
def trained_models(
    context: dg.AssetExecutionContext,
    config: TrainModelConfig,
    store: ObjectStoreResource,
    mlflow: MlflowResource,
    duckdb: DuckDBResource,
    training_table: pl.DataFrame,
) -> dict:
    model_types = list(context.partition_keys)
    obj_store = store.get_store()
    git = X.git_commit()
    run_ids: list[str] = []
    frames: dict[str, pl.DataFrame] = {}
    failures: dict[str, str] = {}
    shared: Optional[_Run] = None
    shared_error: Optional[BaseException] = None
    try:
        info = _table_info(store)
        location, stations = _location(config.location, config.locations, info)
        data_versions = {
            "training_table": _data_version(context, TRAINING_TABLE),
            "table_target": info.get("target"), "table_resolution_days": info.get("resolution_days"),
            "feature_set": info.get("feature_set"), "period_start_min": info.get("period_start_min"),
            "period_start_max": info.get("period_start_max"), "grid_partitions": info.get("grid_partitions"),
            "stations": stations,
        }
        shared = _Run(context, config, obj_store, mlflow, training_table, info, location, stations, data_versions, git)
    except Exception as exc:  # noqa: BLE001 - recorded per model type below, then raised
        shared_error = exc
    try:
        for model_type in model_types:
            run_id = uuid.uuid4().hex
            run_ids.append(run_id)
            try:
                if shared_error is not None:
                    # Nothing could start (e.g. no build info, no location): one failed row per type.
                    X.record(obj_store, X.make_row(
                        run_id=run_id, started_at=dt.datetime.now(dt.timezone.utc), status="failed",
                        error=f"{type(shared_error).__name__}: {shared_error}"[:2000], model_type=model_type,
                        location=None, target=config.target, resolution_days=config.stored_resolution_days(),
                        params={**config.model_dump(), "model_type": model_type}, git=git,
                        sweep_id=config.sweep_id, dagster_run_id=context.run_id, tag=config.tag,
                        description=config.description,
                    ))
                    raise shared_error
                frames[model_type] = _train_one(shared, model_type, run_id)
            except Exception as exc:  # noqa: BLE001 - recorded; the other types still train
                failures[model_type] = f"{type(exc).__name__}: {exc}"[:2000]
                context.log.error(f"trained_models[{model_type}] failed: {failures[model_type]}")
    finally:
        # One incremental refresh for the whole run (also when interrupted): this run's rows plus
        # any an earlier, locked-out refresh missed.
        rows = X.refresh_table(obj_store, duckdb.database, run_ids=run_ids)
        if rows is None:
            context.log.warning("the DuckDB file was locked; this run's rows are in experiments/ and the next refresh adds them")
    if failures:
        ok = sorted(frames)
        # A step fails or succeeds as a whole, but the types that trained are real models: store
        # their partitions and report them as materialised, so the UI, champion_model and the
        # next run see them; only the failed types stay missing (and are retried).
        for mt in ok:
            rows, size, uri = write_partition(obj_store, context.asset_key, mt, frames[mt])
            context.log_event(dg.AssetMaterialization(
                asset_key=context.asset_key, partition=mt,
                metadata={"uri": dg.MetadataValue.path(uri), "dagster/row_count": rows, "size_bytes": size,
                          **{k: frames[mt][k][0] for k in ("model_prefix", "mlflow_run_id", "rmse", "mae", "r2")},
                          "note": "stored although other model types of the same run failed"},
            ))
        raise dg.Failure(
            description="; ".join(f"{mt}: {msg}" for mt, msg in failures.items())
            + (f" (trained, recorded and stored: {', '.join(ok)})" if ok else ""),
            metadata={"failed_model_types": ", ".join(failures), "succeeded_model_types": ", ".join(ok)},
        )
    return frames


def _train_one(r: _Run, model_type: str, run_id: str) -> pl.DataFrame:
    """Train, log and store one model type and record its experiments row (success or failed).
    On failure nothing is left in the model store and the MLflow run is marked FAILED."""
    config, obj_store = r.config, r.obj_store
    started = dt.datetime.now(dt.timezone.utc)
    run_ts = new_run_timestamp(started)
    params = {**config.model_dump(), "model_type": model_type}
    client, mlflow_run_id, prefix, snapshot = None, None, None, None
    try:
        X.check_tag(config.tag, config.description)
        result = train_and_evaluate(r.training_table, r.info, run_spec(params, model_type, r.stations))
        metrics = result.metrics
        # The exact rows (content-addressed, shared with runs that used the same ones).
        snapshot = write_snapshot(obj_store, result.data, result.features, r.info)

        client = r.mlflow.client()
        run = client.create_run(r.mlflow.experiment_id(), run_name=f"{r.location}-{model_type}-{run_ts}", tags={
            "model_type": model_type, "location": r.location, "target": config.target, "git_commit": r.git,
            "dagster_run_id": r.context.run_id, "snoiq_run_id": run_id, "snapshot_sha256": snapshot.sha256,
            **({"sweep_id": config.sweep_id} if config.sweep_id else {}), **({"tag": config.tag} if config.tag else {}),
            **({"mlflow.note.content": config.description} if config.description else {}),
        })
        mlflow_run_id = run.info.run_id
        from mlflow.entities import Metric, Param

        now_ms = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
        flat_params = {k: json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v) for k, v in params.items()}
        flat_params.update({f"window.{k}": str(v) for k, v in result.window.items()})
        flat_params["n_features"] = str(len(result.features))
        client.log_batch(
            mlflow_run_id,
            metrics=[Metric(k, float(v), now_ms, 0) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None],
            params=[Param(k, v[:6000]) for k, v in flat_params.items()],
        )
        from mlflow.entities import DatasetInput, InputTag

        dataset = mlflow_dataset(result.data.select("location", "period_start", "target", *result.features),
                                 snapshot, obj_store.uri(snapshot.key))
        client.log_inputs(mlflow_run_id, datasets=[DatasetInput(
            dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training+test")])])
        meta = {
            "location": r.location, "stations": r.stations, "run_timestamp": run_ts, "target": config.target,
            "resolution": "hourly" if config.hourly else "daily",
            "resolution_days": config.stored_resolution_days(), "training_window": result.window, "metrics": metrics,
            "data_versions": r.data_versions, "mlflow_run_id": mlflow_run_id, "params": hyperparameters(config.hyperparameters),
            "feature_set": config.feature_set, "git_commit": r.git, "run_id": run_id, "snapshot": snapshot.describe(),
            "spec_key": X.model_spec_key(r.location, config.target, config.stored_resolution_days()),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        with tempfile.TemporaryDirectory(prefix="snoiq-mlflow-") as tmp:
            t = Path(tmp)
            (t / "data.json").write_text(json.dumps({"window": result.window, "data_versions": r.data_versions,
                                                      "features": result.features}, indent=2, default=str))
            plots.feature_importance_png(result.model.feature_importance(), t / "feature_importance.png",
                                         title=f"{model_type}: {config.target}")
            plots.predicted_vs_observed_png(result.test_frame["observed"], result.test_frame["predicted"],
                                            t / "predicted_vs_observed.png",
                                            title=f"{model_type} {r.location} test {result.window['test_start']}..{result.window['test_end']}")
            # The model is serialised once: the same file goes to MLflow (model/) and the model store.
            save_native(result.model, t / "model")
            client.log_artifacts(mlflow_run_id, str(t))
            prefix = save_bundle(obj_store, result.model, meta, model_file=t / "model" / MODEL_FILES[model_type])
        X.record(obj_store, X.make_row(
            run_id=run_id, started_at=started, status="success", model_type=model_type, location=r.location,
            target=config.target, resolution_days=config.stored_resolution_days(), params=params, metrics=metrics,
            data_versions=r.data_versions, git=r.git, sweep_id=config.sweep_id, dagster_run_id=r.context.run_id,
            mlflow_run_id=mlflow_run_id, model_uri=obj_store.uri(prefix), tag=config.tag,
            description=config.description, snapshot=snapshot.describe(), model_prefix=prefix,
        ))
        client.set_tag(mlflow_run_id, "model_prefix", prefix)
        client.set_terminated(mlflow_run_id, "FINISHED")
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"[:2000]
        if prefix is not None:
            for name in ("manifest.json", "metadata.json", "model.ubj", "model.txt", "model.skops"):
                obj_store.delete(join_key(prefix, name))
        if client is not None and mlflow_run_id is not None:
            try:
                client.set_tag(mlflow_run_id, "error", message[:5000])
                client.set_terminated(mlflow_run_id, "FAILED")
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        X.record(obj_store, X.make_row(
            run_id=run_id, started_at=started, status="failed", error=message, model_type=model_type,
            location=r.location, target=config.target, resolution_days=config.stored_resolution_days(), params=params,
            git=r.git, sweep_id=config.sweep_id, dagster_run_id=r.context.run_id, mlflow_run_id=mlflow_run_id,
            data_versions=r.data_versions, tag=config.tag, description=config.description,
            snapshot=snapshot.describe() if snapshot else None,
        ))
        raise
    r.context.add_asset_metadata({
        "model_uri": dg.MetadataValue.path(obj_store.uri(prefix)), "mlflow_run_id": mlflow_run_id,
        "rmse": metrics["rmse"], "mae": metrics["mae"], "r2": metrics["r2"], "bias": metrics["bias"],
        "skill_persistence": metrics["skill_persistence"], "skill_climatology": metrics["skill_climatology"],
        "persistence_rmse": metrics["persistence_rmse"], "climatology_rmse": metrics["climatology_rmse"],
        "cv_rmse_mean": metrics["cv_rmse_mean"] if metrics["cv_rmse_mean"] is not None else float("nan"),
        "train_window": f"{result.window['train_start']}..{result.window['train_end']}",
        "test_window": f"{result.window['test_start']}..{result.window['test_end']}",
        "n_jobs": resolve_threads(config.n_jobs),
        "snapshot": dg.MetadataValue.path(obj_store.uri(snapshot.key)), "snapshot_rows": snapshot.rows,
        "snapshot_bytes": snapshot.bytes,
        "reproduce": f"make reproduce RUN={run_id}",
    }, partition_key=model_type)
    return pl.DataFrame([{
        "run_id": run_id, "model_type": model_type, "location": r.location, "target": config.target,
        "resolution_days": config.stored_resolution_days(), "run_timestamp": run_ts, "model_prefix": prefix,
        "mlflow_run_id": mlflow_run_id, "test_start": result.window["test_start"], "test_end": result.window["test_end"],
        **{m: metrics[m] for m in ("rmse", "mae", "r2", "bias", "skill_persistence", "skill_climatology")},
        "metrics_json": json.dumps(metrics, default=str),
    }], schema=TRAINED_SCHEMA)


class ChampionConfig(dg.Config):
    location: str
    target: str = "precip_mm"
    metric: str = "rmse"  # rmse | mae (lower is better)
    min_improvement: float = 0.02  # relative: promote only if metric < current * (1 - min_improvement)
    require_beats_baselines: bool = True
    registered_model_name: Optional[str] = None  # default snoiq-<location>-<target>


def registered_name(config: ChampionConfig) -> str:
    return config.registered_model_name or f"snoiq-{config.location}-{config.target}"


def _register(mlflow: MlflowResource, name: str, mlflow_run_id: str, prefix: str) -> str:
    from mlflow.exceptions import MlflowException

    client = mlflow.client()
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass  # it exists
    source = client.get_run(mlflow_run_id).info.artifact_uri.rstrip("/") + "/model"
    mv = client.create_model_version(name, source=source, run_id=mlflow_run_id, tags={"model_prefix": prefix})
    client.set_registered_model_alias(name, "champion", mv.version)
    return str(mv.version)


@dg.asset(
    group_name="models",
    ins={
        "trained_models": dg.AssetIn(metadata={"allow_missing_partitions": True}),
        "training_table": dg.AssetIn(key=TRAINING_TABLE),
    },
    description="The best held-out model, promoted only when it beats the current champion by a margin.",
    kinds={"mlflow"},
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: ChampionConfig,
    store: ObjectStoreResource,
    mlflow: MlflowResource,
    duckdb: DuckDBResource,
    trained_models: pl.DataFrame,
    training_table: pl.DataFrame,
) -> pl.DataFrame:
    if config.metric not in ("rmse", "mae"):
        raise ModelError(f"metric must be rmse or mae; got {config.metric!r}")
    if not 0 <= config.min_improvement < 1:
        raise ModelError(f"min_improvement must be in [0, 1); got {config.min_improvement}")
    location = safe_identifier(config.location, "location")
    obj_store = store.get_store()
    cands = trained_models.filter((pl.col("location") == location) & (pl.col("target") == config.target)) if trained_models.height else trained_models
    if cands.height == 0:
        raise ModelError(f"no trained models for location {location!r} and target {config.target!r}; materialise trained_models first")
    best = cands.sort(config.metric).row(0, named=True)
    cand_value = float(best[config.metric])
    now = dt.datetime.now(dt.timezone.utc)
    ckey = champion_key(location, config.target)
    current = obj_store.get_json(ckey) if obj_store.exists(ckey) else None
    cand_meta = read_metadata(obj_store, best["model_prefix"])
    decision: dict[str, Any] = {"candidate_prefix": best["model_prefix"], "candidate_model_type": best["model_type"],
                                "candidate_" + config.metric: cand_value, "metric": config.metric,
                                "min_improvement": config.min_improvement, "decided_at": now.isoformat(),
                                "spec_key": cand_meta.get("spec_key"), "candidate_run_id": cand_meta.get("run_id"),
                                "snapshot_sha256": (cand_meta.get("snapshot") or {}).get("sha256"),
                                "training_window": cand_meta.get("training_window")}
    promote, reason = True, "no current champion"
    if config.require_beats_baselines and not (best["skill_persistence"] > 0 and best["skill_climatology"] > 0):
        promote = False
        reason = (f"best candidate ({best['model_type']}) does not beat both baselines "
                  f"(skill vs persistence {best['skill_persistence']:.3f}, vs climatology {best['skill_climatology']:.3f})")
    elif current is not None and current.get("model_prefix") == best["model_prefix"]:
        promote, reason = False, "the best candidate is already the champion"
    elif current is not None:
        # Fair comparison: score the current champion on the candidate's test period.
        start, end = parse_period(best["test_start"]), parse_period(best["test_end"])
        try:
            cur_model, cur_meta = load_bundle(obj_store, current["model_prefix"], training_table.columns)
            info = _table_info(store)
            if cur_meta.get("resolution_days") != info.get("resolution_days"):
                raise ModelError("resolution differs")
            y, p = score_on(cur_model, training_table, start, end, cur_meta.get("stations") or [location])
            from snoiq_assets.lib.models import metrics as M

            cur_value = M.rmse(y, p) if config.metric == "rmse" else M.mae(y, p)
            how = f"re-scored on {start}..{end}"
        except ModelError as exc:
            cur_value = float(current.get(config.metric, float("inf")))
            how = f"stored value (could not re-score: {exc})"
        decision["current_prefix"] = current.get("model_prefix")
        decision["current_" + config.metric] = cur_value
        threshold = cur_value * (1 - config.min_improvement)
        if cand_value < threshold:
            reason = (f"{best['model_type']} {config.metric} {cand_value:.4f} beats the champion's {cur_value:.4f} "
                      f"({how}) by more than {config.min_improvement:.1%}")
        else:
            promote = False
            reason = (f"{best['model_type']} {config.metric} {cand_value:.4f} does not beat the champion's {cur_value:.4f} "
                      f"({how}) by {config.min_improvement:.1%} (needs < {threshold:.4f})")
    decision.update({"promoted": promote, "reason": reason})
    version = current.get("registered_version") if current else None
    name = registered_name(config)
    if promote:
        version = _register(mlflow, name, best["mlflow_run_id"], best["model_prefix"])
        meta = cand_meta
        obj_store.put_json(ckey, {
            "model_prefix": best["model_prefix"], "model_type": best["model_type"], "mlflow_run_id": best["mlflow_run_id"],
            "registered_model": name, "registered_version": version, "alias": "champion", "promoted_at": now.isoformat(),
            config.metric: cand_value, "rmse": best["rmse"], "mae": best["mae"], "features": len(meta["features"]),
            "target": config.target, "resolution": meta.get("resolution", "daily"), "stations": meta.get("stations") or [location],
            "run_id": meta.get("run_id"), "snapshot_sha256": (meta.get("snapshot") or {}).get("sha256"),
        })
    decision["registered_model"] = name
    decision["registered_version"] = version
    obj_store.put_json(join_key("models", location, "champion-history", f"{now:%Y%m%dT%H%M%S%fZ}.json"), decision)
    context.log.info(f"champion decision: {'promoted' if promote else 'kept'}: {reason}")
    if X.refresh_champion_history(obj_store, duckdb.database) is None:
        context.log.warning("the DuckDB file was locked; champion_history catches up at the next refresh")
    context.add_output_metadata({"promoted": promote, "reason": reason, "registered_model": name,
                                 "registered_version": str(version), "candidate": best["model_prefix"]})
    return pl.DataFrame([{k: (json.dumps(v) if isinstance(v, (dict, list)) else (None if v is None else str(v)))
                          for k, v in decision.items()}])


class PredictionsConfig(dg.Config):
    location: str
    target: str = "precip_mm"
    start_date: str
    end_date: str


def _champion(obj_store, location: str, target: str) -> dict:
    ckey = champion_key(location, target)
    if not obj_store.exists(ckey):
        raise ModelError(f"no champion for location {location!r} and target {target!r}; materialise champion_model first")
    return obj_store.get_json(ckey)


def _scored(rows: pl.DataFrame, model, meta: dict, champ: dict) -> pa.Table:
    """The champion's predictions for ``rows`` (location, period_start, features, target), with
    the model version and run ids on every row and in the Parquet schema metadata."""
    version = str(champ.get("registered_version"))
    out = rows.select("location", "period_start", pl.col("target").alias("observed")).with_columns(
        pl.Series("prediction", model.predict(feature_matrix(rows, meta["features"])), dtype=pl.Float64),
        pl.lit(meta["target"]).alias("target"), pl.lit(meta["model_type"]).alias("model_type"),
        pl.lit(version).alias("model_version"), pl.lit(meta["mlflow_run_id"]).alias("mlflow_run_id"),
        pl.lit(champ["model_prefix"]).alias("model_prefix"),
    )
    table = out.to_arrow()
    return table.replace_schema_metadata({
        b"snoiq.model_version": version.encode(), b"snoiq.mlflow_run_id": str(meta["mlflow_run_id"]).encode(),
        b"snoiq.model_prefix": champ["model_prefix"].encode(), b"snoiq.target_transform": meta["target_transform"].encode(),
    })


def _write_predictions(obj_store, key: str, table: pa.Table) -> str:
    with obj_store.atomic_local_file(key) as path:
        pq.write_table(table, path, compression="zstd")
    return obj_store.uri(key)


@dg.asset(
    group_name="models",
    deps=[champion_model],
    ins={"training_table": dg.AssetIn(key=TRAINING_TABLE)},
    description="The champion's predictions for a location and date range (config), with model version and run id "
                "in every row, under the model's folder: predictions/<start>_to_<end>/predictions.parquet.",
    kinds={"parquet"},
)
def predictions(
    context: dg.AssetExecutionContext,
    config: PredictionsConfig,
    store: ObjectStoreResource,
    training_table: pl.DataFrame,
) -> None:
    location = safe_identifier(config.location, "location")
    start, end = _date(config.start_date, "start_date"), _date(config.end_date, "end_date")
    if start is None or end is None or start > end:
        raise ModelError(f"predictions need start_date <= end_date; got {config.start_date!r} and {config.end_date!r}")
    obj_store = store.get_store()
    champ = _champion(obj_store, location, config.target)
    info = _table_info(store)
    model, meta = load_bundle(obj_store, champ["model_prefix"], training_table.columns)
    if meta.get("resolution_days") != info.get("resolution_days"):
        what = lambda d: "hourly" if d == 0 else f"resolution_days={d}"  # noqa: E731
        raise ModelError(f"the champion was trained {what(meta.get('resolution_days'))}, "
                         f"the training table is {what(info.get('resolution_days'))}; rebuild it to match")
    check_scoring_columns(meta, training_table.columns)
    stations = meta.get("stations") or [location]
    rows = (training_table.filter(pl.col("location").is_in(stations) & period_between(training_table, start, end))
            .sort("location", "period_start"))
    if rows.height == 0:
        raise ModelError(f"the training table has no rows for {stations} between {start} and {end}")
    table = _scored(rows, model, meta, champ)
    uri = _write_predictions(obj_store, predictions_key(champ["model_prefix"], start, end), table)
    context.add_output_metadata({"uri": dg.MetadataValue.path(uri), "dagster/row_count": table.num_rows,
                                 "model_version": str(champ.get("registered_version")),
                                 "mlflow_run_id": meta["mlflow_run_id"], "model_type": meta["model_type"]})


HOURLY_PREDICTIONS_SCHEMA = {
    "location": pl.Utf8, "period_start": pl.Datetime("us", "UTC"), "observed": pl.Float64, "prediction": pl.Float64,
    "target": pl.Utf8, "model_type": pl.Utf8, "model_version": pl.Utf8, "mlflow_run_id": pl.Utf8, "model_prefix": pl.Utf8,
}
_CHAMPION_FILE = re.compile(r"^models/[A-Za-z0-9_.-]+/champion-[A-Za-z0-9_.-]+\.json$")


def hourly_champions(obj_store) -> list[dict]:
    """Every champion trained on the hourly grid-join table (champion records say so)."""
    out = []
    for info in obj_store.list("models/"):
        if _CHAMPION_FILE.match(info.key):
            champ = obj_store.get_json(info.key)
            if champ.get("resolution") == "hourly":
                out.append(champ)
    return sorted(out, key=lambda c: c["model_prefix"])


MAX_LEAD = dt.timedelta(hours=48)  # HRRR's longest forecast: a cycle's valid time is within this of it


def _run_observations(observations: pl.LazyFrame, partition_keys: list[str], loaded: list) -> Optional[pl.LazyFrame]:
    """The observations every partition of the run may need for its lag features, read once:
    the champions' stations, from the longest lag before the first cycle to the last valid time."""
    if not observations.collect_schema():
        return None
    stations = sorted({s for _c, _m, meta in loaded for s in (meta.get("stations") or [meta["location"]])})
    longest = max([0, *(k for _c, _m, meta in loaded for k in lags_of(meta["features"]))])
    cycles = [dt.datetime.strptime(pk, HOURLY_KEY_FORMAT).replace(tzinfo=dt.timezone.utc) for pk in partition_keys]
    lo = min(cycles) - dt.timedelta(hours=longest + 1)
    hi = max(cycles) + MAX_LEAD + dt.timedelta(hours=1)
    ts = pl.col("timestamp_utc").cast(pl.Datetime("us", "UTC"))
    return (observations.filter(pl.col("station_id").is_in(stations) & ts.is_between(pl.lit(lo), pl.lit(hi)))
            .collect().lazy())


@dg.asset(
    group_name="models",
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[champion_model],
    ins={
        "grid_join_features": dg.AssetIn(key=GRID_JOIN_KEY),
        "observations_clean": dg.AssetIn(key=OBS_KEY, partition_mapping=dg.AllPartitionMapping(),
                                         metadata={"allow_missing_partitions": True}),
    },
    description="For each grid_join_features partition, every hourly champion's predictions for its stations "
                "(features built exactly as the hourly training table builds them), written under the model's "
                "folder as predictions/<hour>_to_<hour>/predictions.parquet and here, one file per hour.",
    kinds={"parquet"},
)
def hourly_predictions(
    context: dg.AssetExecutionContext,
    store: ObjectStoreResource,
    grid_join_features: dict[str, pl.LazyFrame],
    observations_clean: pl.LazyFrame,
) -> dict[str, pl.DataFrame]:
    obj_store = store.get_store()
    champions = hourly_champions(obj_store)
    pks = list(context.partition_keys)
    if not champions:
        raise ModelError("no hourly champion to predict with: train with training_table hourly: true and "
                         "trained_models hourly: true, then materialise champion_model")
    loaded = [(c, *load_bundle(obj_store, c["model_prefix"])) for c in champions]
    obs = _run_observations(observations_clean, pks, loaded)
    out: dict[str, pl.DataFrame] = {}
    files = []
    failures: dict[str, str] = {}  # champion -> why it could not score; the others still do
    for pk in pks:
        frames = []
        for champ, model, meta in loaded:
            if champ["model_prefix"] in failures:
                continue
            rows, _features = hourly_feature_rows(grid_join_features[pk], obs, meta["target"], lags_of(meta["features"]) or (),
                                                  locations=meta.get("stations") or [meta["location"]])
            try:
                check_scoring_columns(meta, rows.columns)
            except ModelError as exc:
                failures[champ["model_prefix"]] = f"{pk}: {exc}"
                context.log.error(f"hourly_predictions: {champ['model_prefix']}: {failures[champ['model_prefix']]}")
                continue
            if rows.height == 0:
                context.log.warning(f"{pk}: none of {meta.get('stations')} is in grid_join_features; nothing to predict "
                                    f"for {champ['model_prefix']}")
                continue
            table = _scored(rows, model, meta, champ)
            files.append(_write_predictions(obj_store, predictions_key(champ["model_prefix"], pk, pk), table))
            frames.append(pl.from_arrow(table))
        out[pk] = pl.concat(frames) if frames else pl.DataFrame(schema=HOURLY_PREDICTIONS_SCHEMA)
    if failures:
        # The other champions' files are written; this run fails so the mismatch is seen and
        # these hours are predicted again once the champion or the features are fixed.
        raise dg.Failure(
            description="; ".join(f"{prefix}: {why}" for prefix, why in failures.items())
            + f" ({len(files)} prediction file(s) of the other champions written)",
            metadata={"failed_champions": dg.MetadataValue.json(failures), "prediction_files_written": len(files)},
        )
    context.add_output_metadata({
        "champions": dg.MetadataValue.json([c["model_prefix"] for c in champions]),
        "prediction_files": len(files),
        "first_file": dg.MetadataValue.path(files[0]) if files else "",
    })
    return out


def sweep_run_configs(base: dict[str, Any], grid: dict[str, list[Any]], sweep_id: str,
                      parallel: int = 1, cpus: Optional[int] = None) -> list[dict]:
    """One trained_models run_config per point of the grid.

    ``parallel``: how many of these runs will execute side by side. Each run then gets
    ``cpus // parallel`` threads (at least 1), so k parallel runs do not oversubscribe the
    machine (two runs with all threads each on 2 cores are slower than one after the other).
    A ``n_jobs`` already in ``base`` is kept.
    """
    if parallel < 1:
        raise ModelError(f"parallel must be at least 1; got {parallel}")
    threads = max(1, (cpus or available_cpus()) // parallel)
    keys = sorted(grid)
    configs = []
    for values in itertools.product(*(grid[k] for k in keys)):
        hp = {**base.get("hyperparameters", {}), **dict(zip(keys, values))}
        cfg = {"n_jobs": threads, **base, "hyperparameters": hp, "sweep_id": sweep_id}
        configs.append({"ops": {"trained_models": {"config": cfg}}})
    return configs


assets = [trained_models, champion_model, predictions, hourly_predictions]
