"""The retraining job (one model spec: training table -> every model type -> champion ->
predictions, one run per spec partition) and ``weekly_retraining``: Mondays 03:00 UTC, every
registered spec, even without new data (drift, new code). Off by default. What to train is the
spec file's (raw/model_specs/<spec_id>.yaml), so no run configuration is needed."""

from __future__ import annotations

import dagster as dg

from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.predictions import predictions
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.defs.partitions import model_spec_partitions
from snoiq_assets.settings import Settings

TRAINING_TAGS = {"snoiq/kind": "training"}

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(training_table, trained_models, champion_model, predictions),
    partitions_def=model_spec_partitions,
    tags=TRAINING_TAGS,
    description="For one model spec: rebuild its training table, retrain its model types, pick its champion, predict.",
)


def retrain_request(spec_id: str, run_key: str | None = None, why: str = "") -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, partition_key=spec_id,
                         tags={**TRAINING_TAGS, "snoiq/spec": spec_id, **({"snoiq/why": why[:200]} if why else {})})


def model_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        name="weekly_retraining",
        job=retrain_job,
        cron_schedule="0 3 * * 1",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Mondays 03:00 UTC: retrain every registered model spec even without new data (drift, new code).",
    )
    def weekly_retraining(context: dg.ScheduleEvaluationContext):
        specs = sorted(context.instance.get_dynamic_partitions(model_spec_partitions.name))
        if not specs:
            return dg.SkipReason("no model spec is registered (land one in raw/model_specs/)")
        week = f"{context.scheduled_execution_time:%Y-%m-%d}"
        return [retrain_request(spec_id, run_key=f"weekly-{week}-{spec_id}", why="weekly") for spec_id in specs]

    return [weekly_retraining]
