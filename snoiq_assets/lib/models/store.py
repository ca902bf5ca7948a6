"""The model store: ``models/{location}/{run_timestamp}/model_type={model_type}/``.

Each folder holds the model file in its library's format, ``metadata.json`` and
``manifest.json``. The manifest hashes the model file *and* the metadata together (SHA-256 and
size of each), so a reordered feature list or a flipped target transform in the metadata is
refused like a changed model file. It is written last: a folder without one is an incomplete
write (or predates manifests) and is never loaded; if writing fails, what was written is removed.

Loading checks the manifest, then the metadata (schema, model type, file name, features), then
has the model library load the file and predict one row in a child process first
(``lib/models/loadcheck.py``): a file whose checksums were updated after it was truncated or
corrupted can crash the library natively (LightGBM segfaults on a truncated text model) or fail
to decode (XGBoost raises UnicodeDecodeError); either becomes a ModelError naming the file,
and the calling process lives on. Works through the ObjectStore, so local folder and S3 behave
the same.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from snoiq_assets.lib.childproc import signal_name, stop, wait_or_kill
from snoiq_assets.lib.keys import join_key, safe_identifier
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models.train import (
    MODEL_FILES, MODEL_FORMATS, FittedModel, check_model_type, check_transform, load_native, save_native,
)
from snoiq_assets.lib.checksums import sha256_file
from snoiq_assets.lib.storage import ObjectNotFound, ObjectStore

MODELS_PREFIX = "models"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
MANIFEST_VERSION = 1
LOAD_CHECK_TIMEOUT_S = 300
RUN_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
REQUIRED = {
    "format_version": int, "model_type": str, "model_file": str, "model_format": str, "model_sha256": str,
    "features": list, "target": str, "target_transform": str, "location": str, "run_timestamp": str,
    "training_window": dict, "metrics": dict, "data_versions": dict,
}


def new_run_timestamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).strftime(RUN_TIMESTAMP_FORMAT)


def model_prefix(location: str, run_timestamp: str, model_type: str) -> str:
    check_model_type(model_type)
    return join_key(MODELS_PREFIX, safe_identifier(location, "location"),
                    safe_identifier(run_timestamp, "run timestamp"), f"model_type={model_type}")


def predictions_key(prefix: str, start: dt.date | str, end: dt.date | str) -> str:
    """``<prefix>/predictions/<start>_to_<end>/predictions.parquet``: dates (YYYY-MM-DD) for a
    date range, hourly partition keys (YYYY-MM-DDTHH) for one feature partition."""
    def text(v: dt.date | str) -> str:
        return v.isoformat() if isinstance(v, dt.date) else safe_identifier(v, "prediction period")
    return join_key(prefix, "predictions", f"{text(start)}_to_{text(end)}", "predictions.parquet")


def champion_key(location: str, target: str) -> str:
    return join_key(MODELS_PREFIX, safe_identifier(location, "location"), f"champion-{safe_identifier(target, 'target')}.json")


_CHAMPION_FILE = re.compile(r"^models/[A-Za-z0-9_.-]+/champion-[A-Za-z0-9_.-]+\.json$")


def read_champion(store: ObjectStore, location: str, target: str) -> dict | None:
    """The champion record of a location and target, or None when there is none yet."""
    key = champion_key(location, target)
    return store.get_json(key) if store.exists(key) else None


def write_champion(store: ObjectStore, location: str, target: str, record: dict) -> None:
    store.put_json(champion_key(location, target), record)


def record_champion_decision(store: ObjectStore, location: str, decision: dict, when: dt.datetime) -> str:
    """Every decision (promoted or kept) is kept: ``models/<location>/champion-history/<time>.json``."""
    key = join_key(MODELS_PREFIX, safe_identifier(location, "location"), "champion-history",
                   f"{when:{RUN_TIMESTAMP_FORMAT}}.json")
    store.put_json(key, decision)
    return key


def champion_records(store: ObjectStore) -> list[dict]:
    """Every current champion record (``models/<location>/champion-<target>.json``)."""
    records = [store.get_json(info.key) for info in store.list(MODELS_PREFIX + "/") if _CHAMPION_FILE.match(info.key)]
    return sorted(records, key=lambda c: c["model_prefix"])


def hourly_champions(store: ObjectStore) -> list[dict]:
    """Every champion trained on the hourly grid-join table (champion records say so)."""
    return [champ for champ in champion_records(store) if champ.get("resolution") == "hourly"]


def write_predictions(store: ObjectStore, prefix: str, start: dt.date | str, end: dt.date | str, table) -> str:
    """Write a champion's predictions (a pyarrow Table) under its folder; return the URI."""
    import pyarrow.parquet as pq

    key = predictions_key(prefix, start, end)
    with store.atomic_local_file(key) as path:
        pq.write_table(table, path, compression="zstd")
    return store.uri(key)


def delete_bundle(store: ObjectStore, prefix: str) -> None:
    """Remove whatever a failed save left in a model folder (manifest, metadata, model files)."""
    for name in (MANIFEST_FILE, METADATA_FILE, *MODEL_FILES.values()):
        store.delete(join_key(prefix, name))


def validate_metadata(meta: dict, where: str = "metadata.json") -> dict:
    if not isinstance(meta, dict):
        raise ModelError(f"{where} is not a JSON object")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ModelError(f"{where} lacks {missing}; it is not a complete model record")
    wrong = [k for k, t in REQUIRED.items() if not isinstance(meta[k], t)]
    if wrong:
        raise ModelError(f"{where} has wrongly typed field(s) {wrong}")
    if meta["format_version"] != FORMAT_VERSION:
        raise ModelError(f"{where} has format_version {meta['format_version']}; this code reads {FORMAT_VERSION}")
    mt = check_model_type(meta["model_type"])
    if meta["model_file"] != MODEL_FILES[mt] or meta["model_format"] != MODEL_FORMATS[mt]:
        raise ModelError(
            f"{where}: a {mt} model must be {MODEL_FILES[mt]} in format {MODEL_FORMATS[mt]}; "
            f"found {meta['model_file']} ({meta['model_format']})"
        )
    check_transform(meta["target_transform"])
    if not meta["features"] or not all(isinstance(f, str) for f in meta["features"]):
        raise ModelError(f"{where} has an empty or malformed feature list")
    return meta


def save_bundle(store: ObjectStore, model: FittedModel, meta: dict, model_file: Path | None = None) -> str:
    """Write model file then metadata.json; return the folder key. Nothing is left half-written.

    ``model_file``: the model already saved with ``save_native`` (e.g. the file also logged to
    MLflow), so it is not serialised twice; by default it is saved to a temporary folder here.
    """
    if model_file is not None:
        return _save_bundle(store, model, meta, Path(model_file))
    with tempfile.TemporaryDirectory(prefix="snoiq-model-") as tmp:
        return _save_bundle(store, model, meta, save_native(model, Path(tmp)))


def _save_bundle(store: ObjectStore, model: FittedModel, meta: dict, path: Path) -> str:
    if path.name != MODEL_FILES[model.model_type]:
        raise ModelError(f"a {model.model_type} model must be saved as {MODEL_FILES[model.model_type]}; got {path.name}")
    prefix = model_prefix(meta["location"], meta["run_timestamp"], model.model_type)
    meta = {
        **meta,
        "format_version": FORMAT_VERSION,
        "model_type": model.model_type,
        "model_file": path.name,
        "model_format": MODEL_FORMATS[model.model_type],
        "model_sha256": sha256_file(path),
        "features": list(model.feature_names),
        "target_transform": model.transform,
    }
    validate_metadata(meta)
    meta_bytes = json.dumps(meta, indent=2, sort_keys=True, default=str).encode()
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "files": {
            path.name: {"sha256": meta["model_sha256"], "bytes": path.stat().st_size},
            METADATA_FILE: {"sha256": hashlib.sha256(meta_bytes).hexdigest(), "bytes": len(meta_bytes)},
        },
        "snapshot_sha256": (meta.get("snapshot") or {}).get("sha256"),
    }
    written = []
    try:
        for key, put in ((join_key(prefix, path.name), lambda k: store.put_file(k, path)),
                         (join_key(prefix, METADATA_FILE), lambda k: store.put(k, meta_bytes)),
                         (join_key(prefix, MANIFEST_FILE), lambda k: store.put_json(k, manifest))):
            put(key)
            written.append(key)
    except BaseException:
        for key in written:
            store.delete(key)
        raise
    return prefix


def read_manifest(store: ObjectStore, prefix: str) -> dict:
    key = join_key(prefix, MANIFEST_FILE)
    try:
        manifest = store.get_json(key)
    except ObjectNotFound:
        raise ModelError(f"no model at {prefix}: {MANIFEST_FILE} is missing (an incomplete write, a model stored "
                         "before manifests, or a wrong path); retrain it") from None
    except ValueError:
        raise ModelError(f"{key} is not valid JSON") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest.get("manifest_version") != MANIFEST_VERSION or not isinstance(files, dict) or METADATA_FILE not in files:
        raise ModelError(f"{key} is not a model manifest this code reads (version {MANIFEST_VERSION}, files with "
                         f"{METADATA_FILE})")
    return manifest


def _verified(data: bytes, key: str, entry: dict) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.get("sha256") or len(data) != entry.get("bytes"):
        raise ModelError(f"{key} does not match the manifest (sha256 {digest[:12]}..., {len(data)} bytes; the manifest "
                         f"says {str(entry.get('sha256'))[:12]}..., {entry.get('bytes')} bytes): changed or corrupted, "
                         "refusing it")
    return data


def read_metadata(store: ObjectStore, prefix: str, manifest: dict | None = None) -> dict:
    """The folder's metadata, checked against the manifest (and the manifest's own form)."""
    manifest = manifest or read_manifest(store, prefix)
    key = join_key(prefix, METADATA_FILE)
    try:
        data = store.get(key)
    except ObjectNotFound:
        raise ModelError(f"{key} is missing although the folder has a manifest") from None
    _verified(data, key, manifest["files"][METADATA_FILE])
    try:
        meta = json.loads(data)
    except ValueError:
        raise ModelError(f"{key} is not valid JSON") from None
    meta = validate_metadata(meta, key)
    if set(manifest["files"]) != {METADATA_FILE, meta["model_file"]}:
        raise ModelError(f"{join_key(prefix, MANIFEST_FILE)} lists {sorted(manifest['files'])}; expected "
                         f"{sorted({METADATA_FILE, meta['model_file']})}")
    return meta


def check_scoring_columns(meta: dict, columns) -> None:
    """The table to score must have every feature the model was trained on."""
    cols = set(columns)
    missing = [f for f in meta["features"] if f not in cols]
    if missing:
        raise ModelError(
            f"the {meta['model_type']} model at run {meta['run_timestamp']} was trained on {len(meta['features'])} "
            f"features; the data to score lacks {len(missing)} of them (e.g. {missing[:5]})"
        )


# Model files (by SHA-256) a child process has loaded and predicted with: a process checks a
# given file once, however often it loads it.
_LOAD_CHECKED: set[str] = set()


class LoadChecker:
    """A long-lived load-check child for one model type (``loadcheck --serve``): the library is
    imported once per process, not once per file (0.7-2.4 s a check before). A file that makes
    the library crash kills only the child, which the next check replaces; a crash is blamed on
    the file only in a fresh child (one that had loaded other files is replaced and the file
    checked once more)."""

    def __init__(self, model_type: str):
        self.model_type = model_type
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self.starts = 0

    def _start(self) -> subprocess.Popen:
        if self._stderr is not None:
            self._stderr.close()   # the previous child's
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "snoiq_assets.lib.models.loadcheck", "--serve", self.model_type],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, close_fds=True)
        self.starts += 1
        return self._proc

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = [ln.strip() for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def check(self, path: Path, n_features: int, key: str) -> None:
        fresh = self._proc is None or self._proc.poll() is not None
        proc = self._start() if fresh else self._proc
        reply = ""
        try:
            proc.stdin.write(json.dumps({"path": str(path), "n_features": n_features}) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], LOAD_CHECK_TIMEOUT_S)
            if not ready:
                self.close()
                raise ModelError(f"{key}: the {self.model_type} library did not finish loading it within "
                                 f"{LOAD_CHECK_TIMEOUT_S} s; refusing it")
            reply = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            pass
        if reply:
            error = json.loads(reply)["error"]
            if error is None:
                return
            raise ModelError(f"{key}: {error}")
        # No reply: the child died (natively, or before it could answer).
        code = wait_or_kill(proc)
        tail = self._stderr_tail()
        self._proc = None
        if not fresh:
            # A child that loaded other files may die of what one of them left in its memory:
            # the file is blamed only if it also kills a fresh child.
            return self.check(path, n_features, key)
        if code < 0:
            raise ModelError(f"{key}: the {self.model_type} library crashed ({signal_name(code)}) loading it: the "
                             "file is corrupt or truncated; refusing it")
        raise ModelError(f"{key}: the load-check process exited with status {code}: {tail or 'no message'}")

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop(proc)


# One LoadChecker per model type, for this process (a forked copy's are not used), one check at a time.
_CHECKERS: dict[tuple[int, str], LoadChecker] = {}
_CHECKERS_LOCK = threading.Lock()


def _close_checkers() -> None:
    for (pid, _), checker in list(_CHECKERS.items()):
        if pid == os.getpid():
            checker.close()


atexit.register(_close_checkers)


def check_loads_in_child(model_type: str, path: Path, n_features: int, key: str) -> None:
    """Have the model library load ``path`` and predict one row in a child process; a native crash
    or a decode error there becomes a ModelError naming ``key`` here."""
    check_model_type(model_type)
    with _CHECKERS_LOCK:
        checker = _CHECKERS.get((os.getpid(), model_type))
        if checker is None:
            checker = _CHECKERS[(os.getpid(), model_type)] = LoadChecker(model_type)
        checker.check(path, n_features, key)


def load_bundle(store: ObjectStore, prefix: str, columns=None) -> tuple[FittedModel, dict]:
    manifest = read_manifest(store, prefix)
    meta = read_metadata(store, prefix, manifest)
    if columns is not None:
        check_scoring_columns(meta, columns)
    key = join_key(prefix, meta["model_file"])
    with tempfile.TemporaryDirectory(prefix="snoiq-model-") as tmp:
        try:
            path = store.download(key, Path(tmp) / meta["model_file"])
        except ObjectNotFound:
            raise ModelError(f"{key} is missing although its metadata exists") from None
        digest = sha256_file(path)
        entry = manifest["files"][meta["model_file"]]
        if digest != entry.get("sha256") or digest != meta["model_sha256"] or path.stat().st_size != entry.get("bytes"):
            raise ModelError(f"{key} does not match the checksum in its manifest (changed or corrupted); refusing it")
        if digest not in _LOAD_CHECKED:
            check_loads_in_child(meta["model_type"], path, len(meta["features"]), key)
            _LOAD_CHECKED.add(digest)
        try:
            model = load_native(meta["model_type"], path, meta["features"], meta["target_transform"])
        except ModelError as exc:
            raise ModelError(f"{key}: {exc}") from None
    return model, meta
