"""`MlflowResource`: a small Pythonic resource over ``mlflow.MlflowClient``.

It uses an explicit client (no module-global active run), so two materialisations in one
process never share a run. Local profile: SQLite tracking at ``SNOIQ_HOME/mlflow.db`` and
artifacts under ``SNOIQ_HOME/mlflow/`` (the local store's ``mlflow/`` prefix). s3 profile: the
compose stack's MLflow server (``MLFLOW_TRACKING_URI``) with artifacts in the same bucket under
``mlflow/`` on the same endpoint (``MLFLOW_S3_ENDPOINT_URL`` = ``settings.s3_endpoint``).
Credentials are EnvVars in Definitions, never shown or logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import PrivateAttr

from snoiq_assets.lib.models.mlflow_conventions import EXPERIMENT_TAGS
from snoiq_assets.lib.models.tracking import relocate_artifact_root, sqlite_path
from snoiq_assets.settings import Settings

# (tracking_uri, experiment name) -> experiment id, once per process: an experiment is never
# renamed or re-created under the same name by this code, and the lookup is a database query.
_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}


class MlflowResource(dg.ConfigurableResource):
    tracking_uri: str
    artifact_root: str  # a local folder or s3://bucket/prefix
    experiment_name: str = "snoiq"
    registry_uri: Optional[str] = None
    # Where people open the MLflow UI: Dagster metadata links each run there.
    ui_url: str = "http://127.0.0.1:5000"
    s3_endpoint_url: Optional[str] = None
    aws_access_key_id: Optional[str] = None
    aws_secret_access_key: Optional[str] = None

    _client = PrivateAttr(default=None)

    def _export_s3_env(self) -> None:
        # boto3 (MLflow's S3 artifact repository) reads these from the environment.
        if self.s3_endpoint_url:
            os.environ["MLFLOW_S3_ENDPOINT_URL"] = self.s3_endpoint_url
        if self.aws_access_key_id:
            os.environ["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            os.environ["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key

    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._export_s3_env()
            if self.artifact_root.startswith("/"):
                os.makedirs(self.artifact_root, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or self.tracking_uri)
            # Logging a model goes through MLflow's fluent API, which reads these.
            import mlflow

            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)
        return self._client

    def run_url(self, experiment_id: str, run_id: str) -> str:
        from snoiq_assets.lib.models.mlflow_conventions import run_url

        return run_url(self.ui_url, experiment_id, run_id)

    def experiment_url(self, experiment_id: str) -> str:
        from snoiq_assets.lib.models.mlflow_conventions import experiment_url

        return experiment_url(self.ui_url, experiment_id)

    def experiment_id(self, name: Optional[str] = None) -> str:
        from mlflow.exceptions import MlflowException

        client = self.client()
        name = name or self.experiment_name
        cache_key = (self.tracking_uri, name)
        if cache_key in _EXPERIMENT_IDS:
            return _EXPERIMENT_IDS[cache_key]
        location = self.artifact_root.rstrip("/") + "/" + name
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            self._follow_moved_home(exp.artifact_location, location)
            for key, value in EXPERIMENT_TAGS.items():
                if exp.tags.get(key) != value:   # made before the tag was set: opens on model training
                    client.set_experiment_tag(exp.experiment_id, key, value)
            _EXPERIMENT_IDS[cache_key] = exp.experiment_id
            return exp.experiment_id
        try:
            _EXPERIMENT_IDS[cache_key] = client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
            return _EXPERIMENT_IDS[cache_key]
        except MlflowException:
            # A parallel run created it first.
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            _EXPERIMENT_IDS[cache_key] = exp.experiment_id
            return exp.experiment_id

    def register_champion(self, name: str, mlflow_run_id: str, model_prefix: str, object_store,
                          training_table) -> str:
        """Log the stored model as an MLflow pyfunc model into its training run (signature and
        input example, see lib/models/mlflow_conventions.py), register it as a new version of ``name`` and
        point the alias ``champion`` at it; return the version."""
        from mlflow.exceptions import MlflowException

        from snoiq_assets.lib.models.mlflow_conventions import log_champion_model

        client = self.client()
        model_uri = log_champion_model(object_store, model_prefix, mlflow_run_id, training_table)
        try:
            client.create_registered_model(name)
        except MlflowException:
            pass  # it exists
        mv = client.create_model_version(name, source=model_uri, run_id=mlflow_run_id, tags={"model_prefix": model_prefix})
        client.set_registered_model_alias(name, "champion", mv.version)
        return str(mv.version)

    def _follow_moved_home(self, stored: str, location: str) -> None:
        """Local profile: the tracking database and the artifacts live together in SNOIQ_HOME.
        If the experiment records another folder, the home was moved: rewrite the stored paths
        so new artifacts go to the current home (and old ones are found there)."""
        db = sqlite_path(self.tracking_uri)
        root = self.artifact_root.rstrip("/")
        if db is None or not root.startswith("/") or db.resolve().parent != Path(root).resolve().parent:
            return   # a shared tracking server or database: never rewritten from here
        stored_path = stored[len("file://"):] if stored.startswith("file://") else stored
        name = location.rsplit("/", 1)[1]
        if stored_path.rstrip("/") == location or not stored_path.rstrip("/").endswith("/" + name):
            return
        relocate_artifact_root(db, stored_path.rstrip("/")[: -len(name) - 1], root)


def mlflow_resource(settings: Settings) -> MlflowResource:
    """The MLflow resource for the active profile (the lead wires this into build_resources)."""
    ui_url = settings.mlflow_ui_url
    if settings.profile == "local":
        home = settings.home
        return MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri or f"sqlite:///{home / 'mlflow.db'}",
            artifact_root=str(home / "mlflow"), ui_url=ui_url,
        )
    # Without a tracking server (tests, a laptop against MinIO) runs are tracked in SQLite in
    # SNOIQ_HOME; artifacts still go to the bucket. The compose stack sets MLFLOW_TRACKING_URI.
    tracking_uri = settings.mlflow_tracking_uri or f"sqlite:///{settings.home / 'mlflow.db'}"
    return MlflowResource(
        tracking_uri=tracking_uri,
        artifact_root=f"s3://{settings.bucket}/mlflow", ui_url=ui_url,
        s3_endpoint_url=settings.s3_endpoint,
        aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
    )
