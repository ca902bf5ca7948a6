"""One small object-store layer over a local folder and S3.

Everything that touches raw files or the lake goes through ``ObjectStore``: listing with
modification time and ETag, whole and ranged reads, atomic writes, and moving an input to
``quarantine/`` with a ``.reason.json`` beside it. The local folder is laid out exactly like
the bucket, so a key means the same thing on both backends.

Atomicity: locally a write goes to a temporary file in the same folder and is renamed into
place (``os.replace`` is atomic on POSIX); on S3 an object only becomes visible once its PUT
(single or multipart) completes, so a reader never sees half an object on either backend.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from snoiq_assets.lib.keys import UnsafeNameError, check_key, join_key, safe_stand_in
from snoiq_assets.settings import Settings, SettingsError

QUARANTINE_PREFIX = "quarantine"
UNSAFE_QUARANTINE_PREFIX = "quarantine/unsafe"   # listed objects whose own key is not safe


class StorageError(RuntimeError):
    """A store operation failed; the message names the key and the cause, never a secret."""


class ObjectNotFound(StorageError, KeyError):
    pass


class StorageTimeout(StorageError):
    """The server did not answer in time (hung, overloaded). Whether a write was applied is then
    unknown: a hung server that recovers may still complete it, so re-run what it was for."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: dt.datetime  # timezone-aware UTC

    @property
    def version_token(self) -> str:
        """Changes whenever the object is rewritten: used in sensor run keys."""
        return f"{self.etag}-{self.last_modified.timestamp():.6f}"


class ObjectStore(ABC):
    """The operations every backend provides. Keys are '/'-separated and checked."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """All objects under ``prefix`` (recursive), in key order."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        """Bytes ``start..end`` inclusive (HTTP Range semantics); ``end=None`` reads to the end."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> ObjectInfo: ...

    @abstractmethod
    def put_file(self, key: str, path: str | os.PathLike) -> ObjectInfo: ...

    @abstractmethod
    def download(self, key: str, path: str | os.PathLike) -> Path: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def uri(self, key: str) -> str:
        """A URI Polars/DuckDB/pyarrow can read (a local path or ``s3://bucket/key``)."""

    @abstractmethod
    def check(self) -> None:
        """Fail with one clear ``SettingsError`` when the store cannot be used."""

    storage_options: dict[str, str] | None = None

    # Shared behaviour built on the primitives above.
    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def put_json(self, key: str, obj) -> ObjectInfo:
        return self.put(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def get_json(self, key: str):
        return json.loads(self.get(key))

    def move(self, src: str, dst: str) -> ObjectInfo:
        """Copy then delete. The destination is written atomically before the source goes."""
        with tempfile.TemporaryDirectory(prefix="snoiq-move-") as tmp:
            local = self.download(src, Path(tmp) / "obj")
            info = self.put_file(dst, local)
        self.delete(src)
        return info

    @abstractmethod
    def _move_listed(self, key: str, dst: str) -> None:
        """Move an object found by ``list`` whose key is not safe (never built from user text)."""

    def quarantine(self, key: str, reason: str, **details) -> str:
        """Move ``key`` to ``quarantine/<key>`` and write ``<that>.reason.json``; return the new key.

        The reason file is written first, so an interrupted quarantine never leaves an
        unexplained file behind. A listed object whose own key is unsafe (``%2e%2e.csv``, a
        space, 250 characters) goes to ``quarantine/unsafe/<hash>-<readable part>`` with the
        original key in its reason.
        """
        try:
            check_key(key)
            dest = join_key(QUARANTINE_PREFIX, key)
        except UnsafeNameError:
            dest = join_key(UNSAFE_QUARANTINE_PREFIX, safe_stand_in(key))
            self.put_json(dest + ".reason.json", {
                "original_key": key, "reason": reason,
                "quarantined_at": dt.datetime.now(dt.timezone.utc).isoformat(), **details,
            })
            self._move_listed(key, dest)
            return dest
        self.put_json(
            dest + ".reason.json",
            {
                "original_key": key,
                "reason": reason,
                "quarantined_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                **details,
            },
        )
        if self.exists(key):
            self.move(key, dest)
        return dest

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A local file with the object's bytes (libraries such as ecCodes need a real file)."""
        with tempfile.TemporaryDirectory(prefix="snoiq-get-") as tmp:
            yield self.download(key, Path(tmp) / Path(key).name)

    @contextlib.contextmanager
    def atomic_local_file(self, key: str) -> Iterator[Path]:
        """Yield a local path to write; on a clean exit it becomes ``key`` atomically.

        If the block raises, nothing is published and the temporary file is removed.
        """
        check_key(key)
        with tempfile.TemporaryDirectory(prefix="snoiq-put-") as tmp:
            path = Path(tmp) / Path(key).name
            yield path
            self.put_file(key, path)

    # Whether adopt_file stores a spilled file by renaming it (the local folder): a spill that
    # flushes its files to disk as it writes them then leaves the rename nothing to wait for.
    adopts_by_rename = False

    def adopt_file(self, key: str, path: str | os.PathLike) -> ObjectInfo:
        """Store a finished local file (one written in ``spill_folder()``) as ``key`` atomically,
        and remove the local file."""
        info = self.put_file(key, path)
        os.unlink(path)
        return info

    @contextlib.contextmanager
    def spill_folder(self) -> Iterator[Path]:
        """A private local folder for files about to be stored (``adopt_file``), removed with
        whatever is left in it when the block ends."""
        # (ignore_cleanup_errors: the IO manager may have removed it already, see EncodedParquet.discard)
        with tempfile.TemporaryDirectory(prefix="snoiq-spill-", ignore_cleanup_errors=True) as tmp:
            yield Path(tmp)

    def write_atomically(self, key: str, write: Callable[[Any], None]) -> int:
        """``write(sink)`` writes the object's bytes into ``sink`` (a local path, or on S3 a binary
        stream); on success they become ``key`` atomically and their size is returned. If
        ``write`` raises, nothing is published. For writers that accept either (Parquet)."""
        with self.atomic_local_file(key) as path:
            write(path)
            return Path(path).stat().st_size


def _is_timeout(exc: BaseException) -> bool:
    import urllib3.exceptions as ue

    reason = exc.reason if isinstance(exc, ue.MaxRetryError) else exc
    # urllib3 derives a refused connection (a dead server: nothing was sent) from its timeouts.
    return isinstance(reason, (ue.TimeoutError, TimeoutError)) and not isinstance(reason, ue.NewConnectionError)


def current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: Path) -> None:
    """Rename a finished temp file into place with the mode a plain ``open`` would have given it:
    ``mkstemp`` creates 0600, which other users and containers sharing the folder cannot read."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)


class LocalStore(ObjectStore):
    """A folder laid out like the bucket."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.storage_options = None

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        # The raw zone is the user's folder: a link in it (to /etc/passwd, or a folder elsewhere)
        # must not be read or written through. The root itself is resolved at construction.
        if os.path.realpath(path) != str(path):
            raise StorageError(f"{key!r} in {self.root} is a symbolic link or lies under one; links are refused")
        return path

    def _move_listed(self, key: str, dst: str) -> None:
        source = self.root / key
        real = os.path.realpath(source)
        if real != str(source) or not real.startswith(str(self.root) + os.sep) or not os.path.isfile(real):
            raise StorageError(f"{key!r} is not a plain file under {self.root} (a link, '..' or missing); refused")
        dest = self._path(dst)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        # A cheap, change-sensitive ETag: size and nanosecond mtime (hashing every file on
        # each sensor tick would read the whole raw zone).
        etag = hashlib.md5(f"{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest()
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=etag,
            last_modified=dt.datetime.fromtimestamp(st.st_mtime, tz=dt.timezone.utc),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        prefix = prefix.lstrip("/")
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # an atomic write in flight
                full = Path(dirpath) / name
                if full.is_symlink():
                    continue  # links are not objects of the store (see _path)
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append((key, full))
        for key, full in sorted(found):
            try:
                yield self._info(key, full)
            except FileNotFoundError:
                continue  # removed between walk and stat

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            return self._info(key, path) if path.is_file() else None
        except FileNotFoundError:
            return None

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {key!r} in {self.root}") from None

    def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with path.open("rb") as fh:
                fh.seek(start)
                return fh.read() if end is None else fh.read(end - start + 1)
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {key!r} in {self.root}") from None

    @contextlib.contextmanager
    def _atomic(self, key: str) -> Iterator[IO[bytes]]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            _publish(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put(self, key: str, data: bytes) -> ObjectInfo:
        with self._atomic(key) as fh:
            fh.write(data)
        return self._info(key, self._path(key))

    @contextlib.contextmanager
    def atomic_local_file(self, key: str) -> Iterator[Path]:
        # Write next to the destination and rename: no second copy of the bytes.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            _publish(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_file(self, key: str, path: str | os.PathLike) -> ObjectInfo:
        with self._atomic(key) as fh, open(path, "rb") as src:
            shutil.copyfileobj(src, fh, length=8 << 20)
        return self._info(key, self._path(key))

    SPILL_DIR = ".spill"   # a dot folder: never listed as objects
    adopts_by_rename = True
    STALE_SPILL_S = 24 * 3600

    @contextlib.contextmanager
    def spill_folder(self) -> Iterator[Path]:
        # Inside the store's own folder, on its file system: adopting a file is then a rename.
        base = self.root / self.SPILL_DIR
        base.mkdir(parents=True, exist_ok=True)
        # A worker killed mid-run leaves its folder. One untouched for a day is such a leftover
        # (a running run adds a file per lead, which updates its folder's modification time).
        now = dt.datetime.now().timestamp()
        for old in base.glob("run-*"):
            with contextlib.suppress(FileNotFoundError):
                if now - old.stat().st_mtime > self.STALE_SPILL_S:
                    shutil.rmtree(old, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="run-", dir=base, ignore_cleanup_errors=True) as tmp:
            yield Path(tmp)

    def adopt_file(self, key: str, path: str | os.PathLike) -> ObjectInfo:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.stat(path).st_dev != os.stat(dest.parent).st_dev:
            return super().adopt_file(key, path)
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())   # as durable as put(): the bytes are on disk before the rename
        _publish(str(path), dest)
        return self._info(key, dest)

    def download(self, key: str, path: str | os.PathLike) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFound(f"no object {key!r} in {self.root}")
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def move(self, src: str, dst: str) -> ObjectInfo:
        # A rename is atomic within one filesystem; no copy needed.
        source, dest = self._path(src), self._path(dst)
        if not source.is_file():
            raise ObjectNotFound(f"no object {src!r} in {self.root}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)
        return self._info(dst, dest)

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r} in {self.root}")
        yield path

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise SettingsError(f"SNOIQ_HOME={self.root} is not a writable folder: {exc.strerror}") from None


class S3Store(ObjectStore):
    """A bucket on any S3 endpoint, through the ``minio`` client."""

    def __init__(self, settings: Settings, *, timeout_s: float = 20.0, retries: int = 2):
        import urllib3
        from minio import Minio

        self.settings = settings
        self.bucket = settings.bucket
        self.timeout_s, self.retries = timeout_s, retries
        # Short timeouts and few retries: an unreachable endpoint should fail in seconds with
        # a clear message, not hang in urllib3's default back-off.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(5.0, timeout_s), read=timeout_s),
            retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
            maxsize=16,
        )
        self.client = Minio(
            settings.endpoint_host,
            access_key=settings.access_key_id,
            secret_key=settings.secret_access_key,
            secure=settings.endpoint_secure,
            region=settings.region,
            http_client=http,
        )
        self.storage_options = settings.polars_storage_options()

    def _err(self, op: str, key: str, exc: Exception) -> StorageError:
        from minio.error import S3Error

        if isinstance(exc, S3Error):
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return ObjectNotFound(f"no object {key!r} in bucket {self.bucket!r}")
            return StorageError(f"{op} {key!r} in bucket {self.bucket!r} failed: {exc.code}: {exc.message}")
        if _is_timeout(exc):
            return StorageTimeout(
                f"{op} {key!r} at {self.settings.s3_endpoint} timed out: the server did not answer within "
                f"{self.timeout_s:g} s ({self.retries + 1} attempt(s)); a write may still be applied if the server "
                f"recovers, so re-run it")
        return StorageError(f"{op} {key!r} at {self.settings.s3_endpoint} failed: {type(exc).__name__}: {exc}")

    def _info(self, obj) -> ObjectInfo:
        lm = obj.last_modified
        if lm.tzinfo is None:
            lm = lm.replace(tzinfo=dt.timezone.utc)
        return ObjectInfo(key=obj.object_name, size=obj.size or 0, etag=(obj.etag or "").strip('"'), last_modified=lm)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            for obj in self.client.list_objects(self.bucket, prefix=prefix.lstrip("/"), recursive=True):
                if not obj.is_dir:
                    yield self._info(obj)
        except Exception as exc:  # noqa: BLE001 - re-raised with context
            raise self._err("list", prefix, exc) from None

    def stat(self, key: str) -> ObjectInfo | None:
        check_key(key)
        from minio.error import S3Error

        try:
            return self._info(self.client.stat_object(self.bucket, key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return None
            raise self._err("stat", key, exc) from None
        except Exception as exc:  # noqa: BLE001
            raise self._err("stat", key, exc) from None

    def _read(self, key: str, offset: int = 0, length: int = 0) -> bytes:
        check_key(key)
        resp = None
        try:
            resp = self.client.get_object(self.bucket, key, offset=offset, length=length)
            return resp.read()
        except Exception as exc:  # noqa: BLE001
            raise self._err("get", key, exc) from None
        finally:
            if resp is not None:
                resp.close()
                resp.release_conn()

    def get(self, key: str) -> bytes:
        return self._read(key)

    def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        return self._read(key, offset=start, length=0 if end is None else end - start + 1)

    def put(self, key: str, data: bytes) -> ObjectInfo:
        import io

        check_key(key)
        try:
            result = self.client.put_object(self.bucket, key, io.BytesIO(data), length=len(data))
        except Exception as exc:  # noqa: BLE001
            raise self._err("put", key, exc) from None
        return self._written(key, result, len(data))

    def write_atomically(self, key: str, write: Callable[[Any], None]) -> int:
        # An S3 PUT is atomic by itself (multipart too: the object appears on completion), so
        # the bytes are written into memory and uploaded from there: no temporary file written
        # and read back (benchmarks/bench_io_manager.py, the S3 write ratio).
        import io

        check_key(key)
        sink = io.BytesIO()
        write(sink)
        data = sink.getbuffer()
        try:
            self.put(key, data)
            return len(data)
        finally:
            data.release()

    def put_file(self, key: str, path: str | os.PathLike) -> ObjectInfo:
        check_key(key)
        try:
            # fput_object switches to multipart above 64 MiB; either way the object appears
            # only when the upload completes.
            result = self.client.fput_object(self.bucket, key, str(path))
        except Exception as exc:  # noqa: BLE001
            raise self._err("put", key, exc) from None
        return self._written(key, result, os.path.getsize(path))

    def _written(self, key: str, result, size: int) -> ObjectInfo:
        """The stored object's info; if the store fails right after the upload completed (an
        outage), the write still happened: report it from the upload's own answer."""
        try:
            info = self.stat(key)
        except StorageError:
            info = None
        return info or ObjectInfo(key=key, size=size, etag=(result.etag or "").strip('"'),
                                  last_modified=dt.datetime.now(dt.timezone.utc))

    def download(self, key: str, path: str | os.PathLike) -> Path:
        check_key(key)
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.fget_object(self.bucket, key, str(dest))
        except Exception as exc:  # noqa: BLE001
            raise self._err("get", key, exc) from None
        return dest

    def delete(self, key: str) -> None:
        check_key(key)
        try:
            self.client.remove_object(self.bucket, key)
        except Exception as exc:  # noqa: BLE001
            raise self._err("delete", key, exc) from None

    def _move_listed(self, key: str, dst: str) -> None:
        from minio.commonconfig import CopySource

        check_key(dst)
        try:
            self.client.copy_object(self.bucket, dst, CopySource(self.bucket, key))
            self.client.remove_object(self.bucket, key)
        except Exception as exc:  # noqa: BLE001
            raise self._err("move", key, exc) from None

    def move(self, src: str, dst: str) -> ObjectInfo:
        from minio.commonconfig import CopySource

        check_key(src), check_key(dst)
        try:
            self.client.copy_object(self.bucket, dst, CopySource(self.bucket, src))
        except Exception as exc:  # noqa: BLE001
            raise self._err("copy", src, exc) from None
        self.delete(src)
        return self.stat(dst)  # type: ignore[return-value]

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{check_key(key)}"

    def check(self) -> None:
        from minio.error import S3Error

        where = self.settings.s3_endpoint or "AWS S3"
        try:
            found = self.client.bucket_exists(self.bucket)
        except S3Error as exc:
            if exc.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"):
                raise SettingsError(
                    f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY were rejected by {where} ({exc.code})"
                ) from None
            raise SettingsError(f"SNOIQ_S3_ENDPOINT={where} answered {exc.code} for bucket {self.bucket!r}") from None
        except Exception as exc:  # noqa: BLE001 - connection errors from urllib3
            raise SettingsError(
                f"SNOIQ_S3_ENDPOINT={where} is unreachable ({type(exc).__name__}); is the server running?"
            ) from None
        if not found:
            raise SettingsError(f"SNOIQ_BUCKET={self.bucket!r} does not exist at {where}; create it first")


def store_from_settings(settings: Settings) -> ObjectStore:
    if settings.profile == "local":
        return LocalStore(settings.home)
    return S3Store(settings)
