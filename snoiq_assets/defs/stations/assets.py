"""Station assets: ``station_metadata``, ``observations_raw``, ``observations_clean`` +
``observations_rejects``, ``outcome_of_interest`` + ``outcome_rejects`` (group "stations").

Partitions: ``station_file_partitions`` (dynamic "station_files"), key = the station id of the
landed file ``raw/observations/<station_id>.csv|txt``; ``outcome_location_partitions``
(dynamic "outcome_locations"), key = ``<location>`` of ``raw/outcomes/<location>.csv|parquet``.
``register_station_files`` / ``register_outcome_files`` add the partitions for landed files
(a sensor calls them); a file with an unsafe name is quarantined, never turned into a key.

``observations_raw`` holds every field of the source in its own units (its columns depend on
the format, so read it one partition at a time), with ``line_no`` and ``parse_error``.
A file that cannot be read at all (unknown format, not UTF-8, wrong header, no readable line)
is moved to ``quarantine/`` with a reason and the partition's run fails with that reason;
other partitions are unaffected. Row-level problems become rejects and the raw file stays.

The clean tables are write-audit-publish: their rejects are written first (the record of what
failed), the clean table goes to staging, and only if its reject share is within
``max_reject_share`` (the blocking ``*_reject_share`` check, evaluated here) is it published
into the lake, where downstream assets read it. A refused table is never readable as good.
"""


import dagster as dg
import polars as pl

from snoiq_assets.defs.failures import Audited
from snoiq_assets.defs.partitions import outcome_location_partitions, station_file_partitions
from snoiq_assets.defs.stations.checks import CleanTableConfig, reject_share_result, reject_share_spec
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.columns import COLUMNS_AS_LANDED
from snoiq_assets.lib.keys import UnsafeNameError
from snoiq_assets.lib.stations import metadata as md
from snoiq_assets.lib.stations import outcomes as oc
from snoiq_assets.lib.stations import parsers, validate
from snoiq_assets.lib.stations.units import station_place, unit_problems
from snoiq_assets.lib.stations.formats import Format, StationFileError, decode_utf8, detect_format
from snoiq_assets.lib.stations.rawkeys import (
    EXTRA_METADATA_KEY,
    OBSERVATIONS_PREFIX,
    OUTCOMES_PREFIX,
    location_for_raw_key,
    outcome_key_candidates,
    partition_for_raw_key,
    raw_key_candidates,
    RWIS_SITES_KEY,
    USCRN_STATIONS_KEY,
)
from snoiq_assets.lib.storage import ObjectStore

GROUP = "stations"


def _register(instance: dg.DagsterInstance, store: ObjectStore, prefix: str, to_key, pdef_name: str) -> list[str]:
    found: list[str] = []
    for info in store.list(prefix):
        try:
            found.append(to_key(info.key))
        except UnsafeNameError as exc:
            store.quarantine(info.key, f"unsafe file name: {exc}")
    found = sorted(set(found))
    existing = set(instance.get_dynamic_partitions(pdef_name))
    new = [k for k in found if k not in existing]
    if new:
        instance.add_dynamic_partitions(pdef_name, new)
    return new


def register_station_files(instance: dg.DagsterInstance, store: ObjectStore) -> list[str]:
    """Add a ``station_files`` partition for every landed station file; return the new keys.

    Files whose names are not safe identifiers are moved to ``quarantine/`` with the reason.
    """
    return _register(instance, store, OBSERVATIONS_PREFIX, partition_for_raw_key, station_file_partitions.name)


def register_outcome_files(instance: dg.DagsterInstance, store: ObjectStore) -> list[str]:
    """Same for ``raw/outcomes/<location>.csv|parquet`` and ``outcome_locations``."""
    return _register(instance, store, OUTCOMES_PREFIX, location_for_raw_key, outcome_location_partitions.name)


def _find(store: ObjectStore, candidates: list[str], what: str) -> str:
    present = [k for k in candidates if store.exists(k)]
    if not present:
        raise dg.Failure(description=f"no landed file for {what}: looked for {candidates}")
    if len(present) > 1:
        raise dg.Failure(description=f"{what} has more than one landed file {present}; keep one")
    return present[0]


def load_native(store: ObjectStore, station_id: str) -> tuple[str, Format, pl.DataFrame]:
    """Parse a station's landed file; on a file-level error quarantine it and raise Failure."""
    key = _find(store, raw_key_candidates(station_id), f"station {station_id!r}")
    try:
        fmt, native = parsers.parse_native(store.get(key), key)
    except StationFileError as exc:
        dest = store.quarantine(key, str(exc), line=exc.line, column=exc.column)
        raise dg.Failure(description=f"{exc} (moved to {dest})", metadata={"quarantined": dest}) from None
    return key, fmt, native


@dg.asset(
    group_name=GROUP,
    partitions_def=station_file_partitions,
    description="Every field of a landed station file, in its own units, one row per line (line_no, parse_error).",
    metadata={COLUMNS_AS_LANDED: "the landed station file"},   # its columns are the source's fields
)
def observations_raw(context: dg.AssetExecutionContext, store: ObjectStoreResource) -> pl.DataFrame:
    object_store = store.get_store()
    station_id = context.partition_key
    key, fmt, native = load_native(object_store, station_id)
    context.add_output_metadata({
        "source_key": key, "source_format": fmt.value,
        "unreadable_lines": int(native["parse_error"].is_not_null().sum()),
    })
    return native


@dg.multi_asset(
    group_name=GROUP,
    partitions_def=station_file_partitions,
    outs={
        "observations_clean": dg.AssetOut(description="Clean schema (SI units); failing values nulled."),
        "observations_rejects": dg.AssetOut(description="Every validation failure: station, timestamp, column, value, rule, reason."),
    },
    ins={"observations_raw": dg.AssetIn()},
    check_specs=[reject_share_spec("observations", "observations_clean")],
)
def observations_clean(context: dg.AssetExecutionContext, config: CleanTableConfig, observations_raw: pl.DataFrame,
                       store: ObjectStoreResource):
    station_id = context.partition_key
    fmt = Format(observations_raw["source_format"][0])
    frame = parsers.to_clean(observations_raw, fmt, station_id)
    # A file in other units than its format says passes the per-value range rule (a January
    # at 31 "°C"): judged as a whole first, against the station's place, and quarantined with
    # the reason.
    object_store = store.get_store()
    try:
        lists = md.build_station_metadata(*_station_lists(object_store))
    except StationFileError as exc:   # station_metadata fails on it, naming it; the file's own check goes on
        context.log.warning(f"unit checks without the station lists: {exc}")
        lists = None
    place = station_place(observations_raw, station_id, lists)
    problems = unit_problems(frame, place)
    if problems:
        key = _find(object_store, raw_key_candidates(station_id), f"station {station_id!r}")
        reason = f"{key}: temperatures not in the units of its format ({fmt.value}): " + "; ".join(problems)
        dest = object_store.quarantine(key, reason, asset="observations_clean", partition=station_id)
        raise dg.Failure(description=f"{reason} (moved to {dest})", metadata={"quarantined": dest})
    clean, rejects = validate.validate(frame, claimed_period=parsers.claimed_period(observations_raw, fmt))
    meta = {"rows_in": frame.height, "rows_clean": clean.height, "rejects": rejects.height, "source_format": fmt.value,
            "unit_check_place": place.describe()}
    if fmt is Format.GHCND_CDO_CSV:
        meta["ghcnd_units_detected"] = parsers.ghcnd_units(observations_raw)
    yield dg.Output(rejects, output_name="observations_rejects",
                    metadata={"by_rule": dg.MetadataValue.json(dict(rejects.group_by("rule").len().rows()))})
    yield from _audited_clean("observations", "observations_clean", clean, rejects, config.max_reject_share, meta)


def _audited_clean(prefix: str, clean_asset: str, clean: pl.DataFrame, rejects: pl.DataFrame, limit: float,
                   meta: dict):
    """The clean table through write-audit-publish, then its reject-share check result. The
    audit runs on the staged table (what would be published); when it refuses, the failed check
    is recorded first, and the IO manager fails the step without publishing."""
    result = reject_share_result(prefix, clean_asset, clean.height, rejects, limit)
    if not result.passed:
        yield result

    def audit(staged: pl.DataFrame) -> str | None:
        return validate.reject_share_problem(staged.height, rejects, limit)

    yield dg.Output(Audited(clean, audit), output_name=clean_asset, metadata=meta)
    yield result


def _station_lists(object_store: ObjectStore) -> tuple:
    """The station lists in the raw zone, lowest precedence first: USCRN stations.tsv, the
    road-weather site list and the user's extra metadata file (each None when not landed)."""
    def read(key, parse):
        return parse(object_store.get(key), key) if object_store.exists(key) else None
    return (read(USCRN_STATIONS_KEY, md.from_uscrn_stations), read(RWIS_SITES_KEY, md.from_rwis_sites),
            read(EXTRA_METADATA_KEY, md.from_extra_csv))


@dg.asset(
    group_name=GROUP,
    description="One row per station: USCRN stations.tsv, GSOD file coordinates, the road-weather site list and the "
                "user's extra metadata file.",
)
def station_metadata(context: dg.AssetExecutionContext, store: ObjectStoreResource) -> pl.DataFrame:
    object_store = store.get_store()
    if not object_store.exists(USCRN_STATIONS_KEY):
        raise dg.Failure(description=f"no station list: land the USCRN stations.tsv at {object_store.uri(USCRN_STATIONS_KEY)} "
                                     f"(https://www.ncei.noaa.gov/pub/data/uscrn/products/stations.tsv; "
                                     f"`make demo` lands the bundled copy)")
    uscrn, rwis, extra = _station_lists(object_store)
    frames = [uscrn]
    for info in object_store.list(OBSERVATIONS_PREFIX):
        try:
            sid = partition_for_raw_key(info.key)
            head = decode_utf8(object_store.get_range(info.key, 0, 4095).rsplit(b"\n", 1)[0], info.key)
            if detect_format(head, info.key) is Format.GSOD_CSV:
                _, native = parsers.parse_native(object_store.get(info.key), info.key)
                frames.append(md.from_gsod_native(native, sid))
        except (UnsafeNameError, StationFileError) as exc:
            context.log.warning(f"station_metadata skips {info.key}: {exc}")
    rwis_src = RWIS_SITES_KEY if rwis is not None else "none"
    extra_src = EXTRA_METADATA_KEY if extra is not None else "none"
    out = md.build_station_metadata(*frames, rwis, extra)
    context.add_output_metadata({"stations": out.height, "uscrn_source": USCRN_STATIONS_KEY, "extra_source": extra_src,
                                 "rwis_sites_source": rwis_src})
    return out.drop("source").select(
        "station_id", "wban", "name", "latitude", "longitude", "elevation_m", "network", "state", "begin_date",
        "end_date",
    )


@dg.multi_asset(
    group_name=GROUP,
    partitions_def=outcome_location_partitions,
    outs={
        "outcome_of_interest": dg.AssetOut(description="A location's target series: location, timestamp_utc, variable, value."),
        "outcome_rejects": dg.AssetOut(description="Validation failures of the outcome series."),
    },
    check_specs=[reject_share_spec("outcome", "outcome_of_interest")],
)
def outcome_of_interest(context: dg.AssetExecutionContext, config: CleanTableConfig, store: ObjectStoreResource):
    object_store = store.get_store()
    location = context.partition_key
    key = _find(object_store, outcome_key_candidates(location), f"outcome location {location!r}")
    try:
        frame = oc.parse_outcome(object_store.get(key), key, location)
    except StationFileError as exc:
        dest = object_store.quarantine(key, str(exc), line=exc.line, column=exc.column)
        raise dg.Failure(description=f"{exc} (moved to {dest})") from None
    clean, rejects = oc.validate_outcome(frame)
    yield dg.Output(rejects, output_name="outcome_rejects", metadata={"rejects": rejects.height})
    yield from _audited_clean("outcome", "outcome_of_interest", clean, rejects, config.max_reject_share,
                              {"rows": clean.height, "source_key": key})
