"""The models domain: trained_models, champion_model, predictions, exposed as one `defs`.

Needs the resources store, duckdb and mlflow; the lead wires ``mlflow_resource(settings)``
(from defs/models/resources.py) into build_resources under the key "mlflow".
"""

import dagster as dg

from snoiq_assets.defs.models.assets import champion_model, predictions, trained_models

defs = dg.Definitions(assets=[trained_models, champion_model, predictions])
