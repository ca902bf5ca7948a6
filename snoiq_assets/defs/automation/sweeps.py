"""``sweep_sensor``: a sweep file landing in ``raw/sweeps/<sweep_id>.yaml`` starts its runs.

Each grid point (and model type) is one ``trained_models`` run tagged ``snoiq/kind=sweep`` and
``snoiq/sweep_id``; the instance's run queue runs them side by side (``dagster.local.yaml``:
two at a time; the file's ``parallel`` divides the CPUs between them). Every run lands its row
in the experiments table (one Parquet file per run; the DuckDB table is refreshed one writer at
a time), so ``select * from experiments where sweep_id = '<id>'`` is the sweep's result.

A file that cannot be run (YAML, keys, values: lib/models/sweeps.py says what) is moved to
``quarantine/`` with a ``.reason.json``; a rewritten file is a new sweep (new run keys).
"""

from __future__ import annotations

import dagster as dg
import pydantic

from snoiq_assets.defs.automation.sensors import default_sensor_status, landing_tick, no_new_files_reason
from snoiq_assets.defs.models.assets import TrainModelConfig, sweep_run_configs
from snoiq_assets.defs.resources import ObjectStoreResource
from snoiq_assets.lib.keys import UnsafeNameError, safe_identifier
from snoiq_assets.lib.landing import run_key_for
from snoiq_assets.lib.models.sweeps import SweepError, SweepSpec, parse_sweep

SWEEPS_PREFIX = "raw/sweeps/"
SWEEP_SUFFIXES = (".yaml", ".yml")


def sweep_id_for_key(key: str) -> str:
    """``raw/sweeps/depth-vs-rate.yaml`` -> ``depth-vs-rate`` (a safe identifier, or refused)."""
    name = key[len(SWEEPS_PREFIX):]
    if "/" in name or not name.endswith(SWEEP_SUFFIXES):
        raise UnsafeNameError(f"{key!r} is not raw/sweeps/<sweep_id>.yaml")
    return safe_identifier(name.rsplit(".", 1)[0], "sweep id")


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


@dg.sensor(
    name="sweep_sensor",
    asset_selection=dg.AssetSelection.assets("trained_models"),
    minimum_interval_seconds=30,
    default_status=default_sensor_status(),
    description="A sweep file in raw/sweeps/<sweep_id>.yaml starts one trained_models run per grid point, "
                "queued to run side by side; bad files go to quarantine with the reason.",
)
def sweep_sensor(context: dg.SensorEvaluationContext, store: ObjectStoreResource):
    obj_store = store.get_store()
    found, unsafe, scan = landing_tick(context, obj_store, SWEEPS_PREFIX, sweep_id_for_key,
                                        accept=lambda key: key.endswith(SWEEP_SUFFIXES))
    requests: list[dg.RunRequest] = []
    rejected: list[str] = []
    for info, sweep_id in found:
        try:
            spec = checked_sweep(obj_store.get(info.key), sweep_id, info.key)
        except SweepError as exc:
            context.log.error(str(exc))
            obj_store.quarantine(info.key, str(exc), sensor="sweep_sensor")
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
