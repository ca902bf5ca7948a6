"""Retraining when new data lands: training_table -> trained_models -> champion_model -> predictions.

Why a sensor and not declarative automation (AutomationCondition): the rule has three parts —
new upstream data, at most one retraining per interval, never while one is running — and the
interval is a debounce across *several* upstream assets and partitions (every station file,
every outcome, every hourly feature partition). A sensor states that in a few readable lines and
launches the whole chain as one run, so the champion is chosen after all three model types
have been retrained on the same table. Eager conditions would instead re-run the chain once per
landed partition (hundreds of runs during a backfill) and need a custom condition to debounce.

The run configuration (target, locations, resolution, hyperparameters) comes from the YAML file
named by ``SNOIQ_RETRAIN_CONFIG``; without it, the bundled demo configuration is used.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import yaml

from snoiq_assets.defs.partitions import MODEL_TYPES, range_tags

RETRAIN_ASSETS = ["training_table", "trained_models", "champion_model", "predictions"]
# New materialisations of these start a retraining (debounced).
TRIGGER_ASSETS = ["observations_clean", "outcome_of_interest", "grid_join_features"]
TRAINING_TAGS = {"snoiq/kind": "training"}
RANGE_TAGS = range_tags(MODEL_TYPES[0], MODEL_TYPES[-1])

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    tags=TRAINING_TAGS,
    description="Rebuild the training table, retrain every model type, pick the champion, predict.",
)


def min_interval() -> dt.timedelta:
    """At most one retraining per this interval (``SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES``, default 360)."""
    return dt.timedelta(minutes=float(os.environ.get("SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES", "360")))


def retrain_run_config() -> dict:
    path = os.environ.get("SNOIQ_RETRAIN_CONFIG")
    if path:
        with open(Path(path)) as fh:
            config = yaml.safe_load(fh) or {}
        if not isinstance(config, dict) or "ops" not in config:
            raise dg.DagsterInvalidConfigError(
                f"SNOIQ_RETRAIN_CONFIG={path} must hold a run config with an 'ops' mapping", [], config)
        return config
    from snoiq_assets.defs.models.demo import demo_run_config

    return demo_run_config("all")


def retrain_request(run_key: str | None = None) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, run_config=retrain_run_config(), tags={**TRAINING_TAGS, **RANGE_TAGS})


def _training_in_progress(instance: dg.DagsterInstance) -> bool:
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=retrain_job.name, statuses=[
            dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
            dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
        ]),
        limit=1,
    )
    return bool(runs)


def _latest_storage_ids(instance: dg.DagsterInstance) -> dict[str, int]:
    latest = {}
    for name in TRIGGER_ASSETS:
        records = instance.fetch_materializations(dg.AssetKey(name), limit=1).records
        latest[name] = records[0].storage_id if records else 0
    return latest


@dg.sensor(
    name="retraining_sensor",
    job=retrain_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Retrain, promote and predict once new clean observations, outcomes or features exist; "
                "at most once per SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES and never while a retraining runs.",
)
def retraining_sensor(context: dg.SensorEvaluationContext):
    state = json.loads(context.cursor) if context.cursor else {"seen": {}, "last_request": None}
    latest = _latest_storage_ids(context.instance)
    # Data a training table was already built from (by this sensor, `make demo`, a UI or CI
    # run) is not new: switching the sensor on after the demo does not retrain on the demo's data.
    table = context.instance.fetch_materializations(dg.AssetKey("training_table"), limit=1).records
    trained_on = table[0].storage_id if table else 0
    new = [name for name, sid in latest.items() if sid > max(state["seen"].get(name, 0), trained_on)]
    if not new:
        return dg.SkipReason("no new observations, outcomes or features since the last training table")
    if _training_in_progress(context.instance):
        return dg.SkipReason(f"new data in {', '.join(new)}, but a retraining is running; waiting for it")
    now = dt.datetime.now(dt.timezone.utc)
    last = dt.datetime.fromisoformat(state["last_request"]) if state.get("last_request") else None
    if last is not None and now - last < min_interval():
        wait = min_interval() - (now - last)
        return dg.SkipReason(f"new data in {', '.join(new)}; next retraining allowed in {wait}")
    cursor = json.dumps({"seen": latest, "last_request": now.isoformat()})
    return dg.SensorResult(
        run_requests=[retrain_request(run_key=f"retrain-{now.isoformat()}")],
        cursor=cursor,
    )


@dg.schedule(
    name="weekly_retraining",
    job=retrain_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays 03:00 UTC: retrain every model type even without new data (drift, new code).",
)
def weekly_retraining(context: dg.ScheduleEvaluationContext):
    return retrain_request(run_key=f"weekly-{context.scheduled_execution_time:%Y-%m-%d}")
