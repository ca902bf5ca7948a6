"""Model automation: retraining when new data lands, a sweep file's runs, and hourly predictions
for each new feature partition.

``retraining_sensor``: new clean observations, outcomes or features -> ``retrain_job``, at most
once per ``SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES`` and never while one runs. Why a sensor and not declarative automation (AutomationCondition): the rule has three parts —
new upstream data, at most one retraining per interval, never while one is running — and the
interval is a debounce across *several* upstream assets and partitions (every station file,
every outcome, every hourly feature partition). A sensor states that in a few readable lines and
launches the whole chain as one run, so the champion is chosen after all three model types
have been retrained on the same table. Eager conditions would instead re-run the chain once per
landed partition (hundreds of runs during a backfill) and need a custom condition to debounce.

``sweep_sensor``: a sweep file ``raw/sweeps/<sweep_id>.yaml`` -> one ``trained_models`` run per
grid point (and model type) tagged ``snoiq/kind=sweep`` and ``snoiq/sweep_id``; the instance's
run queue runs them side by side (``dagster.local.yaml``: two at a time; the file's ``parallel``
divides the CPUs between them). Every run lands its row in the experiments table, so
``select * from experiments where sweep_id = '<id>'`` is the sweep's result. A file that cannot
be run (lib/models/sweeps.py says why) is moved to ``quarantine/`` with a ``.reason.json``; a
rewritten file is a new sweep (new run keys).

``feature_predictions_sensor``: reads grid_join_features materialisations from the event log
after its cursor (a storage id), so a single-run backfill of 48 hours is seen as 48 partitions
and requested as one single-run range, not 48 runs. Started without a cursor it begins at the
newest materialisation: history is predicted by a backfill from the UI, not by switching a
sensor on. With no hourly champion it only moves its cursor (and says so).
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pydantic

from snoiq_assets.defs.automation.landing import landing_tick, no_new_files_reason, settings_sensor
from snoiq_assets.defs.features.assets import grid_join_features
from snoiq_assets.defs.models.predictions import hourly_predictions
from snoiq_assets.defs.models.schedules import retrain_job, retrain_request
from snoiq_assets.defs.models.training import TrainModelConfig, trained_models
from snoiq_assets.defs.partitions import range_tags
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.defs.stations.assets import observations_clean, outcome_of_interest
from snoiq_assets.lib.hours import contiguous_ranges
from snoiq_assets.lib.landing import run_key_for
from snoiq_assets.lib.models.store import hourly_champions
from snoiq_assets.lib.models.sweeps import (
    SWEEP_SUFFIXES, SWEEPS_PREFIX, SweepError, SweepSpec, parse_sweep, sweep_id_for_key, sweep_run_configs,
)
from snoiq_assets.settings import Settings

# New materialisations of these start a retraining (debounced).
TRIGGER_ASSETS = [observations_clean.keys_by_output_name["observations_clean"],
                  outcome_of_interest.keys_by_output_name["outcome_of_interest"], grid_join_features.key]
BATCH = 5000  # materialisation records read per tick; the rest is read on the next tick


# ----- retraining ---------------------------------------------------------------------------
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
    for key in TRIGGER_ASSETS:
        records = instance.fetch_materializations(key, limit=1).records
        latest[key.to_user_string()] = records[0].storage_id if records else 0
    return latest


def retraining_sensor(settings: Settings) -> dg.SensorDefinition:
    min_interval = dt.timedelta(minutes=settings.retrain_min_interval_minutes)

    @dg.sensor(
        name="retraining_sensor",
        job=retrain_job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Retrain, promote and predict once new clean observations, outcomes or features exist; "
                    "at most once per SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES and never while a retraining runs.",
    )
    def _retraining(context: dg.SensorEvaluationContext):
        return _retraining_tick(context, settings, min_interval)

    return _retraining


def _retraining_tick(context: dg.SensorEvaluationContext, settings: Settings, min_interval: dt.timedelta):
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
    if last is not None and now - last < min_interval:
        wait = min_interval - (now - last)
        return dg.SkipReason(f"new data in {', '.join(new)}; next retraining allowed in {wait}")
    cursor = json.dumps({"seen": latest, "last_request": now.isoformat()})
    return dg.SensorResult(
        run_requests=[retrain_request(settings, run_key=f"retrain-{now.isoformat()}")],
        cursor=cursor,
    )


# ----- sweeps -------------------------------------------------------------------------------
def checked_sweep(text: bytes, sweep_id: str, where: str) -> SweepSpec:
    spec = parse_sweep(text, sweep_id, where, config_fields=set(TrainModelConfig.model_fields))
    # Every run the sweep would start must be a valid trained_models config, checked here at the
    # sensor: a file that cannot run is quarantined instead of queueing runs that fail later.
    for cfg in sweep_run_configs(spec.base, spec.grid, spec.sweep_id, parallel=spec.parallel):
        try:
            TrainModelConfig(**cfg["ops"]["trained_models"]["config"])
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise SweepError(f"{where}: base is not a valid trained_models config: {problems}") from None
    return spec


def sweep_requests(spec: SweepSpec, run_key_prefix: str) -> list[dg.RunRequest]:
    requests = []
    for model_type in spec.model_types:
        for i, cfg in enumerate(sweep_run_configs(spec.base, spec.grid, spec.sweep_id, parallel=spec.parallel)):
            requests.append(dg.RunRequest(
                run_key=f"{run_key_prefix}#{model_type}#{i}", partition_key=model_type, run_config=cfg,
                tags={"snoiq/kind": "sweep", "snoiq/sweep_id": spec.sweep_id},
            ))
    return requests


def sweep_sensor(settings: Settings) -> dg.SensorDefinition:
    return settings_sensor(settings, _sweep_tick, name="sweep_sensor", interval=30,
                           selection=dg.AssetSelection.assets(trained_models),
                           description="A sweep file in `raw/sweeps/<sweep_id>.yaml` starts one trained_models run per "
                                       "grid point, queued to run side by side; bad files go to quarantine with the reason.")


def _sweep_tick(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
    object_store = store.get_store()
    found, unsafe, scan = landing_tick(context, object_store, SWEEPS_PREFIX, sweep_id_for_key,
                                        accept=lambda key: key.endswith(SWEEP_SUFFIXES))
    requests: list[dg.RunRequest] = []
    rejected: list[str] = []
    for info, sweep_id in found:
        try:
            spec = checked_sweep(object_store.get(info.key), sweep_id, info.key)
        except SweepError as exc:
            context.log.error(str(exc))
            object_store.quarantine(info.key, str(exc), sensor="sweep_sensor")
            rejected.append(info.key)
            continue
        context.log.info(f"sweep {sweep_id}: {spec.runs} runs, {spec.parallel} side by side")
        requests.extend(sweep_requests(spec, run_key_for(info)))
    if not requests:
        reason = no_new_files_reason(scan.listed, unsafe)
        if rejected:
            reason = f"quarantined {len(rejected)} sweep file(s) that cannot run: {', '.join(rejected)}"
        return dg.SensorResult(skip_reason=reason, cursor=scan.cursor.to_json())
    return dg.SensorResult(run_requests=requests, cursor=scan.cursor.to_json())


# ----- hourly predictions -------------------------------------------------------------------
def feature_predictions_sensor(settings: Settings) -> dg.SensorDefinition:
    return settings_sensor(settings, _feature_predictions_tick, name="feature_predictions_sensor",
                           selection=dg.AssetSelection.assets(hourly_predictions),
                           description="New grid_join_features partitions -> hourly_predictions for the same hours "
                                       "(one run per contiguous range), when an hourly champion exists.")


def _feature_predictions_tick(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
    instance = context.instance
    if context.cursor is None:
        latest = instance.fetch_materializations(grid_join_features.key, limit=1)
        return dg.SensorResult(skip_reason="started: predicting grid_join_features partitions materialised from now on "
                                           "(backfill hourly_predictions for earlier hours)", cursor=latest.cursor or "")
    result = instance.fetch_materializations(grid_join_features.key, limit=BATCH, cursor=context.cursor or None, ascending=True)
    cursor = result.cursor or context.cursor
    partitions = sorted({r.partition_key for r in result.records if r.partition_key})
    if not partitions:
        return dg.SensorResult(skip_reason="no new grid_join_features partitions", cursor=cursor)
    if not hourly_champions(store.get_store()):
        return dg.SensorResult(skip_reason=f"{len(partitions)} new grid_join_features partition(s), but no hourly "
                                           "champion to predict with yet", cursor=cursor)
    requests = []
    for first, last in contiguous_ranges(partitions):
        run_key = f"predict-{first}-{last}-{cursor}"
        if first == last:
            requests.append(dg.RunRequest(partition_key=first, run_key=run_key))
        else:
            requests.append(dg.RunRequest(run_key=run_key, tags=range_tags(first, last)))
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def model_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    return [retraining_sensor(settings), sweep_sensor(settings), feature_predictions_sensor(settings)]
