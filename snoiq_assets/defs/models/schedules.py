"""The retraining job (training table -> three model types -> champion -> predictions, one run)
and ``weekly_retraining``: Mondays 03:00 UTC, even without new data (drift, new code). Off by
default. Its run configuration is the YAML file named by ``SNOIQ_RETRAIN_CONFIG``
(``Settings.retrain_config``); without it the schedule fails its tick naming that variable."""

from __future__ import annotations

import dagster as dg
import yaml

from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.predictions import predictions
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.defs.partitions import MODEL_TYPES, range_tags
from snoiq_assets.settings import Settings, SettingsError

TRAINING_TAGS = {"snoiq/kind": "training"}
RANGE_TAGS = range_tags(MODEL_TYPES[0], MODEL_TYPES[-1])

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(training_table, trained_models, champion_model, predictions),
    tags=TRAINING_TAGS,
    description="Rebuild the training table, retrain every model type, pick the champion, predict.",
)


def retrain_run_config(settings: Settings) -> dict:
    """The retraining run config from ``SNOIQ_RETRAIN_CONFIG``; a clear error when it is unset or wrong."""
    path = settings.retrain_config
    if path is None:
        raise SettingsError("SNOIQ_RETRAIN_CONFIG is not set: automatic retraining needs a run-config YAML "
                            "(ops: training_table, trained_models, champion_model, predictions) naming the target, "
                            "locations and dates to train on")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"SNOIQ_RETRAIN_CONFIG={path} cannot be read as YAML: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("ops"), dict):
        raise SettingsError(f"SNOIQ_RETRAIN_CONFIG={path} must hold a run config with an 'ops' mapping")
    return config


def retrain_request(settings: Settings, run_key: str | None = None) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, run_config=retrain_run_config(settings),
                         tags={**TRAINING_TAGS, **RANGE_TAGS})


def model_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        name="weekly_retraining",
        job=retrain_job,
        cron_schedule="0 3 * * 1",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Mondays 03:00 UTC: retrain every model type even without new data (drift, new code).",
    )
    def weekly_retraining(context: dg.ScheduleEvaluationContext):
        return retrain_request(settings, run_key=f"weekly-{context.scheduled_execution_time:%Y-%m-%d}")

    return [weekly_retraining]
