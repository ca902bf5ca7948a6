"""Training-data snapshots: the exact rows a model was trained and tested on, kept with it.

``snapshots/<sha256>.parquet``: content-addressed by the SHA-256 of the file's bytes, so the
name *is* the checksum (``sha256sum`` verifies it) and runs that used the same rows (the three
model types of one run, a sweep's grid points) share one object. A snapshot holds the training
table's slice for the run's locations (``location``, ``period_start``, ``target`` and the
chosen features in their order), unlabelled rows included: the persistence baseline looks at
the previous period whether it has a target or not. The split is not stored in the rows (so
runs with other split dates share them); it follows from the recorded split settings, and the
reproduction checks that it gives the recorded train/test row counts.

The file's schema metadata (``snoiq.snapshot``) holds what training needs to read it: target,
resolution and the feature list (other columns of the slice, e.g. a forecast table's
``cycle_time`` and ``raw_forecast``, are kept after the features). The Parquet writer settings are fixed, so the same rows give
the same bytes and the same name.

A pruned snapshot leaves ``snapshots/<sha256>.pruned.json`` (when, why, which runs), so asking
for it later says "pruned", not just "missing".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass

import polars as pl
import pyarrow.parquet as pq

from snoiq_assets.lib.keys import join_key
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.parquet import read_parquet_bytes
from snoiq_assets.lib.storage import ObjectNotFound, ObjectStore

SNAPSHOTS_PREFIX = "snapshots"
SCHEMA_KEY = b"snoiq.snapshot"
FORMAT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
INFO_KEYS = ("target", "resolution", "resolution_days")


class SnapshotError(ModelError):
    """A snapshot that cannot be used; the message names it and says why."""


class SnapshotMissing(SnapshotError):
    pass


class SnapshotPruned(SnapshotMissing):
    pass


class SnapshotCorrupt(SnapshotError):
    pass


@dataclass(frozen=True)
class Snapshot:
    sha256: str
    key: str
    rows: int
    bytes: int
    columns: int

    def describe(self) -> dict:
        return {"sha256": self.sha256, "key": self.key, "rows": self.rows, "bytes": self.bytes, "columns": self.columns}


def check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise SnapshotError(f"{sha256!r} is not a snapshot hash (64 lower-case hex digits)")
    return sha256


def snapshot_key(sha256: str) -> str:
    return join_key(SNAPSHOTS_PREFIX, check_sha256(sha256) + ".parquet")


def tombstone_key(sha256: str) -> str:
    return join_key(SNAPSHOTS_PREFIX, check_sha256(sha256) + ".pruned.json")


def snapshot_bytes(rows: pl.DataFrame, features: list[str], info: dict) -> bytes:
    """The Parquet bytes of a snapshot of ``rows`` (the run's prepared table slice)."""
    key_columns = ["location", "period_start", "target", *features]
    missing = [c for c in key_columns if c not in rows.columns]
    if missing:
        raise SnapshotError(f"the rows to snapshot lack column(s) {missing[:5]}")
    # Every other column of the slice too (a forecast table's cycle_time, lead, raw_forecast):
    # whatever training read, the reproduction reads.
    columns = [*key_columns, *(c for c in rows.columns if c not in key_columns)]
    meta = {"format_version": FORMAT_VERSION, **{k: info.get(k) for k in INFO_KEYS}, "feature_columns": list(features)}
    table = rows.select(columns).to_arrow()
    table = table.replace_schema_metadata({SCHEMA_KEY: json.dumps(meta, sort_keys=True).encode()})
    buf = io.BytesIO()
    # Fixed writer settings: the same rows always give the same bytes (and so the same name).
    pq.write_table(table, buf, compression="zstd", compression_level=3, row_group_size=1 << 20,
                   write_statistics=True, use_dictionary=True)
    return buf.getvalue()


def write_snapshot(store: ObjectStore, rows: pl.DataFrame, features: list[str], info: dict) -> Snapshot:
    """Store the snapshot (once per content; the put is atomic on both backends) and describe it."""
    data = snapshot_bytes(rows, features, info)
    sha = hashlib.sha256(data).hexdigest()
    key = snapshot_key(sha)
    existing = store.stat(key)
    if existing is None or existing.size != len(data):
        store.put(key, data)
    if store.exists(tombstone_key(sha)):  # the same rows again after a prune: it is live again
        store.delete(tombstone_key(sha))
    return Snapshot(sha, key, rows.height, len(data), rows.width)


def read_snapshot(store: ObjectStore, sha256: str, run: str = "") -> tuple[pl.DataFrame, dict]:
    """The snapshot's rows and info, after checking its bytes against its name.

    ``run`` names the run that asked, for the messages."""
    key = snapshot_key(sha256)
    of = f" (of run {run})" if run else ""
    try:
        data = store.get(key)
    except ObjectNotFound:
        tomb = tombstone_key(sha256)
        if store.exists(tomb):
            note = store.get_json(tomb)
            raise SnapshotPruned(
                f"snapshot {sha256}{of} was pruned at {note.get('pruned_at')} ({note.get('reason')}); "
                "its rows are gone, so the run cannot be reproduced"
            ) from None
        raise SnapshotMissing(f"snapshot {key}{of} does not exist (never written, or deleted by hand)") from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise SnapshotCorrupt(f"snapshot {key}{of} does not match its hash: its bytes hash to {found} "
                              "(changed or corrupted); refusing to train on it")
    table = read_parquet_bytes(data)
    raw = (table.schema.metadata or {}).get(SCHEMA_KEY)
    if raw is None:
        raise SnapshotCorrupt(f"snapshot {key}{of} has no {SCHEMA_KEY.decode()} metadata; it is not a snapshot")
    info = json.loads(raw)
    if info.get("format_version") != FORMAT_VERSION:
        raise SnapshotError(f"snapshot {key}{of} has format_version {info.get('format_version')}; this code reads {FORMAT_VERSION}")
    return pl.from_arrow(table), info


def list_snapshots(store: ObjectStore) -> dict[str, int]:
    """sha256 -> size in bytes of every stored snapshot."""
    out = {}
    for obj in store.list(SNAPSHOTS_PREFIX + "/"):
        name = obj.key.rsplit("/", 1)[-1]
        if name.endswith(".parquet") and _SHA256.fullmatch(name[: -len(".parquet")]):
            out[name[: -len(".parquet")]] = obj.size
    return out


def prune_snapshot(store: ObjectStore, sha256: str, reason: str, runs: list[str]) -> None:
    """Delete one snapshot, leaving a note that says it was pruned (written first: a crash in
    between leaves a note and the file, and the next prune deletes the file)."""
    store.put_json(tombstone_key(sha256), {
        "sha256": sha256, "pruned_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "reason": reason, "runs": sorted(runs),
    })
    store.delete(snapshot_key(sha256))


def mlflow_dataset(rows: pl.DataFrame, snapshot: Snapshot, source_uri: str):
    """The snapshot as an MLflow dataset (for ``MlflowClient.log_inputs``). MLflow keeps at most
    36 characters of digest: the first 32 hex digits are used there; the full hash is in the name."""
    import warnings

    import mlflow.data

    with warnings.catch_warnings():
        # MLflow registers its local-file source twice and warns that a path is "ambiguous"
        # between the two identical classes; the source is the same either way.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        return mlflow.data.from_polars(rows, source=source_uri, targets="target", name=f"snapshot-{snapshot.sha256}",
                                       digest=snapshot.sha256[:32])
