"""Model specs as dynamic partitions: ``model_spec_sensor`` registers each valid
``raw/model_specs/<spec_id>.yaml`` as a ``model_specs`` partition and runs ``retrain_job`` for it
(table, models, champion, predictions of that spec); a file that cannot be a spec goes to
``quarantine/`` with the reason (lib/models/specs.py says what is wrong and the number needed).
``register_spec_files`` does the same without runs, for the demo and `make land`."""

from __future__ import annotations

import dagster as dg

from snoiq_assets.defs.automation.landing import landing_sensor_status, landing_tick, no_new_files_reason
from snoiq_assets.defs.partitions import model_spec_partitions
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.landing import run_key_for
from snoiq_assets.lib.models.specs import (
    SPEC_SUFFIXES, SPECS_PREFIX, ModelSpec, SpecError, check_claims, landed_specs, parse_spec, spec_id_for_key,
)
from snoiq_assets.lib.storage import ObjectStore
from snoiq_assets.settings import Settings

SENSOR = "model_spec_sensor"


def _claims(instance: dg.DagsterInstance, store: ObjectStore) -> dict[str, ModelSpec]:
    """The registered specs that are still valid: what a new spec may not collide with."""
    registered = set(instance.get_dynamic_partitions(model_spec_partitions.name))
    specs, _problems = landed_specs(store)
    return {sid: spec for sid, spec in specs.items() if sid in registered}


def checked_spec(store: ObjectStore, key: str, spec_id: str, registered: dict[str, ModelSpec]) -> ModelSpec:
    spec = parse_spec(store.get(key), spec_id, key)
    check_claims(spec, registered, key)
    return spec


def register_spec_files(instance: dg.DagsterInstance, store: ObjectStore) -> tuple[list[str], dict[str, str]]:
    """Register every valid landed spec; quarantine the others. Returns (new spec ids, {key: reason})."""
    registered = _claims(instance, store)
    new: list[str] = []
    refused: dict[str, str] = {}
    for info in sorted(store.list(SPECS_PREFIX), key=lambda i: i.key):
        if not info.key.endswith(SPEC_SUFFIXES):
            continue
        try:
            spec_id = spec_id_for_key(info.key)
            registered[spec_id] = checked_spec(store, info.key, spec_id, registered)
        except (SpecError, ValueError) as exc:
            refused[info.key] = str(exc)
            store.quarantine(info.key, str(exc), sensor=SENSOR)
            continue
        if spec_id not in instance.get_dynamic_partitions(model_spec_partitions.name):
            new.append(spec_id)
    if new:
        instance.add_dynamic_partitions(model_spec_partitions.name, new)
    return new, refused


def model_spec_sensor(settings: Settings, retrain_job: dg.JobDefinition) -> dg.SensorDefinition:
    def _tick(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
        object_store = store.get_store()
        # A spec whose table was built after its file last changed (`make demo`, a UI run) is done.
        found, unsafe, scan = landing_tick(context, object_store, SPECS_PREFIX, spec_id_for_key,
                                           accept=lambda key: key.endswith(SPEC_SUFFIXES),
                                           processed_by=dg.AssetKey("training_table"))
        registered = _claims(context.instance, object_store)
        requests, refused, new = [], [], []
        for key in unsafe:   # a file name that is no spec id: refused with the reason, never a partition
            reason = f"{key}: the file name is not a spec id (letters, digits, '_', '.', '-', ending .yaml)"
            object_store.quarantine(key, reason, sensor=SENSOR)
            refused.append(reason)
        for info, spec_id in found:
            try:
                registered[spec_id] = checked_spec(object_store, info.key, spec_id, registered)
            except SpecError as exc:
                context.log.error(str(exc))
                object_store.quarantine(info.key, str(exc), sensor=SENSOR)
                refused.append(f"{info.key}: {exc}")
                continue
            if spec_id not in context.instance.get_dynamic_partitions(model_spec_partitions.name):
                new.append(spec_id)
            requests.append(dg.RunRequest(run_key=run_key_for(info), partition_key=spec_id,
                                          tags={"snoiq/kind": "training", "snoiq/spec": spec_id}))
        if not requests:
            reason = no_new_files_reason(scan.listed, unsafe)
            if refused:
                reason = f"quarantined {len(refused)} spec file(s): " + " | ".join(refused)[:1500]
            return dg.SensorResult(skip_reason=reason, cursor=scan.cursor.to_json())
        return dg.SensorResult(
            run_requests=requests, cursor=scan.cursor.to_json(),
            dynamic_partitions_requests=[model_spec_partitions.build_add_request(new)] if new else [])

    return dg.sensor(name=SENSOR, job=retrain_job, minimum_interval_seconds=30,
                     default_status=landing_sensor_status(settings),
                     description="A model spec in `raw/model_specs/<spec_id>.yaml` becomes a `model_specs` partition and "
                                 "trains (table, models, champion, predictions); an invalid one is quarantined with the "
                                 "reason.")(_tick)

