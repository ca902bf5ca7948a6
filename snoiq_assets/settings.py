"""One settings object, read from the environment, decides where everything lives.

Profiles:
- ``local`` (default): a folder (``$SNOIQ_HOME``, default ``.snoiq/``) laid out exactly like
  the bucket, with the DuckDB file and the MLflow SQLite store inside it. No service needed.
- ``s3``: a bucket on any S3 endpoint (MinIO, SeaweedFS, AWS). Endpoint and bucket come from
  ``SNOIQ_S3_ENDPOINT`` / ``SNOIQ_BUCKET``; credentials from the usual AWS variables.

Every resource (IO manager, raw-zone store, the ``minio`` client, MLflow's artifact store) and
the settings-dependent automation is built from this object, read once by definitions.py and
handed down, so the endpoint is decided in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping
from urllib.parse import urlparse

PROFILES = ("local", "s3")
EXECUTORS = ("multiprocess", "celery")


class SettingsError(ValueError):
    """A setting is missing or wrong. The message names the variable, never a secret."""


@dataclass(frozen=True)
class Settings:
    profile: Literal["local", "s3"] = "local"
    home: Path = Path(".snoiq")
    s3_endpoint: str | None = None
    bucket: str = "snoiq"
    region: str = "us-east-1"
    # Credentials are kept out of repr() so they never reach a log or an error message.
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    duckdb_path: Path = Path(".snoiq/snoiq.duckdb")
    mlflow_tracking_uri: str | None = None
    # Where people open the MLflow UI (Dagster metadata links runs there).
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    # At most one automatic retraining of a model spec per this many minutes (a spec may set its own).
    retrain_min_interval_minutes: float = 360.0
    # Who runs a run's steps: Dagster's multiprocess executor on this host (default), or Celery
    # workers on the broker named by SNOIQ_CELERY_BROKER (read by Dagster at run start, so a
    # broker password never sits in run config or here).
    executor: Literal["multiprocess", "celery"] = "multiprocess"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        profile = env.get("SNOIQ_PROFILE", "local").strip().lower() or "local"
        if profile not in PROFILES:
            raise SettingsError(
                f"SNOIQ_PROFILE={profile!r} is not a known profile; use one of {', '.join(PROFILES)}"
            )
        home = Path(env.get("SNOIQ_HOME") or ".snoiq").expanduser().resolve()
        duckdb_path = Path(env.get("SNOIQ_DUCKDB_PATH") or home / "snoiq.duckdb").expanduser().resolve()
        bucket = env.get("SNOIQ_BUCKET", "snoiq").strip()
        endpoint = (env.get("SNOIQ_S3_ENDPOINT") or "").strip() or None
        access = env.get("AWS_ACCESS_KEY_ID") or None
        secret = env.get("AWS_SECRET_ACCESS_KEY") or None
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        tracking_uri = env.get("MLFLOW_TRACKING_URI") or None
        # A tracking server people can reach is also its UI; the compose stack's internal name
        # (http://mlflow:5000) is published on the host as 127.0.0.1:5000, as is `mlflow ui`.
        reachable = tracking_uri if tracking_uri and tracking_uri.startswith("http") and "//mlflow:" not in tracking_uri else None
        mlflow_ui_url = (env.get("SNOIQ_MLFLOW_UI_URL") or "").strip() or reachable or "http://127.0.0.1:5000"
        executor = (env.get("SNOIQ_EXECUTOR") or "multiprocess").strip().lower()
        if executor not in EXECUTORS:
            raise SettingsError(f"SNOIQ_EXECUTOR={executor!r} is not a known executor; use one of {', '.join(EXECUTORS)}")
        if executor == "celery" and not (env.get("SNOIQ_CELERY_BROKER") or "").strip():
            raise SettingsError("SNOIQ_CELERY_BROKER is not set; SNOIQ_EXECUTOR=celery needs the broker URL "
                                "(e.g. redis://127.0.0.1:6379/0)")
        interval_text = (env.get("SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES") or "360").strip()
        try:
            interval = float(interval_text)
        except ValueError:
            interval = -1.0
        if not interval >= 0:
            raise SettingsError(
                f"SNOIQ_RETRAIN_MIN_INTERVAL_MINUTES={interval_text!r} must be a number of minutes (0 or more)")
        if profile == "s3":
            if not bucket:
                raise SettingsError("SNOIQ_BUCKET is empty; the s3 profile needs a bucket name")
            if not _valid_bucket_name(bucket):
                raise SettingsError(f"SNOIQ_BUCKET={bucket!r} is not a valid S3 bucket name")
            if endpoint is not None:
                parsed = urlparse(endpoint)
                if parsed.scheme not in ("http", "https") or not parsed.netloc:
                    raise SettingsError(
                        f"SNOIQ_S3_ENDPOINT={endpoint!r} must be a URL such as http://127.0.0.1:9000"
                    )
            if not access:
                raise SettingsError("AWS_ACCESS_KEY_ID is not set; the s3 profile needs credentials")
            if not secret:
                raise SettingsError("AWS_SECRET_ACCESS_KEY is not set; the s3 profile needs credentials")
        return cls(
            profile=profile,  # type: ignore[arg-type]
            home=home,
            s3_endpoint=endpoint,
            bucket=bucket,
            region=region,
            access_key_id=access,
            secret_access_key=secret,
            duckdb_path=duckdb_path,
            mlflow_tracking_uri=tracking_uri,
            mlflow_ui_url=mlflow_ui_url,
            retrain_min_interval_minutes=interval,
            executor=executor,  # type: ignore[arg-type]
        )

    @property
    def endpoint_host(self) -> str:
        """host:port for the minio client; AWS when no endpoint is set."""
        if not self.s3_endpoint:
            return "s3.amazonaws.com"
        return urlparse(self.s3_endpoint).netloc

    @property
    def endpoint_secure(self) -> bool:
        return not self.s3_endpoint or urlparse(self.s3_endpoint).scheme == "https"

    def describe(self) -> str:
        """Where outputs go, for humans (no secrets)."""
        if self.profile == "local":
            return f"local folder {self.home}"
        return f"s3://{self.bucket} at {self.s3_endpoint or 'AWS'}"

    def polars_storage_options(self) -> dict[str, str] | None:
        """Options for Polars' native object-store reader (scan_parquet on s3:// URIs)."""
        if self.profile != "s3":
            return None
        opts = {
            "aws_access_key_id": self.access_key_id or "",
            "aws_secret_access_key": self.secret_access_key or "",
            "aws_region": self.region,
        }
        if self.s3_endpoint:
            opts["aws_endpoint_url"] = self.s3_endpoint
            if self.s3_endpoint.startswith("http://"):
                opts["aws_allow_http"] = "true"
        return opts


def _valid_bucket_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name))
