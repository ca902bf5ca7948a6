"""Fetch a byte-range subset of an HRRR file from the first source that works.

A source answers two calls: the whole ``.idx`` text, and one byte range of the GRIB. Sources
are tried in order; any failure (unreachable, missing key, short read, bad inventory) moves on
to the next, and the error of each is kept for the final message. The S3 source takes an
injectable boto3 or minio client, so tests point it at the local SeaweedFS server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from snoiq_assets.lib.hrrr.inventory import ByteRange, group_ranges, parse_idx, select, subset_idx, whole_messages

NOAA_BUCKET = "noaa-hrrr-bdp-pds"


def hrrr_key(run_time: dt.datetime, forecast_hour: int, product: str = "wrfsfc", domain: str = "conus") -> str:
    """The archive key, e.g. ``hrrr.20201214/conus/hrrr.t00z.wrfsfcf12.grib2``."""
    return f"hrrr.{run_time:%Y%m%d}/{domain}/hrrr.t{run_time:%H}z.{product}f{forecast_hour:02d}.grib2"


class FetchError(RuntimeError):
    pass


class SourceConfigError(ValueError):
    """A configured source that cannot be built; names the source and what to change."""


class _KeySource(ABC):
    """A store of archive keys, read whole or by byte range."""

    @abstractmethod
    def _get(self, key: str, range_header: str | None) -> bytes:
        """The object at ``key``, or only the bytes of ``range_header`` (``bytes=a-b``) when given."""

    def get_text(self, key: str) -> str:
        return self._get(key, None).decode()

    def get_range(self, key: str, rng: ByteRange) -> bytes:
        return self._get(key, rng.header)


# Our own retries (multifetch.RetryPolicy: attempts, backoff, the next source) decide; botocore
# sends each request once. Its "max_attempts" counts retries after the first request, so
# {"max_attempts": 2} (legacy mode, with its own sleeps) made each of our 4 attempts at a down
# mirror 3 requests: 12 requests and ~6 s of botocore's backoff before the next source was tried.
ONE_ATTEMPT = {"total_max_attempts": 1, "mode": "standard"}


class S3Source(_KeySource):
    """An S3 bucket through a boto3 client (``get_object(Range=...)``) or a minio client."""

    def __init__(self, name: str, bucket: str, client):
        self.name, self.bucket, self.client = name, bucket, client

    @classmethod
    def anonymous_boto3(cls, name: str = "aws", bucket: str = NOAA_BUCKET, endpoint_url: str | None = None,
                        region: str = "us-east-1", timeout_s: float = 20.0) -> "S3Source":
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        cfg = Config(signature_version=UNSIGNED, connect_timeout=min(5.0, timeout_s), read_timeout=timeout_s,
                     retries=ONE_ATTEMPT, max_pool_connections=16)
        return cls(name, bucket, boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=cfg))

    def _get(self, key: str, range_header: str | None) -> bytes:
        if hasattr(self.client, "get_object") and hasattr(self.client, "meta"):  # boto3
            kwargs = {"Bucket": self.bucket, "Key": key}
            if range_header:
                kwargs["Range"] = range_header
            return self.client.get_object(**kwargs)["Body"].read()
        # minio
        resp = None
        try:
            if range_header:
                start, _, end = range_header.removeprefix("bytes=").partition("-")
                length = int(end) - int(start) + 1 if end else 0
                resp = self.client.get_object(self.bucket, key, offset=int(start), length=length)
            else:
                resp = self.client.get_object(self.bucket, key)
            return resp.read()
        finally:
            if resp is not None:
                resp.close()
                resp.release_conn()

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{key} ({self.name})"


class HttpSource(_KeySource):
    """Any HTTPS mirror of the archive layout (Google Cloud, Azure, NOMADS)."""

    def __init__(self, name: str, base_url: str, timeout_s: float = 20.0):
        self.name, self.base_url, self.timeout_s = name, base_url.rstrip("/"), timeout_s

    def _get(self, key: str, range_header: str | None) -> bytes:
        req = urllib.request.Request(f"{self.base_url}/{key}")
        if range_header:
            req.add_header("Range", range_header)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - fixed https base
            if range_header and resp.status != 206:
                raise FetchError(f"{self.name}: server ignored the Range header (HTTP {resp.status})")
            return resp.read()

    def describe(self, key: str) -> str:
        return f"{self.base_url}/{key} ({self.name})"


@dataclass(frozen=True)
class SourceSpec:
    """One archive mirror, as data: where it is and how to reach it. Credentials are named by
    environment variables (never values); without them an S3 source is anonymous."""

    name: str
    kind: str = "s3"                       # "s3" or "http"
    bucket: str = NOAA_BUCKET
    endpoint_url: str | None = None        # S3 endpoint (None: AWS)
    base_url: str | None = None            # kind "http"
    timeout_s: float = 20.0                # per request (connect and read)
    access_key_env: str | None = None
    secret_key_env: str | None = None


# NOAA's HRRR archive, in the order tried: AWS Open Data (anonymous), Google Cloud, Azure.
ARCHIVE_SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("aws", "s3", bucket=NOAA_BUCKET),
    SourceSpec("google", "http", base_url="https://storage.googleapis.com/high-resolution-rapid-refresh"),
    SourceSpec("azure", "http", base_url="https://noaahrrr.blob.core.windows.net/hrrr"),
)


def build_source(spec: SourceSpec, environ=None):
    """The client for one ``SourceSpec`` (credentials read from ``environ``, default ``os.environ``)."""
    import os

    environ = os.environ if environ is None else environ
    if spec.kind == "http":
        if not spec.base_url:
            raise ValueError(f"HRRR source {spec.name!r}: kind 'http' needs base_url")
        return HttpSource(spec.name, spec.base_url, timeout_s=spec.timeout_s)
    if spec.kind != "s3":
        raise ValueError(f"HRRR source {spec.name!r}: unknown kind {spec.kind!r} (s3 or http)")
    if not spec.access_key_env:
        return S3Source.anonymous_boto3(spec.name, spec.bucket, endpoint_url=spec.endpoint_url,
                                        timeout_s=spec.timeout_s)
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=spec.endpoint_url, region_name="us-east-1",
        aws_access_key_id=environ.get(spec.access_key_env, ""),
        aws_secret_access_key=environ.get(spec.secret_key_env or "", ""),
        config=Config(connect_timeout=min(5.0, spec.timeout_s), read_timeout=spec.timeout_s,
                      retries=ONE_ATTEMPT, max_pool_connections=16),
    )
    return S3Source(spec.name, spec.bucket, client)


def default_sources() -> list:
    """Clients for ``ARCHIVE_SOURCES``."""
    return [build_source(spec) for spec in ARCHIVE_SOURCES]


@dataclass
class FetchResult:
    source: str
    url: str
    ranges: list[ByteRange]
    sizes: list[int]
    idx_text: str                          # inventory of the landed subset (offsets rebased)
    size: int
    sha256: str
    errors: list[str] = field(default_factory=list)   # failures of earlier sources

    @property
    def range_headers(self) -> list[str]:
        return [r.header for r in self.ranges]


def fetch_subset(sources: list, key: str, pattern: str, dest: str | Path, validate=None) -> FetchResult:
    """Write the messages of ``key`` matching ``pattern`` to ``dest``; first working source wins.

    ``validate(dest, idx_text)``, if given, checks the landed bytes; if it raises, the next
    source is tried (a source serving a broken file is a failed source).
    """
    errors: list[str] = []
    for source in sources:
        try:
            result = _fetch_from(source, key, pattern, Path(dest), errors)
            if validate is not None:
                validate(Path(dest), result.idx_text)
            return result
        except Exception as exc:  # noqa: BLE001 - any failure: try the next source
            errors.append(f"{source.describe(key)}: {type(exc).__name__}: {exc}")
    raise FetchError(f"no source could provide {key}: " + ("; ".join(errors) or "no sources configured"))


def _fetch_from(source, key: str, pattern: str, dest: Path, errors: list[str]) -> FetchResult:
    idx = source.get_text(key + ".idx")
    entries = parse_idx(idx, source=source.describe(key + ".idx"))
    chosen = select(entries, pattern)
    if not chosen:
        raise FetchError(f"no message of {key}.idx matches {pattern!r}")
    ranges = group_ranges(whole_messages(entries, chosen))
    sizes, digest, total = [], hashlib.sha256(), 0
    with open(dest, "wb") as out:
        for rng in ranges:
            data = source.get_range(key, rng)
            if rng.length is not None and len(data) != rng.length:
                raise FetchError(f"range {rng.header} returned {len(data)} bytes, expected {rng.length}")
            if data[:4] != b"GRIB":
                raise FetchError(f"range {rng.header} does not start with a GRIB message (wrong .idx?)")
            out.write(data)
            digest.update(data)
            sizes.append(len(data))
            total += len(data)
    return FetchResult(source=source.name, url=source.describe(key), ranges=ranges, sizes=sizes,
                       idx_text=subset_idx(ranges, sizes), size=total, sha256=digest.hexdigest(),
                       errors=list(errors))


def source_from_config(name: str, kind: str = "s3", bucket: str = NOAA_BUCKET, endpoint_url: str | None = None,
                       base_url: str | None = None, access_key_env: str | None = None,
                       secret_key_env: str | None = None, timeout_s: float = 20.0):
    """One archive source from its configuration (``hrrr_raw``'s ``sources``): a ``SourceSpec``."""
    try:
        return build_source(SourceSpec(name, kind, bucket, endpoint_url, base_url, timeout_s, access_key_env,
                                       secret_key_env))
    except ValueError as exc:
        raise SourceConfigError(str(exc)) from None
