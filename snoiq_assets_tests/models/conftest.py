"""Fixtures for the models tests: a real MLflow (SQLite in tmp, artifacts on the test's
backend), the real GSOD Portland file as the observations_clean upstream, a real instance."""


import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.models.resources import MlflowResource
from snoiq_assets.defs.partitions import station_file_partitions
from snoiq_assets_tests.models.gsod import STATION, gsod_clean

FAST = {"n_estimators": 40, "max_depth": 3}


@pytest.fixture
def mlflow_res(settings, tmp_path) -> MlflowResource:
    db = tmp_path / "mlflow.db"
    if settings.profile == "local":
        return MlflowResource(tracking_uri=f"sqlite:///{db}", artifact_root=str(settings.home / "mlflow"))
    return MlflowResource(
        tracking_uri=f"sqlite:///{db}", artifact_root=f"s3://{settings.bucket}/mlflow",
        s3_endpoint_url=settings.s3_endpoint, aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
    )


@pytest.fixture
def model_resources(resources, mlflow_res) -> dict:
    return {**resources, "mlflow": mlflow_res}


@dg.asset(partitions_def=station_file_partitions, group_name="stations")
def observations_clean(context: dg.AssetExecutionContext) -> pl.DataFrame:
    """Test upstream: the real GSOD file in the observations_clean contract."""
    if context.partition_key != STATION:
        raise ValueError(f"no test data for {context.partition_key}")
    return gsod_clean()


@pytest.fixture
def gsod_observations(instance, model_resources):
    """observations_clean materialised for the Portland station in the test's instance/store."""
    instance.add_dynamic_partitions(station_file_partitions.name, [STATION])
    res = dg.materialize([observations_clean], instance=instance, resources=model_resources, partition_key=STATION)
    assert res.success
    return STATION
