"""``ObjectStoreResource``: the raw-zone resource (raw files, quarantine, the model store and
experiments), local folder or S3, built from ``Settings``. Asset outputs go through the IO
manager (io_manager.py), which uses the same store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import PrivateAttr

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

    def get_store(self) -> ObjectStore:
        if self._store is None:
            # The fields are the store part of the Settings this resource was built from
            # (from_settings); Dagster keeps them as config so the UI shows them.
            self._store = store_from_settings(Settings(
                profile=self.profile,  # type: ignore[arg-type]
                home=Path(self.home),
                s3_endpoint=self.s3_endpoint,
                bucket=self.bucket,
                region=self.region,
                access_key_id=_resolve(self.access_key_id),
                secret_access_key=_resolve(self.secret_access_key),
            ))
        return self._store


def _resolve(value: Optional[str]) -> Optional[str]:
    # Inside a run Dagster has already resolved EnvVar fields; outside one (a test or a script
    # holding the resource object) the field is still the EnvVar itself.
    return value.get_value() if isinstance(value, dg.EnvVar) else value


