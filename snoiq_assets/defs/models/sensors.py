"""Model automation: retraining when new data lands, a sweep file's runs, and hourly predictions
for each new feature partition.

``retraining_sensor``: new clean observations, outcomes or features -> ``retrain_job`` for exactly
the model specs they touch (lib/models/retraining.py), each at most once per its own minimum
interval (``min_retrain_interval_minutes``, default ``SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES``) and
never while that spec retrains; with no spec covering the data the tick says so. Why a sensor and not declarative automation (AutomationCondition): the rule has three parts —
new upstream data, at most one retraining per interval, never while one is running — and the
interval is a debounce per spec across *several* upstream assets and partitions (every station
file, every outcome, every hourly feature partition). A sensor states that in a few readable
lines and launches each spec's whole chain as one run, so its champion is chosen after all its
model types have been retrained on the same table. Eager conditions would instead re-run the chain once per
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
from snoiq_assets.defs.features.assets import grid_join_features, training_table
from snoiq_assets.defs.models.predictions import hourly_predictions
from snoiq_assets.defs.models.schedules import retrain_job, retrain_request
from snoiq_assets.defs.models.specs import model_spec_sensor
from snoiq_assets.defs.models.training import TrainRunConfig, trained_models
from snoiq_assets.defs.partitions import model_spec_partitions, range_tags
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.defs.stations.assets import observations_clean, outcome_of_interest
from snoiq_assets.lib.hours import contiguous_ranges
from snoiq_assets.lib.landing import run_key_for
from snoiq_assets.lib.models.retraining import NewData, describe, specs_touched
from snoiq_assets.lib.models.specs import SpecError, landed_specs, read_spec
from snoiq_assets.lib.models.store import hourly_champions
from snoiq_assets.lib.models.sweeps import (
    SWEEP_SUFFIXES, SWEEPS_PREFIX, SweepError, SweepSpec, parse_sweep, sweep_id_for_key, sweep_run_configs,
)
from snoiq_assets.settings import Settings

# New materialisations of these retrain the specs they touch (debounced per spec), and what
# their partition key names: a station, an outcome location, a forecast cycle.
TRIGGER_ASSETS = {observations_clean.keys_by_output_name["observations_clean"]: "observations",
                  outcome_of_interest.keys_by_output_name["outcome_of_interest"]: "outcomes",
                  grid_join_features.key: "forecasts"}
BATCH = 5000  # materialisation records read per tick; the rest is read on the next tick


# ----- retraining ---------------------------------------------------------------------------
def _in_progress(instance: dg.DagsterInstance) -> set[str]:
    """The specs a retraining run is queued or running for."""
    runs = instance.get_run_records(filters=dg.RunsFilter(job_name=retrain_job.name, statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED]), limit=100)
    return {r.dagster_run.tags.get("dagster/partition") for r in runs} - {None}


def _new_data(instance: dg.DagsterInstance, cursors: dict[str, str | None]) -> tuple[list[NewData], dict[str, str | None]]:
    """Materialisations of the trigger assets after each one's cursor (oldest first, BATCH at most)."""
    found, moved = [], {}
    for key, what in TRIGGER_ASSETS.items():
        name = key.to_user_string()
        result = instance.fetch_materializations(key, limit=BATCH, cursor=cursors.get(name) or None, ascending=True)
        moved[name] = result.cursor or cursors.get(name)
        found += [NewData(what, r.partition_key, r.storage_id) for r in result.records]
    return found, moved


def _last_table(instance: dg.DagsterInstance, spec_id: str) -> int:
    """Storage id of the spec's newest training table: data older than it is already in a model."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=training_table.key, asset_partitions=[spec_id]), limit=1).records
    return records[0].storage_id if records else 0


def retraining_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="retraining_sensor",
        job=retrain_job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="New clean observations, outcomes or features retrain exactly the model specs they touch (their "
                    "locations, target and leads), each at most once per its min_retrain_interval_minutes (default "
                    "SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES) and never while that spec retrains.",
    )
    def _retraining(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
        return _retraining_tick(context, settings, store.get_store())

    return _retraining


def _retraining_tick(context: dg.SensorEvaluationContext, settings: Settings, object_store):
    state = json.loads(context.cursor) if context.cursor else {}
    cursors, last = state.get("cursors", {}), state.get("last_request", {})
    pending = {k: set(v) for k, v in state.get("pending", {}).items()}   # spec -> why, held back by its interval
    data, moved = _new_data(context.instance, cursors)
    registered = set(context.instance.get_dynamic_partitions(model_spec_partitions.name))
    specs, problems = landed_specs(object_store)
    specs = {sid: spec for sid, spec in specs.items() if sid in registered}
    for problem in problems.values():
        context.log.warning(f"a landed spec is not valid and is not retrained: {problem}")
    touched = specs_touched(specs, data, {sid: _last_table(context.instance, sid) for sid in specs})
    for sid, why in touched.items():
        pending.setdefault(sid, set()).update(why)
    if not pending:
        covering = sorted(specs_touched(specs, data, {}))
        if not data:
            reason = "no new observations, outcomes or features"
        elif covering:   # e.g. after `make demo`: the specs were trained after this data arrived
            reason = f"new data ({describe(data)}) is already in the training tables of {', '.join(covering)}"
        else:
            reason = (f"new data ({describe(data)}), but no model spec covers it "
                      f"(registered: {', '.join(sorted(specs)) or 'none'})")
        return dg.SensorResult(skip_reason=reason, cursor=json.dumps({"cursors": moved, "last_request": last}))
    now = dt.datetime.now(dt.timezone.utc)
    running = _in_progress(context.instance)
    requests, waiting = [], []
    for sid in sorted(pending):
        if sid not in specs:   # removed or now invalid: nothing to retrain
            continue
        interval = dt.timedelta(minutes=specs[sid].min_retrain_interval_minutes
                                if specs[sid].min_retrain_interval_minutes is not None
                                else settings.retrain_min_interval_minutes)
        since = dt.datetime.fromisoformat(last[sid]) if sid in last else None
        if sid in running:
            waiting.append(f"{sid}: a retraining is running")
        elif since is not None and now - since < interval:
            waiting.append(f"{sid}: next retraining allowed in {interval - (now - since)}")
        else:
            why = ", ".join(sorted(pending[sid]))
            requests.append(retrain_request(sid, run_key=f"retrain-{sid}-{now.isoformat()}", why=why))
            last[sid] = now.isoformat()
    held = {sid: sorted(w) for sid, w in pending.items() if sid in specs and sid not in {r.partition_key for r in requests}}
    cursor = json.dumps({"cursors": moved, "last_request": last, "pending": held})
    if not requests:
        return dg.SensorResult(skip_reason="new data for " + "; ".join(waiting), cursor=cursor)
    for r in requests:
        context.log.info(f"retraining spec {r.partition_key}: {r.tags.get('snoiq/why')}")
    if waiting:
        context.log.info("waiting: " + "; ".join(waiting))
    return dg.SensorResult(run_requests=requests, cursor=cursor)


# ----- sweeps -------------------------------------------------------------------------------
def checked_sweep(text: bytes, sweep_id: str, where: str, object_store=None,
                  registered: set[str] | None = None) -> SweepSpec:
    spec = parse_sweep(text, sweep_id, where, config_fields=set(TrainRunConfig.model_fields) - {"model_types", "sweep_id"})
    if registered is not None and spec.spec_id not in registered:
        raise SweepError(f"{where}: model spec {spec.spec_id!r} is not registered; land raw/model_specs/{spec.spec_id}.yaml first")
    if object_store is not None:
        try:
            read_spec(object_store, spec.spec_id)
        except SpecError as exc:
            raise SweepError(f"{where}: {exc}") from None
    # Every run the sweep would start must be a valid trained_models config, checked here at the
    # sensor: a file that cannot run is quarantined instead of queueing runs that fail later.
    for cfg in sweep_run_configs(spec.base, spec.grid, spec.sweep_id, parallel=spec.parallel):
        try:
            TrainRunConfig(**cfg["ops"]["trained_models"]["config"])
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise SweepError(f"{where}: base is not a valid trained_models config: {problems}") from None
    return spec


def sweep_requests(spec: SweepSpec, run_key_prefix: str) -> list[dg.RunRequest]:
    requests = []
    for model_type in spec.model_types:
        for i, cfg in enumerate(sweep_run_configs(spec.base, spec.grid, spec.sweep_id, parallel=spec.parallel)):
            cfg["ops"]["trained_models"]["config"]["model_types"] = [model_type]
            requests.append(dg.RunRequest(
                run_key=f"{run_key_prefix}#{model_type}#{i}", partition_key=spec.spec_id, run_config=cfg,
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
            spec = checked_sweep(object_store.get(info.key), sweep_id, info.key, object_store,
                                 set(context.instance.get_dynamic_partitions(model_spec_partitions.name)))
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
    return [model_spec_sensor(settings, retrain_job), retraining_sensor(settings), sweep_sensor(settings),
            feature_predictions_sensor(settings)]
