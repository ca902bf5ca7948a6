"""The stations raw-zone layout: station files, outcome files and the metadata files, and the
mapping of a landed key to a validated partition key (station id / location)."""

from __future__ import annotations

from snoiq_assets.lib.keys import UnsafeNameError, safe_identifier

OBSERVATIONS_PREFIX = "raw/observations/"
USCRN_STATIONS_KEY = "raw/metadata/stations.tsv"
EXTRA_METADATA_KEY = "raw/metadata/station_metadata_extra.csv"
RWIS_SITES_KEY = "raw/metadata/rwis_sites.csv"
OUTCOMES_PREFIX = "raw/outcomes/"
OBSERVATION_SUFFIXES = (".csv", ".txt")
OUTCOME_SUFFIXES = (".csv", ".parquet")


def _partition(key: str, prefix: str, suffixes: tuple[str, ...], what: str) -> str:
    if not isinstance(key, str) or not key.startswith(prefix):
        raise UnsafeNameError(f"{key!r} is not under {prefix}")
    name = key[len(prefix):]
    if "/" in name:
        raise UnsafeNameError(f"{key!r}: {what} files must sit directly under {prefix} (no sub-folders)")
    # A suffix all lower or all upper case (".csv", ".CSV"): the run finds the file under the
    # same spelling (see ``spellings``); mixed case (".Csv") is refused rather than guessed.
    for suffix in spellings(suffixes):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        raise UnsafeNameError(f"{key!r}: a {what} file must end in one of {', '.join(spellings(suffixes))}")
    safe_identifier(stem, what)
    if stem.startswith(".") or "." in stem:
        # A dot inside the stem makes <id>.csv ambiguous and hides temp files such as '.x.tmp'.
        raise UnsafeNameError(f"{what} {stem!r} in {key!r} must not contain '.'")
    return stem


def spellings(suffixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(suffixes) + tuple(s.upper() for s in suffixes)


def partition_for_raw_key(key: str) -> str:
    """``raw/observations/<station_id>.csv|txt`` -> ``station_id`` (checked), else UnsafeNameError."""
    return _partition(key, OBSERVATIONS_PREFIX, OBSERVATION_SUFFIXES, "station id")


def location_for_raw_key(key: str) -> str:
    """``raw/outcomes/<location>.csv|parquet`` -> ``location`` (checked), else UnsafeNameError."""
    return _partition(key, OUTCOMES_PREFIX, OUTCOME_SUFFIXES, "location")


def raw_key_candidates(station_id: str) -> list[str]:
    safe_identifier(station_id, "station id")
    return [f"{OBSERVATIONS_PREFIX}{station_id}{s}" for s in spellings(OBSERVATION_SUFFIXES)]


def outcome_key_candidates(location: str) -> list[str]:
    safe_identifier(location, "location")
    return [f"{OUTCOMES_PREFIX}{location}{s}" for s in spellings(OUTCOME_SUFFIXES)]
