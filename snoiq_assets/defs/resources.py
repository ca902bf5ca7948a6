"""Per-environment resources, chosen in one place from ``Settings``."""

from __future__ import annotations

from typing import Optional

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from snoiq_assets.lib import duckfile
from snoiq_assets.lib.storage import ObjectStore, store_from_settings
from snoiq_assets.settings import Settings


class ObjectStoreResource(dg.ConfigurableResource):
    """The raw-zone and lake reader/writer (local folder or S3), built from ``Settings``."""

    profile: str = "local"
    home: str = ".snoiq"
    s3_endpoint: Optional[str] = None
    bucket: str = "snoiq"
    region: str = "us-east-1"
    # Given as EnvVar in Definitions, so the UI shows the variable name, never the value.
    access_key_id: Optional[str] = None
    secret_access_key: Optional[str] = None

    _store: Optional[ObjectStore] = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ObjectStoreResource":
        creds = {}
        if settings.profile == "s3":
            creds = {
                "access_key_id": dg.EnvVar("AWS_ACCESS_KEY_ID"),
                "secret_access_key": dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
            }
        return cls(
            profile=settings.profile,
            home=str(settings.home),
            s3_endpoint=settings.s3_endpoint,
            bucket=settings.bucket,
            region=settings.region,
            **creds,
        )

    def settings(self) -> Settings:
        return Settings(
            profile=self.profile,  # type: ignore[arg-type]
            home=Settings.from_env({"SNOIQ_HOME": self.home}).home,
            s3_endpoint=self.s3_endpoint,
            bucket=self.bucket,
            region=self.region,
            access_key_id=_resolve(self.access_key_id),
            secret_access_key=_resolve(self.secret_access_key),
        )

    def get_store(self) -> ObjectStore:
        if self._store is None:
            self._store = store_from_settings(self.settings())
        return self._store


def _resolve(value: Optional[str]) -> Optional[str]:
    # Inside a run Dagster has already resolved EnvVar fields; outside one (a test or a script
    # holding the resource object) the field is still the EnvVar itself.
    return value.get_value() if isinstance(value, dg.EnvVar) else value


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource the code location uses, for the active profile."""
    from snoiq_assets.defs.io_manager import PartitionedParquetIOManager
    from snoiq_assets.defs.models.resources import mlflow_resource

    store = ObjectStoreResource.from_settings(settings)
    s3_kwargs: dict[str, object] = {"region_name": settings.region}
    if settings.s3_endpoint:
        s3_kwargs["endpoint_url"] = settings.s3_endpoint
    if settings.profile == "s3":
        s3_kwargs["aws_access_key_id"] = dg.EnvVar("AWS_ACCESS_KEY_ID")
        s3_kwargs["aws_secret_access_key"] = dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    return {
        "store": store,
        "io_manager": PartitionedParquetIOManager(store=store),
        "s3": S3Resource(**s3_kwargs),
        "duckdb": DuckDBResource(database=str(settings.duckdb_path), connection_config=duckfile.connection_config()),
        "mlflow": mlflow_resource(settings),
    }
