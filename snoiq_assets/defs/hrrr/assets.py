"""HRRR assets: hrrr_raw (landing), hrrr_grid (model grid), hrrr_fields (decoded variables).

Thin wiring over ``snoiq_assets.lib.hrrr``. Any bad input (truncated/corrupt GRIB, an .idx
that does not match its GRIB, a grid different from hrrr_grid, a missing variable) fails the
partition with a message naming file, message number and expectation, and moves the raw file
(and its .idx) to ``quarantine/`` with a ``.reason.json``; other partitions are unaffected.
"""


import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import dagster as dg

from snoiq_assets.defs.io_manager import IOManagerError, read_schema_metadata
from snoiq_assets.defs.partitions import HOURLY_KEY_FORMAT, hourly_partitions
from snoiq_assets.defs.resources import ObjectStoreResource
from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import decode_fields, find_messages, idx_text, parse_and_check_idx, scan_grib
from snoiq_assets.lib.hrrr.fetch import (
    NOAA_BUCKET,
    FetchError,
    HttpSource,
    S3Source,
    default_sources,
    fetch_subset,
    hrrr_key,
    landing_key,
)
from snoiq_assets.lib.hrrr.grid import grid_from_grib
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve, search_pattern
from snoiq_assets.lib.storage import ObjectStore

GROUP = "hrrr"
RAW_PREFIX = "raw/hrrr/"


class HrrrSourceConfig(dg.Config):
    """One archive source. Credentials are given by environment-variable *names*, never values."""

    name: str
    kind: str = "s3"                       # "s3" or "http"
    bucket: str = NOAA_BUCKET
    endpoint_url: Optional[str] = None     # S3 endpoint (None = AWS)
    base_url: Optional[str] = None         # for kind="http"
    access_key_env: Optional[str] = None   # unset: anonymous
    secret_key_env: Optional[str] = None


class HrrrSelectionConfig(dg.Config):
    forecast_hour: int = 0
    variables: list[str] = list(DEFAULT_VARIABLES)


class HrrrRawConfig(HrrrSelectionConfig):
    sources: Optional[list[HrrrSourceConfig]] = None   # None: NOAA on AWS, then Google, then Azure


class HrrrGridConfig(dg.Config):
    source_key: Optional[str] = None   # a landed GRIB; None: the newest under raw/hrrr/


def run_time_of(partition_key: str) -> dt.datetime:
    return dt.datetime.strptime(partition_key, HOURLY_KEY_FORMAT).replace(tzinfo=dt.timezone.utc)


def build_source(cfg: HrrrSourceConfig):
    if cfg.kind == "http":
        if not cfg.base_url:
            raise dg.Failure(f"HRRR source {cfg.name!r}: kind 'http' needs base_url")
        return HttpSource(cfg.name, cfg.base_url)
    if cfg.kind != "s3":
        raise dg.Failure(f"HRRR source {cfg.name!r}: unknown kind {cfg.kind!r} (s3 or http)")
    if cfg.access_key_env:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3", endpoint_url=cfg.endpoint_url, region_name="us-east-1",
            aws_access_key_id=os.environ.get(cfg.access_key_env, ""),
            aws_secret_access_key=os.environ.get(cfg.secret_key_env or "", ""),
            config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2}),
        )
        return S3Source(cfg.name, cfg.bucket, client)
    return S3Source.anonymous_boto3(cfg.name, cfg.bucket, endpoint_url=cfg.endpoint_url)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _quarantine_and_fail(context, store: ObjectStore, key: str, exc: HrrrDataError, asset: str) -> dg.Failure:
    dest = store.quarantine(key, str(exc), asset=asset, partition=getattr(context, "partition_key", None)
                            if context.has_partition_key else None, **exc.details())
    if store.exists(key + ".idx"):
        store.quarantine(key + ".idx", f"companion of quarantined {key}: {exc}")
    context.log.error(f"{asset}: {exc} -> moved to {dest}")
    return dg.Failure(
        description=f"{exc} (moved to {dest})",
        metadata={"file": key, "quarantined_to": dest, "message_number": exc.message_number or 0,
                  "expected": exc.expected or "", "problem": exc.problem},
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    kinds={"s3", "grib"},
    description="HRRR wrfsfc GRIB2 subset (selected messages + its own .idx) landed in raw/hrrr/, fetched by "
    ".idx byte ranges from the NOAA archive, or taken as is when it already landed.",
)
def hrrr_raw(context: dg.AssetExecutionContext, config: HrrrRawConfig, store: ObjectStoreResource) -> dg.MaterializeResult:
    obj = store.get_store()
    run_time = run_time_of(context.partition_key)
    variables = resolve(config.variables)
    key = landing_key(run_time, config.forecast_hour)
    idx_key = key + ".idx"
    if obj.exists(key):
        try:
            with obj.local_path(key) as path:
                messages = scan_grib(path, key)
                if obj.exists(idx_key):
                    parse_and_check_idx(obj.get(idx_key).decode(), messages, key)
                    wrote_idx = False
                else:
                    wrote_idx = True
                find_messages(messages, variables, config.forecast_hour, key)
                size, digest = path.stat().st_size, _sha256(path)
        except HrrrDataError as exc:
            raise _quarantine_and_fail(context, obj, key, exc, "hrrr_raw") from None
        if wrote_idx:
            obj.put(idx_key, idx_text(messages).encode())
        meta = {"source": "landed", "byte_ranges": dg.MetadataValue.json([]), "idx_written": wrote_idx}
    else:
        sources = ([build_source(s) for s in config.sources] if config.sources is not None else default_sources())
        remote = hrrr_key(run_time, config.forecast_hour)
        pattern = search_pattern(variables, config.forecast_hour)

        def validate(path: Path, idx: str) -> None:
            msgs = scan_grib(path, f"{remote} (fetched)")
            parse_and_check_idx(idx, msgs, f"{remote} (fetched)")
            find_messages(msgs, variables, config.forecast_hour, f"{remote} (fetched)")

        try:
            with obj.atomic_local_file(key) as path:
                result = fetch_subset(sources, remote, pattern, path, validate=validate)
        except FetchError as exc:
            raise dg.Failure(description=f"hrrr_raw {context.partition_key}: {exc}") from None
        obj.put(idx_key, result.idx_text.encode())
        size, digest = result.size, result.sha256
        messages_n = result.idx_text.count("\n")
        meta = {
            "source": result.source,
            "source_url": result.url,
            "byte_ranges": dg.MetadataValue.json(result.range_headers),
            "range_requests": len(result.ranges),
            "messages": messages_n,
            "fallback_errors": dg.MetadataValue.json(result.errors),
        }
    return dg.MaterializeResult(metadata={
        **meta,
        "key": key,
        "uri": dg.MetadataValue.path(obj.uri(key)),
        "size_bytes": size,
        "sha256": digest,
        "forecast_hour": config.forecast_hour,
        "variables": dg.MetadataValue.json(list(config.variables)),
    })


def _newest_grib(obj: ObjectStore) -> str:
    keys = [i.key for i in obj.list(RAW_PREFIX) if i.key.endswith(".grib2")]
    if not keys:
        raise dg.Failure(f"hrrr_grid: no GRIB2 file under {RAW_PREFIX}; materialise hrrr_raw first")
    return keys[-1]


@dg.asset(
    group_name=GROUP,
    deps=[dg.AssetDep("hrrr_raw", partition_mapping=dg.AllPartitionMapping())],
    kinds={"parquet"},
    description="The model grid from the first message of a landed GRIB: y, x, latitude, longitude per cell "
    "(row-major), with grid_id, shape and projection in the schema metadata.",
)
def hrrr_grid(context: dg.AssetExecutionContext, config: HrrrGridConfig, store: ObjectStoreResource) -> dg.Output:
    obj = store.get_store()
    key = config.source_key or _newest_grib(obj)
    try:
        with obj.local_path(key) as path:
            scan_grib(path, key)
            grid = grid_from_grib(path)
    except HrrrDataError as exc:
        raise _quarantine_and_fail(context, obj, key, exc, "hrrr_grid") from None
    table = grid.to_table()
    return dg.Output(table, metadata={
        "grid_id": grid.grid_id,
        "shape": f"{grid.ny},{grid.nx}",
        "grid_type": str(grid.projection.get("gridType")),
        "projection": dg.MetadataValue.json({k: v for k, v in grid.projection.items() if k != "grib"}),
        "source_key": key,
    })


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    deps=["hrrr_raw", "hrrr_grid"],
    kinds={"parquet"},
    description="Selected HRRR variables decoded (xarray + cfgrib) to float32 columns, one row per grid cell in "
    "hrrr_grid order; units, grid_id, run/valid time and forecast hour in the schema metadata.",
)
def hrrr_fields(context: dg.AssetExecutionContext, config: HrrrSelectionConfig, store: ObjectStoreResource) -> dg.Output:
    obj = store.get_store()
    run_time = run_time_of(context.partition_key)
    variables = resolve(config.variables)
    key = landing_key(run_time, config.forecast_hour)
    try:
        grid_md = read_schema_metadata(store, dg.AssetKey("hrrr_grid"), None)
    except (IOManagerError, KeyError, FileNotFoundError) as exc:
        raise dg.Failure(f"hrrr_fields: hrrr_grid is not materialised ({exc}); materialise it first") from None
    if not obj.exists(key):
        raise dg.Failure(f"hrrr_fields {context.partition_key}: {key} has not landed; materialise hrrr_raw first")
    idx = obj.get(key + ".idx").decode() if obj.exists(key + ".idx") else None
    try:
        with obj.local_path(key) as path:
            table, stats = decode_fields(path, variables, config.forecast_hour,
                                         expected_grid_id=grid_md["grid_id"], idx=idx, name=key)
    except HrrrDataError as exc:
        raise _quarantine_and_fail(context, obj, key, exc, "hrrr_fields") from None
    md = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    meta: dict = {
        "grid_id": md["grid_id"], "run_time": md["run_time"], "valid_time": md["valid_time"],
        "forecast_hour": config.forecast_hour, "source_key": key,
        "units": dg.MetadataValue.json(json.loads(md["units"])),
    }
    for col, s in stats.items():
        for stat in ("min", "mean", "max"):
            meta[f"{col}/{stat}"] = dg.MetadataValue.float(s[stat]) if s[stat] is not None else dg.MetadataValue.null()
        meta[f"{col}/null_count"] = s["null_count"]
    return dg.Output(table, metadata=meta)
