"""The models domain: trained_models, champion_model, predictions, hourly_predictions, as one `defs`.

Needs the resources store, duckdb and mlflow (``mlflow_resource(settings)`` from
defs/models/resources.py, wired in defs/resources.py build_resources). ``trained_models`` has
a single-run backfill policy: a run over a range of model types (the retraining job runs all
three) trains each type in turn, with its own MLflow run and experiments row.
"""

import dagster as dg

from snoiq_assets.defs.models.assets import assets
from snoiq_assets.defs.models.reproduce import reproduce_job

defs = dg.Definitions(assets=assets, jobs=[reproduce_job])
