"""HRRR assets: hrrr_raw (landing), hrrr_grid (model grid), hrrr_fields (decoded variables) and,
from the same step, hrrr_station_windows (each lead at the station windows' cells only).

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
from dataclasses import dataclass
from typing import Literal, Optional

import dagster as dg
import pyarrow as pa

from snoiq_assets.defs.failures import StoreGoodThenFail, partial_failure
from snoiq_assets.defs.metadata import round_float
from snoiq_assets.defs.partitions import hourly_partitions
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.failures import PartialFailures
from snoiq_assets.lib.features.station_windows import take_windows, window_cells
from snoiq_assets.lib.hours import hour_of
from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.cycle import cycle_completeness, decode_cycle, land_cycle
from snoiq_assets.lib.hrrr.decode import DEFAULT_ENGINE, scan_grib
from snoiq_assets.lib.hrrr.fetch import NOAA_BUCKET, default_sources, source_from_config
from snoiq_assets.lib.hrrr.grid import grid_from_grib
from snoiq_assets.lib.hrrr.isolation import DecoderProcess, shared_decoder
from snoiq_assets.lib.hrrr.leads import HRRR_SCHEDULE, LeadError
from snoiq_assets.lib.hrrr.plausibility import bounds_for, problems
from snoiq_assets.lib.hrrr.rawkeys import RAW_PREFIX, idx_key, newest_landed_grib, partition_landing_key
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve
from snoiq_assets.lib.parquet import LeadFrames, ParquetSpill, StoredParquet
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
    timeout_s: float = 20.0                # per request; retries with backoff: lib/hrrr/multifetch.py


class HrrrSelectionConfig(dg.Config):
    leads: Optional[list[int]] = [0]
    """Forecast hours to process for each cycle of the run. ``null``: every lead of the HRRR
    schedule for that cycle (f00-f18, f00-f48 at 00/06/12/18Z, ``lib/hrrr/leads.HRRR_SCHEDULE``),
    what ``hrrr_hourly_fetch`` asks for. The default, f00 only, keeps a UI or CLI materialisation
    from fetching 19-49 files unasked; set a subset to backfill just those leads. A lead outside
    the schedule fails the run naming it."""
    variables: list[str] = list(DEFAULT_VARIABLES)

    def leads_for(self, partition_key: str) -> list[int]:
        try:
            return HRRR_SCHEDULE.select(hour_of(partition_key), self.leads)
        except LeadError as exc:
            raise dg.Failure(f"{partition_key}: {exc}") from None


class HrrrFieldsConfig(HrrrSelectionConfig):
    # "eccodes" (default): direct ecCodes decode, messages in parallel threads; "cfgrib": xarray +
    # cfgrib. Same checks, same values; see hrrr_fields' docstring for the measured cost of each.
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

    per_cycle: dict[str, dict] = {}
    failures = PartialFailures("hrrr_raw", partition_keys)
    for pk in partition_keys:
        leads = config.leads_for(pk)
        landing = land_cycle(object_store, hour_of(pk), leads, variables, sources_fn)
        for line in landing.retries:
            context.log.warning(f"hrrr_raw {pk}: {line}")
        quarantined = {}
        for fh in landing.failed:
            outcome = landing.leads[fh]
            if outcome.bad_file is not None:
                quarantined[f"f{fh:02d}"] = _quarantine(context, object_store, outcome.key, outcome.bad_file, "hrrr_raw", pk)
            else:
                context.log.error(f"hrrr_raw {pk} f{fh:02d}: {outcome.error}")
        per_cycle[pk] = {
            "landed_leads": landing.landed,
            "missing_leads": [fh for fh in landing.failed if landing.leads[fh].bad_file is None],
            "quarantined": quarantined,
            "errors": {f"f{fh:02d}": landing.leads[fh].error for fh in landing.failed},
            "leads": {f"f{fh:02d}": landing.leads[fh].meta for fh in landing.landed},
            "keys": [landing.leads[fh].key for fh in landing.landed],
        }
        if not landing.landed:
            first = landing.leads[landing.failed[0]]
            why = first.error if len(landing.failed) == 1 else f"no lead of cycle {pk} landed: " + "; ".join(
                f"f{fh:02d}: {landing.leads[fh].error}" for fh in landing.failed)
            bad = first.bad_file
            failures.add(pk, why, file=first.key, quarantined_to=quarantined.get(f"f{first.forecast_hour:02d}", ""),
                         **({"message_number": bad.message_number or 0, "expected": bad.expected or "",
                             "problem": bad.problem} if bad is not None else {"problem": why}))
    if failures:
        raise partial_failure(failures, "the landed leads stay in raw/hrrr/ but no materialisation is recorded; "
                                        "re-run them (they are taken as landed)")
    # Each cycle's own leads, files, sources, sizes and digests (a range run shows every cycle its own).
    for pk, c in per_cycle.items():
        landed = c["leads"]
        meta = {"leads_landed": dg.MetadataValue.json(c["landed_leads"]),
                "leads_missing": dg.MetadataValue.json(c["missing_leads"]),
                "quarantined": dg.MetadataValue.json(c["quarantined"]),
                "errors": dg.MetadataValue.json(c["errors"]),
                "leads": dg.MetadataValue.json(landed),
                "sources": dg.MetadataValue.json(sorted({m["source"] for m in landed.values()})),
                "size_bytes": sum(m["size_bytes"] for m in landed.values()),
                "range_requests": sum(m.get("range_requests", 0) for m in landed.values()),
                "uri": dg.MetadataValue.path(object_store.uri(c["keys"][0]) if len(c["keys"]) == 1
                                             else object_store.uri(c["keys"][0].rsplit("/", 1)[0]))}
        if len(landed) == 1:   # one file: its landing record on its own rows (source, ranges, size, digest)
            (record,) = landed.values()
            meta.update({k: (dg.MetadataValue.json(v) if isinstance(v, list) else v) for k, v in record.items()})
            meta["key"] = c["keys"][0]
        context.add_asset_metadata(meta, partition_key=pk)
    return dg.MaterializeResult(metadata={
        "variables": dg.MetadataValue.json(list(config.variables)),
        "partition_count": len(partition_keys),
    })


@dg.asset_check(asset="hrrr_raw", partitions_def=hourly_partitions,
                description="Every expected message (the variables hrrr_raw last landed) of every scheduled "
                            "lead of the cycle has landed (f00-f18, f00-f48 at 00/06/12/18Z); names the missing "
                            "leads and messages. "
                            "hrrr_hourly_fetch asks for the missing leads again on its next ticks.")
def hrrr_leads_complete(context: dg.AssetCheckExecutionContext, store: ObjectStoreResource) -> dg.AssetCheckResult:
    raw = store.get_store()
    # the messages expected are those of the variables hrrr_raw last landed (default: all ten)
    last = context.instance.get_latest_materialization_event(dg.AssetKey("hrrr_raw"))
    landed_vars = last.asset_materialization.metadata.get("variables") if last and last.asset_materialization else None
    variables = resolve(landed_vars.value if landed_vars is not None else list(DEFAULT_VARIABLES))
    reports = [cycle_completeness(raw, hour_of(pk), HRRR_SCHEDULE.leads_for(hour_of(pk)), variables)
               for pk in context.partition_keys]
    incomplete = [r for r in reports if not r.complete]
    return dg.AssetCheckResult(
        passed=not incomplete,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(r.describe() for r in (incomplete or reports)),
        metadata={"cycles": dg.MetadataValue.json([r.as_dict() for r in reports]),
                  "missing_leads": dg.MetadataValue.json({f"{r.run_time:%Y-%m-%dT%H}": r.missing_leads
                                                          for r in incomplete})},
    )


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


FIELDS_KEY = dg.AssetKey("hrrr_fields")
WINDOWS_KEY = dg.AssetKey("hrrr_station_windows")
INDEX_KEY = dg.AssetKey("station_grid_index")


@dataclass(frozen=True)
class _NotStored:
    """A lead decoded for its station windows only (hrrr_fields itself not selected)."""
    num_rows: int
    schema: pa.Schema


@dg.multi_asset(
    name="hrrr_fields",
    group_name=GROUP,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["hrrr_raw"],
    ins={"hrrr_grid": dg.AssetIn(),
         # only for the windows; a step may decode before any station list exists
         "station_grid_index": dg.AssetIn(metadata={"allow_missing_partitions": True})},
    outs={
        "hrrr_fields": dg.AssetOut(
            kinds={"parquet"}, is_required=False,
            description="Selected HRRR variables decoded to float32 columns, one row per grid cell in "
            "hrrr_grid order, one file per lead of the cycle (`lake/hrrr_fields/<cycle>/fFF.parquet`); accumulations "
            "as given plus their hourly amounts; units, grid_id, run/valid time, forecast hour and fields_version "
            "in the schema metadata."),
        "hrrr_station_windows": dg.AssetOut(
            kinds={"parquet"}, is_required=False,
            description="Each lead's values at only the grid cells of the stations' windows (station_grid_index), "
            "taken as the lead is decoded: a `cell` column and every column of hrrr_fields, one file per lead. "
            "grid_join_features reads these (a few thousand cells) instead of the whole grid when they match the "
            "stored lead (fields_version) and the current station list."),
    },
    internal_asset_deps={"hrrr_fields": {dg.AssetKey("hrrr_raw"), dg.AssetKey("hrrr_grid")},
                         "hrrr_station_windows": {FIELDS_KEY, INDEX_KEY}},
    can_subset=True,
    check_specs=[dg.AssetCheckSpec(
        "values_plausible", asset="hrrr_fields", blocking=True,
        description="Every decoded variable of every lead within its physical bounds (lib/hrrr/plausibility.py), "
        "null share within the limit; implausible leads are quarantined before anything is written.")],
)
def hrrr_fields(context: dg.AssetExecutionContext, config: HrrrFieldsConfig, store: ObjectStoreResource,
                hrrr_grid: StoredParquet, station_grid_index: StoredParquet):
    """Decode every lead of every cycle partition of the run (one, or a range in a single-run backfill).

    Returns ``{partition_key: LeadFrames}``; the IO manager writes one Parquet file per lead
    (``lake/hrrr_fields/<cycle>/fFF.parquet``). The same step takes each lead's station windows
    while the lead is in memory (``hrrr_station_windows``, ``lib/features/station_windows.py``),
    when a ``station_grid_index`` on this grid is stored; without one it says so and writes none
    (``grid_join_features`` then reads the whole leads). Either output may be materialised
    alone: the windows alone decode the leads again (same ``fields_version`` when the file is
    the same), e.g. after the station list changed. Metadata: each cycle's materialisation has its
    own leads (valid time and source file of each), quarantined leads and per-variable
    min/mean/max/null_count of each lead (also in a range run); grid id, units and counts are the run's.

    Each lead decodes on its own in a child process (``lib/hrrr/isolation.py``), one per step,
    reused for every lead: a corrupt message that makes ecCodes abort or segfault fails only its
    lead, with the usual error naming the file and ecCodes' message. Each decoded lead must be
    physically plausible (``lib/hrrr/plausibility.py``) before anything is written; then its
    accumulations get their hourly amounts (``lib/hrrr/accum.py``).

    A bad lead (corrupt GRIB, ecCodes crash, implausible values, an accumulation window that does
    not match its lead, a ``.idx`` listing a message the file lacks, wrong grid, missing
    variable...) is quarantined with its reason and every other lead and cycle is still decoded;
    then the good leads are written and their cycles recorded as materialised, and the step fails
    naming every failed lead. A lead that has not landed yet is no failure (the archive publishes
    a cycle's leads over about an hour; ``hrrr_leads_complete`` names it), unless no lead of the
    cycle has. Memory: each lead is encoded to Parquet in a local spill folder
    (``ObjectStore.spill_folder``: inside the local lake's folder, so storing it is a rename)
    as soon as it is decoded, on a thread while the next lead decodes, and released; a run holds
    a few leads (about 7.6 MB per variable each on the CONUS grid), not all of them, so a
    single-run range of a day of cycles x every lead fits a worker
    (benchmarks/bench_memory.py); its spill files take the disk the lake files will.

    Decode engine (``config.engine``): ``"eccodes"`` is the default: the messages decoded
    directly by ecCodes in parallel threads, one per core (cffi releases the GIL while ecCodes
    unpacks), inside the same crash-isolating child. ``"cfgrib"`` decodes them through xarray +
    cfgrib, one ``open_dataset`` per level/step group with ``filter_by_keys``, failing naming any
    requested variable cfgrib does not return exactly once; its reads are serialised under one
    lock. Both run the same checks and give the same values (those of a direct ecCodes decode,
    missing points as nulls). For an ``xarray.Dataset`` of a landed file or a stored partition
    see ``lib/hrrr/dataset.py``. Measured cost of each: benchmarks/bench_hrrr.py and the README.
    """
    object_store = store.get_store()
    variables = resolve(config.variables)
    partition_keys = list(context.partition_keys)
    grid_id = hrrr_grid.metadata().get("grid_id")
    if not grid_id:
        raise dg.Failure("hrrr_fields: hrrr_grid has no grid_id in its Parquet metadata; rematerialise it")
    want_fields = FIELDS_KEY in context.selected_asset_keys
    check_key = dg.AssetCheckKey(FIELDS_KEY, "values_plausible")
    cells, index_hash = (_station_window_cells(context, station_grid_index, grid_id)
                         if WINDOWS_KEY in context.selected_asset_keys else (None, ""))

    outputs: dict[str, LeadFrames] = {}
    windows: dict[str, LeadFrames] = {}
    checked: dict[str, tuple[int, dict]] = {}   # "<cycle> fFF": (rows, stats found plausible)
    per_cycle: dict[str, dict] = {}
    wanted_by_pk = {pk: config.leads_for(pk) for pk in partition_keys}
    failures = PartialFailures("hrrr_fields", [f"{pk} f{fh:02d}" for pk in partition_keys for fh in wanted_by_pk[pk]],
                               what="leads")
    # Each lead is encoded to Parquet in a spill folder as soon as it is decoded (on a thread,
    # while the next lead decodes) and released, so a run of a day of cycles x 19 leads holds
    # a few leads in memory, not all of them; the IO manager then only moves the files in.
    # The windows (~100 KB a lead) are encoded on a spill of their own, so that they never wait
    # behind a whole-grid lead's encoding.
    with object_store.spill_folder() as spill_folder:
        sync = object_store.adopts_by_rename
        with ParquetSpill(spill_folder, sync=sync) as spill, \
                ParquetSpill(spill_folder, ahead=8, threads=1, sync=sync, name_prefix="windows-") as windows_spill, \
                shared_decoder() as decoder:
            def keep(table: pa.Table, pk: str):
                """A decoded, plausible lead: its station windows taken, then spilled to Parquet."""
                if cells is not None:
                    windows.setdefault(pk, LeadFrames())[int(table.schema.metadata[b"forecast_hour"])] = \
                        windows_spill.add(take_windows(table, cells, index_hash))
                return spill.add(table) if want_fields else _NotStored(table.num_rows, table.schema)

            for pk in partition_keys:
                run_time = hour_of(pk)
                wanted = wanted_by_pk[pk]
                landed = [fh for fh in wanted if object_store.exists(partition_landing_key(pk, fh))]
                # the hour before the run's first lead, decoded again from its GRIB for the first
                # lead's hourly accumulations (it may have been decoded by an earlier run)
                decoded = decode_cycle(object_store, run_time, landed, variables, decoder, expected_grid_id=grid_id,
                                       engine=config.engine, keep=lambda table, pk=pk: keep(table, pk),
                                       previous_lead=lambda fh: _previous_lead(object_store, decoder, run_time, fh,
                                                                              variables, grid_id))
                quarantined = {}
                for fh, exc in decoded.errors.items():
                    key = partition_landing_key(pk, fh)
                    if isinstance(exc, HrrrDataError):
                        dest = _quarantine(context, object_store, key, exc, "hrrr_fields", pk)
                        quarantined[f"f{fh:02d}"] = dest
                        _record_bad_file(failures, f"{pk} f{fh:02d}", key, exc, dest)
                    else:   # vanished between listing and decoding
                        failures.add(f"{pk} f{fh:02d}", exc, file=key, quarantined_to="")
                per_cycle[pk] = {"leads": sorted(decoded.tables), "not_landed": [fh for fh in wanted if fh not in landed],
                                 "quarantined": quarantined}
                if not landed:
                    failures.add(pk, f"no lead of {wanted} has landed; materialise hrrr_raw first",
                                 file=partition_landing_key(pk, wanted[0]), quarantined_to="")
                if decoded.tables:
                    outputs[pk] = LeadFrames(decoded.tables)
                for fh in decoded.tables:
                    checked[f"{pk} f{fh:02d}"] = (decoded.tables[fh].num_rows, decoded.checked[fh])
                # Each cycle's own leads, times, sources and statistics (a range run shows every cycle its own).
                if decoded.tables and want_fields:
                    context.add_asset_metadata(_cycle_metadata(pk, decoded, quarantined, per_cycle[pk]),
                                               asset_key=FIELDS_KEY, partition_key=pk)
        windows_metadata = {"station_index_hash": index_hash, "window_cells": int(cells.size) if cells is not None else 0}
        if failures:
            failure = partial_failure(failures, "the good leads are written and their cycles recorded")
            # The good leads are real data: the IO manager stores them (and their windows) and
            # records their cycles as materialised, then fails the step, so lake and catalogue
            # agree and only the failed leads are retried.
            if want_fields:
                yield dg.Output(StoreGoodThenFail(outputs, failure, also={WINDOWS_KEY: windows}), "hrrr_fields")
            else:
                yield dg.Output(StoreGoodThenFail(windows, failure), "hrrr_station_windows")
            return

        if want_fields:
            first_table = next(iter(outputs[partition_keys[0]].values()))
            first = {k.decode(): v.decode() for k, v in first_table.schema.metadata.items()}
            yield dg.Output({pk: outputs[pk] for pk in partition_keys}, "hrrr_fields", metadata={
                "grid_id": first["grid_id"],
                "units": dg.MetadataValue.json(json.loads(first["units"])),
                "partition_count": len(partition_keys),
                "lead_count": sum(len(c["leads"]) for c in per_cycle.values()),
                "decode_engine": config.engine,
                # Parquet encoding and, locally, flushing (summed over the spill's threads) while decoding went on; the wait is what it
                # added to the step (benchmarks/bench_leadtimes.py reports both)
                "parquet_encode_s": round(spill.encode_s, 3),
                "parquet_encode_wait_s": round(spill.wait_s, 3),
            })
        if cells is not None:
            yield dg.Output({pk: windows[pk] for pk in partition_keys}, "hrrr_station_windows",
                            metadata=windows_metadata)
        if check_key in context.selected_asset_check_keys:
            # Re-evaluated on exactly what was found plausible (an implausible lead never gets here).
            found = {unit: p for unit, (rows, st) in checked.items() if (p := problems(st, rows, int(unit[-2:])))}
            yield dg.AssetCheckResult(
                check_name="values_plausible", asset_key=FIELDS_KEY, passed=not found,
                description=f"{len(checked) - len(found)} of {len(checked)} lead(s) within the physical bounds",
                metadata={"bounds": dg.MetadataValue.json({f"f{fh:02d}": bounds_for([v.column for v in variables], fh)
                                                           for fh in sorted({int(u[-2:]) for u in checked})}),
                          "implausible": dg.MetadataValue.json(found)})


def _station_window_cells(context: dg.AssetExecutionContext, index: StoredParquet, grid_id: str):
    """(window cells, index inputs_hash) of the stored station_grid_index, or (None, "") with a
    warning when there is none on this grid: the windows are then not written and the grid join
    reads whole leads, which gives the same features."""
    if not index:
        context.log.warning("hrrr_station_windows not written: no station_grid_index is stored yet; "
                            "grid_join_features will read the whole leads")
        return None, ""
    meta = index.metadata()
    if meta.get("grid_id") != grid_id:
        context.log.warning(f"hrrr_station_windows not written: station_grid_index was built on grid "
                            f"{meta.get('grid_id', '?')[:16]}, these fields are on {grid_id[:16]}; "
                            "rematerialise station_grid_index")
        return None, ""
    return window_cells(index.read()), meta.get("inputs_hash", "")


def _cycle_metadata(pk: str, decoded, quarantined: dict, cycle: dict) -> dict:
    """One cycle's materialisation metadata: each lead's valid time, source and statistics."""
    leads = {}
    for fh, table in decoded.tables.items():
        per: dict = {"valid_time": table.schema.metadata[b"valid_time"].decode(),
                     "source_key": partition_landing_key(pk, fh)}
        for col, s in decoded.stats[fh].items():
            per[col] = {stat: (round_float(float(s[stat])) if s[stat] is not None else None)
                        for stat in ("min", "mean", "max")} | {"null_count": s["null_count"]}
        leads[f"f{fh:02d}"] = per
    fh0 = min(decoded.tables)
    meta = {"run_time": hour_of(pk).isoformat(), "valid_time": leads[f"f{fh0:02d}"]["valid_time"],
            "source_key": partition_landing_key(pk, fh0), "leads": dg.MetadataValue.json(leads),
            "lead_count": len(leads), "not_landed": dg.MetadataValue.json(cycle["not_landed"]),
            "quarantined": dg.MetadataValue.json(quarantined)}
    if len(leads) == 1:   # one lead: its statistics on their own rows, as the UI plots them over partitions
        for col, s in decoded.stats[fh0].items():
            for stat in ("min", "mean", "max"):
                meta[f"{col}/{stat}"] = (dg.MetadataValue.float(round_float(float(s[stat]))) if s[stat] is not None
                                         else dg.MetadataValue.null())
            meta[f"{col}/null_count"] = s["null_count"]
    return meta


def _previous_lead(raw: ObjectStore, decoder: DecoderProcess, run_time, forecast_hour: int, variables, grid_id: str):
    """Lead ``forecast_hour``'s accumulations decoded from its landed GRIB, or None if it has not
    landed or fails (the next lead's hourly amounts are then null until a run covers both)."""
    from snoiq_assets.lib.hrrr.accum import accumulated

    accs = accumulated(variables)
    if not accs:
        return None
    previous = decode_cycle(raw, run_time, [forecast_hour], accs, decoder, expected_grid_id=grid_id, engine="eccodes")
    return previous.tables.get(forecast_hour)
