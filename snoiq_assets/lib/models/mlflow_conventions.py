"""How models appear in MLflow: experiment names, run links, the champion as an MLflow model.

- One experiment per model spec (``snoiq/<spec_id>``), so an experiment's charts compare like
  with like (daily precipitation runs never beside hourly temperature runs, nor two stations'
  specs); ``experiment_name`` is the one place that decides.
- Experiments are tagged as model training (``mlflow.experimentKind``): MLflow 3 otherwise
  opens an experiment on its GenAI view.
- The champion is logged as a pyfunc model (``pyfunc_model.py``, models from code, no pickle)
  with a signature and an input example, so ``mlflow.pyfunc.load_model`` and
  ``mlflow models serve`` work on the registered version.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import polars as pl

from snoiq_assets.lib.keys import join_key, safe_identifier
from snoiq_assets.lib.models.evaluate import feature_matrix
from snoiq_assets.lib.models.store import load_bundle
from snoiq_assets.lib.storage import ObjectStore

EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
PYFUNC_MODEL_FILE = Path(__file__).with_name("pyfunc_model.py")
CHAMPION_MODEL_NAME = "champion_model"
# What serving the pyfunc needs besides this package (mlflow models serve --env-manager local
# from the project's .venv has all of it).
PIP_REQUIREMENTS = ["mlflow", "numpy", "pandas", "xgboost-cpu", "lightgbm", "scikit-learn", "skops"]


def experiment_name(spec_id: str) -> str:
    """The MLflow experiment of a model spec: ``snoiq/<spec_id>``."""
    return f"snoiq/{safe_identifier(spec_id, 'spec id')}"


def experiment_url(ui_url: str, experiment_id: str) -> str:
    """The experiment's page in the MLflow UI (a spec's runs side by side)."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}"


def run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def log_champion_model(store: ObjectStore, prefix: str, run_id: str, table: pl.DataFrame) -> str:
    """Log the stored model ``prefix`` as an MLflow pyfunc model into its training run ``run_id``
    (tracking and registry URIs already set) and return the logged model's URI. The file is the
    model store's, checked against its checksum; the input example is five rows of ``table``
    (the training table) for the model's stations, and the signature is inferred from them and
    the model's predictions. The run keeps its own start and end time."""
    import mlflow

    # A run's log is no place for download progress bars, nor for MLflow's notes on the
    # environment it records (no pip in a uv-made venv; uv.lock copied into the model).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow.utils.environment", "mlflow.utils.uv_utils", "mlflow.pyfunc", "mlflow.models.model"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model, meta = load_bundle(store, prefix)   # refuses a file that fails its checksum
    features = list(meta["features"])
    rows = table.filter(pl.col("location").is_in(meta.get("stations") or [meta["location"]])).head(5)
    import pandas as pd   # here, not at the top: every process that loads the definitions imports this module

    example = pd.DataFrame(feature_matrix(rows, features), columns=features)
    signature = mlflow.models.infer_signature(example, model.predict(example.to_numpy(dtype=float)))
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="snoiq-pyfunc-") as tmp:
        model_file = store.download(join_key(prefix, meta["model_file"]), Path(tmp) / meta["model_file"])
        meta_path = Path(tmp) / "metadata.json"
        meta_path.write_text(json.dumps(meta, default=str))
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=CHAMPION_MODEL_NAME, python_model=str(PYFUNC_MODEL_FILE),
                artifacts={"model_file": str(model_file), "metadata": str(meta_path)},
                signature=signature, input_example=example, pip_requirements=PIP_REQUIREMENTS,
            )
    # Resuming the run to log into it ended it anew; give it back the span of its fit.
    client.set_terminated(run_id, run.info.status, end_time=run.info.end_time)
    return info.model_uri
