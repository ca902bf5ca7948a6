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

import json
from typing import Literal, Optional

import dagster as dg

from snoiq_assets.defs.failures import StoreGoodThenFail, partial_failure
from snoiq_assets.defs.partitions import hourly_partitions
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.failures import PartialFailures
from snoiq_assets.lib.hours import hour_of
from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.decode import DEFAULT_ENGINE, scan_grib
from snoiq_assets.lib.hrrr.fetch import NOAA_BUCKET, FetchError, default_sources, source_from_config
from snoiq_assets.lib.hrrr.grid import grid_from_grib
from snoiq_assets.lib.hrrr.isolation import DecoderProcess
from snoiq_assets.lib.hrrr.landing import land_partition
from snoiq_assets.lib.hrrr.plausibility import bounds_for, check_plausible, problems
from snoiq_assets.lib.hrrr.rawkeys import RAW_PREFIX, gzip_key, idx_key, newest_landed_grib, partition_landing_key
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve
from snoiq_assets.lib.parquet import StoredParquet
from snoiq_assets.lib.storage import ObjectStore

GROUP = "hrrr"


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


def _quarantine(context, store: ObjectStore, key: str, exc: HrrrDataError, asset: str,
                partition: str | None) -> str:
    """Move a bad landed file (and its .idx) to quarantine/ with a reason; return where it went."""
    dest = store.quarantine(key, str(exc), asset=asset, partition=partition, **exc.details())
    if store.exists(idx_key(key)):
        store.quarantine(idx_key(key), f"companion of quarantined {key}: {exc}")
    context.log.error(f"{asset} {partition or ''}: {exc} -> moved to {dest}".replace("  ", " "))
    return dest


def _record_bad_file(failures: PartialFailures, pk: str, key: str, exc: HrrrDataError, dest: str) -> None:
    failures.add(pk, str(exc), file=key, quarantined_to=dest, message_number=exc.message_number or 0,
                 expected=exc.expected or "", problem=exc.problem)


def _quarantine_and_fail(context, store: ObjectStore, key: str, exc: HrrrDataError, asset: str) -> dg.Failure:
    dest = _quarantine(context, store, key, exc, asset, None)
    return dg.Failure(
        description=f"{exc} (moved to {dest})",
        metadata={"file": key, "quarantined_to": dest, "message_number": exc.message_number or 0,
                  "expected": exc.expected or "", "problem": exc.problem},
    )


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
    object_store = store.get_store()
    variables = resolve(config.variables)
    partition_keys = list(context.partition_keys)
    sources: list = []

    def sources_fn() -> list:   # built once per run, only if something must be fetched
        if not sources:
            sources.extend([source_from_config(**s.model_dump()) for s in config.sources]
                           if config.sources is not None else default_sources())
        return sources

    landed: dict[str, dict] = {}
    failures = PartialFailures("hrrr_raw", partition_keys)
    for pk in partition_keys:
        key = partition_landing_key(pk, config.forecast_hour)
        try:
            landed[pk] = land_partition(object_store, pk, config.forecast_hour, variables, sources_fn)
        except HrrrDataError as exc:
            bad = key if object_store.exists(key) else gzip_key(key)   # a .grib2.gz that would not decompress
            _record_bad_file(failures, pk, bad, exc, _quarantine(context, object_store, bad, exc, "hrrr_raw", pk))
        except FetchError as exc:
            context.log.error(f"hrrr_raw {pk}: {exc}")
            failures.add(pk, str(exc), file=key, quarantined_to="", problem=str(exc))
    if failures:
        raise partial_failure(failures, "the good partitions' files stay landed but no materialisation is recorded; "
                                        "re-run them (they are taken as landed)")

    common = {"forecast_hour": config.forecast_hour, "variables": dg.MetadataValue.json(list(config.variables)),
              "partition_count": len(partition_keys)}
    # Each partition's own file, source, size and digest (a range run shows every hour its own).
    for pk, m in landed.items():
        meta = {k: (dg.MetadataValue.json(v) if isinstance(v, list) else v) for k, v in m.items()}
        meta["uri"] = dg.MetadataValue.path(m["uri"])
        context.add_asset_metadata(meta, partition_key=pk)
    return dg.MaterializeResult(metadata=common)


@dg.asset(
    group_name=GROUP,
    deps=[dg.AssetDep("hrrr_raw", partition_mapping=dg.AllPartitionMapping())],
    kinds={"parquet"},
    description="The model grid from the first message of a landed GRIB: y, x, latitude, longitude per cell "
    "(row-major), with grid_id, shape and projection in the schema metadata.",
)
def hrrr_grid(context: dg.AssetExecutionContext, config: HrrrGridConfig, store: ObjectStoreResource) -> dg.Output:
    object_store = store.get_store()
    key = config.source_key or newest_landed_grib(info.key for info in object_store.list(RAW_PREFIX))
    if key is None:
        raise dg.Failure(f"hrrr_grid: no GRIB2 file under {RAW_PREFIX}; materialise hrrr_raw first")
    try:
        with object_store.local_path(key) as path:
            scan_grib(path, key)
            grid = grid_from_grib(path)
    except HrrrDataError as exc:
        raise _quarantine_and_fail(context, object_store, key, exc, "hrrr_grid") from None
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
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["hrrr_raw"],
    ins={"hrrr_grid": dg.AssetIn()},
    kinds={"parquet"},
    check_specs=[dg.AssetCheckSpec(
        "values_plausible", asset="hrrr_fields", blocking=True,
        description="Every decoded variable within its physical bounds (lib/hrrr/plausibility.py), "
        "null share within the limit; implausible partitions are quarantined before anything is written.")],
    description="Selected HRRR variables decoded to float32 columns, one row per grid cell in "
    "hrrr_grid order; units, grid_id, run/valid time and forecast hour in the schema metadata.",
)
def hrrr_fields(context: dg.AssetExecutionContext, config: HrrrFieldsConfig, store: ObjectStoreResource,
                hrrr_grid: StoredParquet):
    """Decode every partition of the run (one, or a range in a single-run backfill).

    Returns ``{partition_key: pyarrow.Table}``; the IO manager writes one Parquet file per
    partition. Metadata: each partition's materialisation has its own run/valid time, source
    file and per-variable min/mean/max/null_count (also in a range run); grid id, units and
    ``partition_count`` are the run's.

    Decoding runs in a child process (``lib/hrrr/isolation.py``), one per step, reused for every
    partition: a corrupt message that makes ecCodes abort or segfault fails only its partition,
    with the usual error naming the file and ecCodes' message. Measured (bench_hrrr.py, loaded
    machine): 1.03x the in-process ecCodes engine (+41 ms per partition), 1.08x for cfgrib,
    plus the child's start once per step. Each decoded partition must be physically plausible
    (``lib/hrrr/plausibility.py``) before anything is written.

    A bad partition (corrupt GRIB, ecCodes crash, implausible values, wrong grid, missing
    variable...) is quarantined with its reason and the others are still decoded (so every bad
    file of the range is found in one run); then the good partitions are written and recorded
    as materialised, one by one, and the step fails naming every failed partition. Re-run the
    failed partitions once their files are replaced.
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
    object_store = store.get_store()
    variables = resolve(config.variables)
    partition_keys = list(context.partition_keys)
    grid_id = hrrr_grid.metadata().get("grid_id")
    if not grid_id:
        raise dg.Failure("hrrr_fields: hrrr_grid has no grid_id in its Parquet metadata; rematerialise it")

    tables: dict = {}
    stats_by_pk: dict[str, tuple[int, dict]] = {}
    failures = PartialFailures("hrrr_fields", partition_keys)
    with DecoderProcess() as decoder:
        for pk in partition_keys:
            key = partition_landing_key(pk, config.forecast_hour)
            if not object_store.exists(key):
                failures.add(pk, f"{key} has not landed; materialise hrrr_raw first", file=key, quarantined_to="")
                continue
            idx = object_store.get(idx_key(key)).decode() if object_store.exists(idx_key(key)) else None
            try:
                with object_store.local_path(key) as path:
                    table, stats = decoder.decode_fields(path, variables, config.forecast_hour,
                                                         expected_grid_id=grid_id, idx=idx, name=key,
                                                         run_time=hour_of(pk), engine=config.engine)
                check_plausible(stats, table.num_rows, config.forecast_hour, key)
            except HrrrDataError as exc:
                _record_bad_file(failures, pk, key, exc, _quarantine(context, object_store, key, exc, "hrrr_fields", pk))
                continue
            tables[pk] = table
            stats_by_pk[pk] = (table.num_rows, stats)
    if failures:
        # The good partitions are real data: the IO manager stores them and records each as
        # materialised, then fails the step, so lake and catalogue agree and only the failed
        # hours are retried.
        yield dg.Output(StoreGoodThenFail(tables, partial_failure(failures, "the good partitions are written "
                                                                             "and recorded")))
        return

    mds = {pk: {k.decode(): v.decode() for k, v in t.schema.metadata.items()} for pk, t in tables.items()}
    first = mds[partition_keys[0]]
    meta: dict = {
        "grid_id": first["grid_id"], "forecast_hour": config.forecast_hour,
        "units": dg.MetadataValue.json(json.loads(first["units"])),
        "partition_count": len(partition_keys),
        "decode_engine": config.engine,
    }
    # Each partition's own times, source and statistics (a range run shows every hour its own).
    for pk, md in mds.items():
        per: dict = {"run_time": md["run_time"], "valid_time": md["valid_time"],
                     "source_key": partition_landing_key(pk, config.forecast_hour)}
        for col, s in stats_by_pk[pk][1].items():
            for stat in ("min", "mean", "max"):
                per[f"{col}/{stat}"] = (dg.MetadataValue.float(round(float(s[stat]), 3)) if s[stat] is not None
                                        else dg.MetadataValue.null())
            per[f"{col}/null_count"] = s["null_count"]
        context.add_asset_metadata(per, partition_key=pk)
    yield dg.Output({pk: tables[pk] for pk in partition_keys}, metadata=meta)
    # Re-evaluated on exactly what was written (an implausible partition never gets here).
    found = {pk: problems(st, rows, config.forecast_hour) for pk, (rows, st) in stats_by_pk.items()}
    found = {pk: p for pk, p in found.items() if p}
    yield dg.AssetCheckResult(
        check_name="values_plausible", passed=not found,
        description=f"{len(tables) - len(found)} of {len(tables)} partition(s) within the physical bounds",
        metadata={"bounds": dg.MetadataValue.json(bounds_for([v.column for v in variables], config.forecast_hour)),
                  "implausible": dg.MetadataValue.json(found)})
