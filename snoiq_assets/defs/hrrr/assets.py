"""HRRR assets: hrrr_raw (landing), hrrr_grid (model grid), hrrr_fields (decoded variables).

Thin wiring over ``snoiq_assets.lib.hrrr``. Any bad input (truncated/corrupt GRIB, an .idx
that does not match its GRIB, a grid different from hrrr_grid, a missing variable) fails the
partition with a message naming partition, file, message number and expectation, and moves the
raw file (and its .idx) to ``quarantine/`` with a ``.reason.json``; other runs are unaffected.

Backfills: hrrr_raw and hrrr_fields have ``BackfillPolicy.single_run()``, so a range of hourly
partitions (``dagster asset materialize --partition-range A...B``, a UI backfill, or the
``dagster/asset_partition_range_start/end`` tags) runs as one step per asset that loops over
``context.partition_keys``. Within such a run every partition is processed even after one
fails; each bad file is quarantined with its reason, and the step then fails with one message
naming every failed partition. See each asset's docstring for what happens to the good
partitions of a failed run.
"""

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Literal, Optional

import dagster as dg

from snoiq_assets.defs.io_manager import IOManagerError, read_schema_metadata
from snoiq_assets.defs.partitions import HOURLY_KEY_FORMAT, hourly_partitions
from snoiq_assets.defs.resources import ObjectStoreResource
from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import (
    DEFAULT_ENGINE,
    decode_fields,
    find_messages,
    gunzip_grib,
    idx_text,
    parse_and_check_idx,
    scan_grib,
)
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


class HrrrFieldsConfig(HrrrSelectionConfig):
    # "cfgrib": xarray + cfgrib (the specified stack, default); "eccodes": direct ecCodes decode.
    # Same checks, same values; see hrrr_fields' docstring for the measured cost of each.
    engine: Literal["cfgrib", "eccodes"] = DEFAULT_ENGINE


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


def _quarantine(context, store: ObjectStore, key: str, exc: HrrrDataError, asset: str,
                partition: str | None) -> str:
    """Move a bad landed file (and its .idx) to quarantine/ with a reason; return where it went."""
    dest = store.quarantine(key, str(exc), asset=asset, partition=partition, **exc.details())
    if store.exists(key + ".idx"):
        store.quarantine(key + ".idx", f"companion of quarantined {key}: {exc}")
    context.log.error(f"{asset} {partition or ''}: {exc} -> moved to {dest}".replace("  ", " "))
    return dest


def _quarantine_and_fail(context, store: ObjectStore, key: str, exc: HrrrDataError, asset: str) -> dg.Failure:
    dest = _quarantine(context, store, key, exc, asset, None)
    return dg.Failure(
        description=f"{exc} (moved to {dest})",
        metadata={"file": key, "quarantined_to": dest, "message_number": exc.message_number or 0,
                  "expected": exc.expected or "", "problem": exc.problem},
    )


def _partition_failure_record(key: str, text: str, exc: HrrrDataError | None = None,
                              quarantined_to: str | None = None) -> dict:
    rec = {"file": key, "error": text, "quarantined_to": quarantined_to}
    if exc is not None:
        rec.update(message_number=exc.message_number, expected=exc.expected, problem=exc.problem)
    return rec


def _range_failure(asset: str, partition_keys: list[str], failures: dict[str, dict], done: list[str],
                   consequence: str) -> dg.Failure:
    """One Failure naming every failed partition of the run (in partition order)."""
    parts = [f"{asset} {pk}: {rec['error']}" + (f" (moved to {rec['quarantined_to']})" if rec["quarantined_to"] else "")
             for pk, rec in failures.items()]
    head = (f"{asset}: {len(failures)} of {len(partition_keys)} partitions failed "
            f"({', '.join(failures)}); {consequence}. " if len(partition_keys) > 1 else "")
    first = next(iter(failures.values()))
    return dg.Failure(
        description=head + "; ".join(parts),
        metadata={
            "failed_partitions": dg.MetadataValue.json(failures),
            "good_partitions": dg.MetadataValue.json(done),
            "file": first["file"], "quarantined_to": first["quarantined_to"] or "",
            "message_number": first.get("message_number") or 0,
            "expected": first.get("expected") or "", "problem": first.get("problem") or first["error"],
        },
    )


def _land_partition(obj: ObjectStore, config: HrrrRawConfig, variables, sources_fn, partition_key: str) -> dict:
    """Land (or validate the already-landed) GRIB of one partition; return its metadata.

    Raises ``HrrrDataError`` for a bad landed file (the caller quarantines it) and
    ``FetchError`` when no source could provide a valid subset (nothing is landed then).
    """
    run_time = run_time_of(partition_key)
    key = landing_key(run_time, config.forecast_hour)
    idx_key = key + ".idx"
    gunzipped = {}
    if not obj.exists(key) and obj.exists(key + ".gz"):   # landed gzip-compressed: decompress beside it
        with obj.local_path(key + ".gz") as src, obj.atomic_local_file(key) as dest:
            gunzipped = {"decompressed_from": key + ".gz", "compressed_bytes": src.stat().st_size,
                         "decompressed_bytes": gunzip_grib(src, dest, key + ".gz")}
    if obj.exists(key):
        with obj.local_path(key) as path:
            messages = scan_grib(path, key)
            if obj.exists(idx_key):
                parse_and_check_idx(obj.get(idx_key).decode(), messages, key)
                wrote_idx = False
            else:
                wrote_idx = True
            find_messages(messages, variables, config.forecast_hour, key, run_time)
            size, digest = path.stat().st_size, _sha256(path)
        if wrote_idx:
            obj.put(idx_key, idx_text(messages).encode())
        meta = {"source": "landed", "byte_ranges": [], "idx_written": wrote_idx, **gunzipped}
    else:
        remote = hrrr_key(run_time, config.forecast_hour)
        pattern = search_pattern(variables, config.forecast_hour)

        def validate(path: Path, idx: str) -> None:
            msgs = scan_grib(path, f"{remote} (fetched)")
            parse_and_check_idx(idx, msgs, f"{remote} (fetched)")
            find_messages(msgs, variables, config.forecast_hour, f"{remote} (fetched)", run_time)

        with obj.atomic_local_file(key) as path:
            result = fetch_subset(sources_fn(), remote, pattern, path, validate=validate)
        obj.put(idx_key, result.idx_text.encode())
        size, digest = result.size, result.sha256
        meta = {
            "source": result.source,
            "source_url": result.url,
            "byte_ranges": result.range_headers,
            "range_requests": len(result.ranges),
            "messages": result.idx_text.count("\n"),
            "fallback_errors": result.errors,
        }
    return {**meta, "key": key, "uri": obj.uri(key), "size_bytes": size, "sha256": digest}


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"s3", "grib"},
    description="HRRR wrfsfc GRIB2 subset (selected messages + its own .idx) landed in raw/hrrr/, fetched by "
    ".idx byte ranges from the NOAA archive, or taken as is when it already landed.",
)
def hrrr_raw(context: dg.AssetExecutionContext, config: HrrrRawConfig, store: ObjectStoreResource) -> dg.MaterializeResult:
    """Land every partition of the run (one, or a range in a single-run backfill).

    A partition whose landed file is bad is quarantined with its reason; one that no source
    can provide lands nothing. The other partitions of the run are still processed, then the
    step fails naming every failed partition. The good partitions' files stay landed in
    raw/hrrr/ (they were checked), but the failed run records no materialisation for any of
    them; re-running the range (or just those partitions) validates them as ``landed`` without
    fetching again.
    """
    obj = store.get_store()
    variables = resolve(config.variables)
    partition_keys = list(context.partition_keys)
    sources: list = []

    def sources_fn() -> list:   # built once per run, only if something must be fetched
        if not sources:
            sources.extend([build_source(s) for s in config.sources] if config.sources is not None
                           else default_sources())
        return sources

    landed: dict[str, dict] = {}
    failures: dict[str, dict] = {}
    for pk in partition_keys:
        key = landing_key(run_time_of(pk), config.forecast_hour)
        try:
            landed[pk] = _land_partition(obj, config, variables, sources_fn, pk)
        except HrrrDataError as exc:
            bad = key if obj.exists(key) else key + ".gz"   # a .grib2.gz gzip could not decompress
            dest = _quarantine(context, obj, bad, exc, "hrrr_raw", pk)
            failures[pk] = _partition_failure_record(bad, str(exc), exc, dest)
        except FetchError as exc:
            context.log.error(f"hrrr_raw {pk}: {exc}")
            failures[pk] = _partition_failure_record(key, str(exc))
    if failures:
        raise _range_failure("hrrr_raw", partition_keys, failures, list(landed),
                             "the good partitions' files stay landed but no materialisation is recorded; "
                             "re-run them (they are taken as landed)")

    common = {"forecast_hour": config.forecast_hour, "variables": dg.MetadataValue.json(list(config.variables))}
    if len(partition_keys) == 1:
        m = landed[partition_keys[0]]
        meta = {k: (dg.MetadataValue.json(v) if isinstance(v, list) else v) for k, v in m.items()}
        meta["uri"] = dg.MetadataValue.path(m["uri"])
        return dg.MaterializeResult(metadata={**meta, **common})
    return dg.MaterializeResult(metadata={
        **common,
        "partition_count": len(partition_keys),
        "partitions": dg.MetadataValue.json({pk: {k: m[k] for k in ("key", "source", "size_bytes", "sha256")}
                                             for pk, m in landed.items()}),
        "sources": dg.MetadataValue.json(sorted({m["source"] for m in landed.values()})),
        "size_bytes": sum(m["size_bytes"] for m in landed.values()),
        "range_requests": sum(m.get("range_requests", 0) for m in landed.values()),
        "uri": dg.MetadataValue.path(obj.uri(RAW_PREFIX.rstrip("/"))),
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


def _aggregate_stats(per_partition: dict[str, tuple[int, dict]]) -> dict[str, dict]:
    """Per variable over all partitions: min, max, cell-weighted mean of non-null cells, null count."""
    out: dict[str, dict] = {}
    for rows, stats in per_partition.values():
        for col, s in stats.items():
            agg = out.setdefault(col, {"min": None, "max": None, "sum": 0.0, "valid": 0, "null_count": 0})
            agg["null_count"] += s["null_count"]
            valid = rows - s["null_count"]
            if valid and s["mean"] is not None:
                agg["min"] = s["min"] if agg["min"] is None else min(agg["min"], s["min"])
                agg["max"] = s["max"] if agg["max"] is None else max(agg["max"], s["max"])
                agg["sum"] += s["mean"] * valid
                agg["valid"] += valid
    return {col: {"min": a["min"], "max": a["max"], "mean": a["sum"] / a["valid"] if a["valid"] else None,
                  "null_count": a["null_count"]} for col, a in out.items()}


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["hrrr_raw", "hrrr_grid"],
    kinds={"parquet"},
    description="Selected HRRR variables decoded to float32 columns, one row per grid cell in "
    "hrrr_grid order; units, grid_id, run/valid time and forecast hour in the schema metadata.",
)
def hrrr_fields(context: dg.AssetExecutionContext, config: HrrrFieldsConfig, store: ObjectStoreResource) -> dg.Output:
    """Decode every partition of the run (one, or a range in a single-run backfill).

    Returns ``{partition_key: pyarrow.Table}``; the IO manager writes one Parquet file per
    partition. Metadata: for one partition its run/valid time, source file and per-variable
    min/mean/max/null_count; for a range, ``partition_count``, per-partition run/valid time and
    source file (``partitions``), and per-variable stats aggregated over the range (min of
    mins, max of maxes, mean over every non-null cell, summed null counts).

    A bad partition (corrupt GRIB, wrong grid, missing variable...) is quarantined with its
    reason and the others are still decoded (so every bad file of the range is found in one
    run); then the step fails naming every failed partition. Nothing is written for any
    partition of that run, the good ones included: the IO manager writes only when the step
    succeeds. Re-run the range once the bad files are replaced (or run the good partitions).
    Memory: every decoded partition is held until the IO manager writes (about 7.6 MB per
    variable per partition on the CONUS grid), so keep single-run ranges to a few days.

    Decode engine (``config.engine``): ``"cfgrib"`` is the default, i.e. xarray + cfgrib, one
    ``open_dataset`` per level/step group with ``filter_by_keys``, failing naming any requested
    variable cfgrib does not return exactly once. ``"eccodes"`` decodes the same messages
    directly with ecCodes. Both run the same checks and give the same values (those of a direct
    ecCodes decode, missing points as nulls). Measured by benchmarks/bench_hrrr.py (10 variables,
    CONUS grid, median of 9 alternating rounds on a loaded 2-core machine, two runs, bare ecCodes
    decode 0.26-0.40 s): cfgrib 2.46-2.94x the bare decode, eccodes 1.29-1.30x (1.03-1.25x in
    earlier runs); peak RSS 422 MiB for either. cfgrib misses the 1.3x target: its OnDiskArray copies each field element
    by element into a NaN-filled array and it reads name/shortName/units per variable. Choose
    ``"eccodes"`` where decode time matters more than the specified stack.
    """
    obj = store.get_store()
    variables = resolve(config.variables)
    partition_keys = list(context.partition_keys)
    try:
        grid_md = read_schema_metadata(store, dg.AssetKey("hrrr_grid"), None)
    except (IOManagerError, KeyError, FileNotFoundError) as exc:
        raise dg.Failure(f"hrrr_fields: hrrr_grid is not materialised ({exc}); materialise it first") from None

    tables: dict = {}
    stats_by_pk: dict[str, tuple[int, dict]] = {}
    failures: dict[str, dict] = {}
    for pk in partition_keys:
        key = landing_key(run_time_of(pk), config.forecast_hour)
        if not obj.exists(key):
            failures[pk] = _partition_failure_record(key, f"{key} has not landed; materialise hrrr_raw first")
            continue
        idx = obj.get(key + ".idx").decode() if obj.exists(key + ".idx") else None
        try:
            with obj.local_path(key) as path:
                table, stats = decode_fields(path, variables, config.forecast_hour,
                                             expected_grid_id=grid_md["grid_id"], idx=idx, name=key,
                                             run_time=run_time_of(pk), engine=config.engine)
        except HrrrDataError as exc:
            dest = _quarantine(context, obj, key, exc, "hrrr_fields", pk)
            failures[pk] = _partition_failure_record(key, str(exc), exc, dest)
            continue
        tables[pk] = table
        stats_by_pk[pk] = (table.num_rows, stats)
    if failures:
        raise _range_failure("hrrr_fields", partition_keys, failures, list(tables),
                             "nothing is written for this run, the good partitions included "
                             "(the IO manager writes only on success)")

    mds = {pk: {k.decode(): v.decode() for k, v in t.schema.metadata.items()} for pk, t in tables.items()}
    first = mds[partition_keys[0]]
    meta: dict = {
        "grid_id": first["grid_id"], "forecast_hour": config.forecast_hour,
        "units": dg.MetadataValue.json(json.loads(first["units"])),
        "partition_count": len(partition_keys),
        "decode_engine": config.engine,
    }
    if len(partition_keys) == 1:
        meta.update(run_time=first["run_time"], valid_time=first["valid_time"],
                    source_key=landing_key(run_time_of(partition_keys[0]), config.forecast_hour))
    else:
        meta["partitions"] = dg.MetadataValue.json({
            pk: {"run_time": md["run_time"], "valid_time": md["valid_time"],
                 "source_key": landing_key(run_time_of(pk), config.forecast_hour)} for pk, md in mds.items()})
    for col, s in _aggregate_stats(stats_by_pk).items():
        for stat in ("min", "mean", "max"):
            meta[f"{col}/{stat}"] = dg.MetadataValue.float(s[stat]) if s[stat] is not None else dg.MetadataValue.null()
        meta[f"{col}/null_count"] = s["null_count"]
    return dg.Output({pk: tables[pk] for pk in partition_keys}, metadata=meta)
