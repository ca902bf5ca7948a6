"""How models appear in MLflow: experiment names, run links, the champion as an MLflow model.

- One experiment per model spec, so an experiment's charts compare like with like (daily
  precipitation runs never beside hourly temperature runs). Until model specs exist, a spec is
  the target and the resolution; ``experiment_name`` is the one place that decides.
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

import numpy as np
import pandas as pd

from snoiq_assets.lib.keys import safe_identifier

EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
PYFUNC_MODEL_FILE = Path(__file__).with_name("pyfunc_model.py")
CHAMPION_MODEL_NAME = "champion_model"
# What serving the pyfunc needs besides this package (mlflow models serve --env-manager local
# from the project's .venv has all of it).
PIP_REQUIREMENTS = ["mlflow", "numpy", "pandas", "xgboost-cpu", "lightgbm", "scikit-learn", "skops"]


def resolution_name(hourly: bool, resolution_days: int) -> str:
    if hourly:
        return "hourly"
    return "daily" if resolution_days == 1 else f"{resolution_days}-day"


def experiment_name(target: str, resolution: str) -> str:
    """The MLflow experiment of a model spec: ``snoiq/<target>/<resolution>``."""
    return f"snoiq/{safe_identifier(target, 'target')}/{safe_identifier(resolution, 'resolution')}"


def run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def log_champion_model(run_id: str, model_file: Path, metadata: dict, example: pd.DataFrame) -> str:
    """Log the model as an MLflow pyfunc model into its training run ``run_id`` (tracking and
    registry URIs already set) and return the logged model's URI. ``example``: a few rows of
    the model's features (its input example; the signature is inferred from it and from the
    model's predictions on it). The run keeps its own start and end time."""
    import mlflow

    # A run's log is no place for download progress bars, nor for MLflow's notes on the
    # environment it records (no pip in a uv-made venv; uv.lock copied into the model).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow.utils.environment", "mlflow.utils.uv_utils", "mlflow.pyfunc", "mlflow.models.model"):
        logging.getLogger(name).setLevel(logging.ERROR)
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    example = example[list(metadata["features"])].astype(float)
    with tempfile.TemporaryDirectory(prefix="snoiq-pyfunc-") as tmp:
        meta_path = Path(tmp) / "metadata.json"
        meta_path.write_text(json.dumps(metadata, default=str))
        from snoiq_assets.lib.models.train import load_native

        model = load_native(metadata["model_type"], Path(model_file), list(metadata["features"]),
                            metadata["target_transform"])
        predicted = np.asarray(model.predict(example.to_numpy(dtype=float)), dtype=float)
        signature = mlflow.models.infer_signature(example, predicted)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=CHAMPION_MODEL_NAME, python_model=str(PYFUNC_MODEL_FILE),
                artifacts={"model_file": str(model_file), "metadata": str(meta_path)},
                signature=signature, input_example=example, pip_requirements=PIP_REQUIREMENTS,
            )
    # Resuming the run to log into it ended it anew; give it back the span of its fit.
    client.set_terminated(run_id, run.info.status, end_time=run.info.end_time)
    return info.model_uri
