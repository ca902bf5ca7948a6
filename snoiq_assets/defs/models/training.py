"""``trained_models`` (one partition per model spec; every model type of the spec in its run):
train, score against the baselines, log to the spec's MLflow experiment, save to the model store
and record a row in the experiments table. The logic is in lib/models (specs, evaluate, train,
runs, store, experiments); this module wires it.
"""

import datetime as dt
import json
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from snoiq_assets.defs.failures import StoreGoodThenFail, partial_failure
from snoiq_assets.defs.metadata import rounded
from snoiq_assets.defs.models.resources import MlflowResource
from snoiq_assets.defs.partitions import model_spec_partitions
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.failures import PartialFailures
from snoiq_assets.lib.features.training import info_from_schema_metadata
from snoiq_assets.lib.models import experiments as X
from snoiq_assets.lib.models import leads, mlflow_conventions, plots
from snoiq_assets.lib.models.evaluate import train_and_evaluate
from snoiq_assets.lib.models.runs import resolve_location, run_spec, typed_params
from snoiq_assets.lib.models.snapshots import mlflow_dataset, write_snapshot
from snoiq_assets.lib.models.specs import ModelSpec, read_spec
from snoiq_assets.lib.models.splits import MIN_TEST_ROWS, MIN_TRAIN_ROWS
from snoiq_assets.lib.models.store import delete_bundle, new_run_timestamp, save_bundle
from snoiq_assets.lib.models.train import MODEL_FILES, check_model_type, resolve_threads, save_native
from snoiq_assets.lib.parquet import StoredParquet
from snoiq_assets.lib.storage import ObjectStore

GROUP = "models"
TRAINING_TABLE = dg.AssetKey("training_table")


class TrainModelConfig(dg.Config):
    """One model type's training options: the spec's (``ModelSpec.train_config``) with a run's
    ``TrainRunConfig`` over them. The experiments row's ``params`` record it whole."""
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
    # Forecast (hourly) tables: the lead hours to train and score on (default: every lead of the
    # table), and "raw_forecast" to fit the NWP's error rather than the target itself.
    leads: Optional[list[int]] = None
    residual_of: Optional[str] = None
    # What a git tag used to carry: a short tag (letters, digits, '_', '.', '-') and free text,
    # both in the experiments row (a sweep file's tag/description reach every run of it).
    tag: Optional[str] = None
    description: Optional[str] = None

    def stored_resolution_days(self) -> int:
        """What rows and metadata record: 0 for an hourly model, as the hourly table does."""
        return 0 if self.hourly else self.resolution_days


class TrainRunConfig(dg.Config):
    """What one run of a spec may choose; everything else is the spec file's."""
    model_types: Optional[list[str]] = None  # default: the spec's
    hyperparameters: dict[str, Any] = {}  # over the spec's, for every model type of the run
    cv_folds: Optional[int] = None
    seed: int = 0
    n_jobs: int = -1
    sweep_id: Optional[str] = None
    tag: Optional[str] = None
    description: Optional[str] = None


def model_config(spec: ModelSpec, run: TrainRunConfig, model_type: str) -> TrainModelConfig:
    cfg = spec.train_config(model_type)
    cfg["hyperparameters"] = {**cfg["hyperparameters"], **run.hyperparameters}
    if run.cv_folds is not None:
        cfg["cv_folds"] = run.cv_folds
    return TrainModelConfig(**cfg, seed=run.seed, n_jobs=run.n_jobs, sweep_id=run.sweep_id, tag=run.tag,
                            description=run.description)


def _data_version(context: dg.AssetExecutionContext, key: dg.AssetKey) -> Optional[str]:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return (event.asset_materialization.tags or {}).get("dagster/data_version")


TRAINED_SCHEMA = {
    "spec": pl.Utf8, "run_id": pl.Utf8, "model_type": pl.Utf8, "location": pl.Utf8, "target": pl.Utf8, "resolution_days": pl.Int64,
    "run_timestamp": pl.Utf8, "model_prefix": pl.Utf8, "mlflow_run_id": pl.Utf8, "test_start": pl.Utf8,
    "test_end": pl.Utf8, "rmse": pl.Float64, "mae": pl.Float64, "r2": pl.Float64, "bias": pl.Float64,
    "skill_persistence": pl.Float64, "skill_climatology": pl.Float64, "metrics_json": pl.Utf8,
}


@dataclass
class _Run:
    """Everything one model type's training in this Dagster run shares."""

    context: dg.AssetExecutionContext
    spec: ModelSpec
    run_config: TrainRunConfig
    object_store: ObjectStore
    mlflow: MlflowResource
    training_table: pl.DataFrame
    info: dict
    location: str
    stations: list[str]
    data_versions: dict[str, Any]
    git: str
    skill: dict = None  # model type -> per-lead skill rows (forecast tables), for DuckDB skill_by_lead
    snapshots: list = field(default_factory=list)  # (rows, features, Snapshot) written by this run

    def snapshot_of(self, rows: pl.DataFrame, features: list[str]):
        """The training-data snapshot of ``rows``: serialised and stored once per run when model
        types train on the same rows, as a spec's types do (0.3-0.4 s each on the road-weather
        table). Other rows get their own."""
        for seen_rows, seen_features, snapshot in self.snapshots:
            if seen_features == features and seen_rows.equals(rows):
                return snapshot
        snapshot = write_snapshot(self.object_store, rows, features, self.info)
        self.snapshots.append((rows, list(features), snapshot))
        return snapshot


@dg.asset(
    group_name=GROUP,
    partitions_def=model_spec_partitions,
    ins={"training_table": dg.AssetIn(key=TRAINING_TABLE)},
    description="Per model spec, one model per type (the spec's model_types), trained before the split date and "
                "scored after it against persistence, climatology and (forecast specs) the raw NWP forecast per lead. "
                "Each type gets its own run in the spec's MLflow experiment and its own experiments row; one type "
                "failing does not stop the others. One row per model type.",
    kinds={"xgboost", "lightgbm", "scikitlearn", "mlflow"},
)
def trained_models(
    context: dg.AssetExecutionContext,
    config: TrainRunConfig,
    store: ObjectStoreResource,
    mlflow: MlflowResource,
    duckdb: DuckDBResource,
    training_table: StoredParquet,
) -> Any:  # one row per model type, or StoreGoodThenFail when some types failed
    object_store = store.get_store()
    spec_id = context.partition_key
    spec = read_spec(object_store, spec_id)
    model_types = [check_model_type(mt) for mt in (config.model_types or spec.model_types)]
    git = X.git_commit()
    run_ids: list[str] = []
    frames: dict[str, pl.DataFrame] = {}
    failures = PartialFailures("trained_models", model_types, what="model_types")
    shared: Optional[_Run] = None
    shared_error: Optional[BaseException] = None
    try:
        info = info_from_schema_metadata(training_table.metadata(spec.spec_id))
        location, stations = resolve_location(spec.store_location, spec.locations, info)
        data_versions = {
            "training_table": _data_version(context, TRAINING_TABLE),
            "table_target": info.get("target"), "table_resolution_days": info.get("resolution_days"),
            "feature_set": info.get("feature_set"), "period_start_min": info.get("period_start_min"),
            "period_start_max": info.get("period_start_max"), "grid_partitions": info.get("grid_partitions"),
            "stations": stations,
        }
        shared = _Run(context, spec, config, object_store, mlflow, training_table.read(spec.spec_id), info, location, stations, data_versions, git, {})
    except Exception as exc:  # noqa: BLE001 - recorded per model type below, then raised
        shared_error = exc
    try:
        for model_type in model_types:
            run_id = uuid.uuid4().hex
            run_ids.append(run_id)
            try:
                if shared_error is not None:
                    # Nothing could start (e.g. no build info, no location): one failed row per type.
                    X.record(object_store, X.make_row(
                        run_id=run_id, started_at=dt.datetime.now(dt.timezone.utc), status="failed",
                        error=f"{type(shared_error).__name__}: {shared_error}"[:2000], model_type=model_type,
                        location=None, target=spec.target, resolution_days=0 if spec.hourly else spec.resolution_days,
                        params={**config.model_dump(), "model_type": model_type}, git=git,
                        sweep_id=config.sweep_id, dagster_run_id=context.run_id, tag=config.tag,
                        description=config.description, spec_id=spec_id,
                    ))
                    raise shared_error
                frames[model_type] = _train_one(shared, model_type, run_id, model_config(spec, config, model_type))
            except Exception as exc:  # noqa: BLE001 - recorded; the other types still train
                failures.add(model_type, f"{type(exc).__name__}: {exc}"[:2000])
                context.log.error(f"trained_models[{model_type}] failed: {failures.failed[model_type]['error']}")
    finally:
        # One incremental refresh for the whole run (also when interrupted): this run's rows plus
        # any an earlier, locked-out refresh missed.
        rows = X.refresh_table(object_store, duckdb.database, run_ids=run_ids)
        if rows is None:
            context.log.warning("the DuckDB file was locked; this run's rows are in experiments/ and the next refresh adds them")
        if shared is not None and shared.skill:
            if not leads.write_skill_table(duckdb.database, pl.concat(list(shared.skill.values()))):
                context.log.warning("the DuckDB file was locked; skill_by_lead keeps its earlier rows "
                                    "(this run's are in the MLflow runs' skill_by_lead.csv)")
    if failures:
        # A step fails or succeeds as a whole, but the types that trained are real models: the
        # IO manager stores their partitions and reports them as materialised, so the UI,
        # champion_model and the next run see them; only the failed types stay missing.
        if not failures.good:
            raise partial_failure(failures, "nothing is stored")
        failure = partial_failure(failures, f"trained, recorded and stored: {', '.join(sorted(failures.good))}")
        return StoreGoodThenFail({spec_id: pl.concat([frames[mt] for mt in model_types if mt in failures.good])}, failure)
    _summary_metadata(context, frames, mlflow.experiment_url(mlflow.experiment_id(mlflow_conventions.experiment_name(spec_id))))
    return pl.concat([frames[mt] for mt in model_types])


def _summary_metadata(context: dg.AssetExecutionContext, frames: dict[str, pl.DataFrame], experiment: str) -> None:
    """The spec's models side by side on its partition's page (each type's details are prefixed by it)."""
    rows = pl.concat(list(frames.values())).sort("rmse")
    table = "| model type | RMSE | MAE | bias | skill vs persistence | skill vs climatology |\n|---|---|---|---|---|---|\n"
    table += "\n".join(f"| {r['model_type']} | {r['rmse']:.4f} | {r['mae']:.4f} | {r['bias']:.4f} | "
                       f"{r['skill_persistence']:.4f} | {r['skill_climatology']:.4f} |" for r in rows.iter_rows(named=True))
    context.add_asset_metadata({"models": dg.MetadataValue.md(table), "best_model_type": rows["model_type"][0],
                                "mlflow_experiment": dg.MetadataValue.url(experiment),
                                "dagster/row_count": rows.height})


def _train_one(r: _Run, model_type: str, run_id: str, config: TrainModelConfig) -> pl.DataFrame:
    """Train, log and store one model type and record its experiments row (success or failed).
    On failure nothing is left in the model store and the MLflow run is marked FAILED."""
    object_store, spec_id = r.object_store, r.spec.spec_id
    started = dt.datetime.now(dt.timezone.utc)
    run_ts = new_run_timestamp(started)
    params = {**config.model_dump(), "model_type": model_type}
    client, mlflow_run_id, prefix, snapshot = None, None, None, None
    try:
        X.check_tag(config.tag, config.description)
        # The MLflow run is opened before the fit, so its duration is the training's.
        client = r.mlflow.client()
        experiment_id = r.mlflow.experiment_id(mlflow_conventions.experiment_name(spec_id))
        run = client.create_run(experiment_id, start_time=int(started.timestamp() * 1000),
                                run_name=f"{r.location}-{model_type}-{run_ts}", tags={
            "model_type": model_type, "location": r.location, "target": config.target, "git_commit": r.git,
            "spec": spec_id,
            "dagster_run_id": r.context.run_id, "snoiq_run_id": run_id,
            **({"sweep_id": config.sweep_id} if config.sweep_id else {}), **({"tag": config.tag} if config.tag else {}),
            **({"mlflow.note.content": config.description} if config.description else {}),
        })
        mlflow_run_id = run.info.run_id
        result = train_and_evaluate(r.training_table, r.info, run_spec(params, model_type, r.stations))
        metrics = result.metrics
        # The exact rows (content-addressed, shared with runs that used the same ones).
        snapshot = r.snapshot_of(result.data, result.features)
        client.set_tag(mlflow_run_id, "snapshot_sha256", snapshot.sha256)
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
                                 snapshot, object_store.uri(snapshot.key))
        client.log_inputs(mlflow_run_id, datasets=[DatasetInput(
            dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training+test")])])
        meta = {
            "location": r.location, "stations": r.stations, "run_timestamp": run_ts, "target": config.target,
            "resolution": "hourly" if config.hourly else "daily",
            "resolution_days": config.stored_resolution_days(), "training_window": result.window, "metrics": metrics,
            "data_versions": r.data_versions, "mlflow_run_id": mlflow_run_id, "params": typed_params(config.hyperparameters),
            "feature_set": config.feature_set, "git_commit": r.git, "run_id": run_id, "snapshot": snapshot.describe(),
            "spec_key": spec_id,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), "residual_of": config.residual_of,
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
            if result.by_lead is not None:
                result.by_lead.write_csv(t / "skill_by_lead.csv")
                plots.rmse_by_lead_png(result.by_lead, t / "rmse_by_lead.png", unit="degC" if config.target.endswith("_c") else "",
                                       title=f"{model_type} {r.location}: {config.target} RMSE by lead")
            # The model is serialised once: the same file goes to MLflow (model/) and the model store.
            save_native(result.model, t / "model")
            client.log_artifacts(mlflow_run_id, str(t))
            prefix = save_bundle(object_store, result.model, meta, model_file=t / "model" / MODEL_FILES[model_type])
        X.record(object_store, X.make_row(
            run_id=run_id, started_at=started, status="success", model_type=model_type, location=r.location,
            target=config.target, resolution_days=config.stored_resolution_days(), params=params, metrics=metrics,
            data_versions=r.data_versions, git=r.git, sweep_id=config.sweep_id, dagster_run_id=r.context.run_id,
            mlflow_run_id=mlflow_run_id, model_uri=object_store.uri(prefix), tag=config.tag,
            description=config.description, snapshot=snapshot.describe(), model_prefix=prefix, spec_id=spec_id,
        ))
        client.set_tag(mlflow_run_id, "model_prefix", prefix)
        client.set_terminated(mlflow_run_id, "FINISHED")
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"[:2000]
        if prefix is not None:
            delete_bundle(object_store, prefix)
        if client is not None and mlflow_run_id is not None:
            try:
                client.set_tag(mlflow_run_id, "error", message[:5000])
                client.set_terminated(mlflow_run_id, "FAILED")
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        X.record(object_store, X.make_row(
            run_id=run_id, started_at=started, status="failed", error=message, model_type=model_type,
            location=r.location, target=config.target, resolution_days=config.stored_resolution_days(), params=params,
            git=r.git, sweep_id=config.sweep_id, dagster_run_id=r.context.run_id, mlflow_run_id=mlflow_run_id,
            data_versions=r.data_versions, tag=config.tag, description=config.description,
            snapshot=snapshot.describe() if snapshot else None, spec_id=spec_id,
        ))
        raise
    if result.by_lead is not None:
        r.skill[model_type] = leads.skill_table_rows(result.by_lead, spec_id)
    details = {
        "model_uri": dg.MetadataValue.path(object_store.uri(prefix)), "mlflow_run_id": mlflow_run_id,
        "mlflow_run": dg.MetadataValue.url(r.mlflow.run_url(experiment_id, mlflow_run_id)),
        **{m: float(metrics[m]) for m in ("rmse", "mae", "r2", "bias", "skill_persistence",
                                          "skill_climatology", "persistence_rmse", "climatology_rmse")},
        "cv_rmse_mean": float(metrics["cv_rmse_mean"]) if metrics["cv_rmse_mean"] is not None else float("nan"),
        "train_window": f"{result.window['train_start']}..{result.window['train_end']}",
        "test_window": f"{result.window['test_start']}..{result.window['test_end']}",
        "n_jobs": resolve_threads(config.n_jobs),
        "snapshot": dg.MetadataValue.path(object_store.uri(snapshot.key)), "snapshot_rows": snapshot.rows,
        "snapshot_bytes": snapshot.bytes, "reproduce": f"make reproduce RUN={run_id}",
        **({"rmse_by_lead": dg.MetadataValue.md(leads.markdown_table(leads.rmse_table(result.by_lead))),
            "beats_baselines_every_lead": bool(metrics["beats_baselines_every_lead"]),
            "baseline_failures": dg.MetadataValue.json(metrics["baseline_failures"])}
           if result.by_lead is not None else {}),
    }
    r.context.add_asset_metadata(rounded({f"{model_type}/{k}": v for k, v in details.items()}))
    return pl.DataFrame([{
        "spec": spec_id, "run_id": run_id, "model_type": model_type, "location": r.location, "target": config.target,
        "resolution_days": config.stored_resolution_days(), "run_timestamp": run_ts, "model_prefix": prefix,
        "mlflow_run_id": mlflow_run_id, "test_start": result.window["test_start"], "test_end": result.window["test_end"],
        **{m: metrics[m] for m in ("rmse", "mae", "r2", "bias", "skill_persistence", "skill_climatology")},
        "metrics_json": json.dumps(metrics, default=str),
    }], schema=TRAINED_SCHEMA)


