"""Fixtures for the models tests: a real MLflow (SQLite in tmp, artifacts on the test's
backend), the real GSOD Portland file as observations_clean, a real instance.

observations_clean comes from the stations domain's own code, never a second reader:
- ``gsod_clean()`` runs the real parser and validation (``parsers.parse_native`` ->
  ``parsers.to_clean`` -> ``validate.validate``), for library tests that need a frame;
- ``gsod_observations`` lands the file in the raw zone and materialises the real
  ``observations_raw`` + ``observations_clean`` assets for its partition, for end-to-end tests.
"""

import functools
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.models.resources import MlflowResource
from snoiq_assets.defs.partitions import hourly_partitions, outcome_location_partitions
from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, register_station_files
from snoiq_assets.lib.stations import parsers, validate
from snoiq_assets_tests.helpers import fresh_mlflow_db

STATION = "72698024229"  # PORTLAND INTERNATIONAL AIRPORT, OR (GSOD)
GSOD = Path(__file__).resolve().parents[2] / "data" / "sample" / "station_obs" / "gsod_72698024229_KPDX_2016-2024.csv"
FAST = {"n_estimators": 40, "max_depth": 3}
STATION_ASSETS = [observations_raw, observations_clean]
# training_table's other inputs, declared but not materialised here: nothing of them is stored,
# so the table is built from the station observations alone.
TABLE_UPSTREAM = [dg.AssetSpec("grid_join_features", partitions_def=hourly_partitions),
                  dg.AssetSpec("outcome_of_interest", partitions_def=outcome_location_partitions)]


@functools.lru_cache(maxsize=1)
def _gsod_clean_cached() -> pl.DataFrame:
    fmt, native = parsers.parse_native(GSOD.read_bytes(), str(GSOD))
    frame = parsers.to_clean(native, fmt, STATION)
    clean, _rejects = validate.validate(frame, claimed_period=parsers.claimed_period(native, fmt))
    return clean


def gsod_clean() -> pl.DataFrame:
    """The real GSOD Portland file as observations_clean holds it (stations parser + validation)."""
    return _gsod_clean_cached().clone()


def land_gsod(instance: dg.DagsterInstance, store) -> str:
    """Land the GSOD file as ``raw/observations/<station>.csv`` and register its partition."""
    store.put_file(f"raw/observations/{STATION}.csv", GSOD)
    register_station_files(instance, store)
    return STATION


def materialize_observations(instance: dg.DagsterInstance, resources: dict) -> str:
    """Land the file and materialise the real observations_raw + observations_clean for it."""
    land_gsod(instance, resources["store"].get_store())
    res = dg.materialize(STATION_ASSETS, instance=instance, resources=resources, partition_key=STATION)
    assert res.success
    return STATION


@pytest.fixture
def mlflow_res(settings, tmp_path, mlflow_template_db) -> MlflowResource:
    db = fresh_mlflow_db(mlflow_template_db, tmp_path / "mlflow.db")
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


@pytest.fixture
def gsod_observations(instance, model_resources):
    """The real observations_clean asset materialised for the Portland GSOD partition."""
    return materialize_observations(instance, model_resources)



PORTLAND_SPEC = "portland_precip_daily"


def land_spec(instance: dg.DagsterInstance, store, spec_id: str, text: str | bytes | None = None, **over) -> str:
    """Land a model spec (the demo's file of that id, or ``text``; ``over``: top-level keys
    replaced) and register it as the spec sensor would; the spec's id."""
    import yaml

    from snoiq_assets.defs.models.demo import spec_text
    from snoiq_assets.defs.models.specs import register_spec_files
    from snoiq_assets.lib.models.specs import spec_key

    doc = yaml.safe_load(text if text is not None else spec_text(spec_id))
    doc.update(over)
    store.put(spec_key(spec_id), yaml.safe_dump(doc).encode())
    _new, refused = register_spec_files(instance, store)
    assert not refused, refused
    return spec_id


def train_run_config(**over) -> dict:
    """trained_models' run config for a quick test run: small trees, two folds."""
    return {"ops": {"trained_models": {"config": {"hyperparameters": dict(FAST), "cv_folds": 2, **over}}}}
