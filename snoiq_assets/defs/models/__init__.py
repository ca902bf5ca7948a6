"""The models domain: trained_models, champion_model, predictions (each one partition per model
spec, as training_table is), hourly_predictions, with the spec, retraining, sweep and
feature-prediction automation, as one `defs`.

Needs the resources store, duckdb and mlflow (``mlflow_resource(settings)`` from
defs/models/resources.py, wired in defs/resources.py build_resources). A ``trained_models``
partition trains each of its spec's model types in turn, with its own MLflow run (in the spec's
experiment) and experiments row.
"""

import dagster as dg

from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.predictions import hourly_predictions, predictions
from snoiq_assets.defs.models.reproduce import reproduce_job
from snoiq_assets.defs.models.schedules import model_schedules, retrain_job
from snoiq_assets.defs.models.sensors import model_sensors
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[trained_models, champion_model, predictions, hourly_predictions],
                          jobs=[retrain_job, reproduce_job], schedules=model_schedules(settings), sensors=model_sensors(settings))
