"""GRIB decoding in a child process, so a native ecCodes crash cannot take the caller with it.

ecCodes is C: some corrupt messages (a flipped byte in the data-representation section) make
it abort (``assertion failed: 'e == 0' in grib_bits_any_endian.cc``) or segfault. GRIB2 has no
checksum, so no check before decoding can rule this out. ``DecoderProcess`` runs the decode in
one long-lived child (``python -m snoiq_assets.lib.hrrr.isolation``), reused for every
partition of a step. If the child dies, the call raises the usual ``HrrrDataError`` naming the
file, the signal and the last lines ecCodes wrote to stderr; the caller quarantines the file and
carries on, and the next call starts a fresh child. A crash is blamed on a file only in a fresh
child: one that had decoded other files first is replaced and the file tried once more.

Cheap by design: ``shared_decoder()`` starts the child once per process (about 0.4 s: one
interpreter start and the numpy/pyarrow/ecCodes imports) and keeps it for the next step, which
in a process running many steps (``execute_in_process``, the demo, the tests) is most of the
cost of a one-hour step; between steps the child gives its freed decode buffers back. It hands
each decoded table back as an Arrow IPC file, which
the parent memory-maps (no copy, no pickling of the values): on Linux an anonymous memory file
of the child's (``memfd``, opened through /proc), elsewhere a file in a temporary folder. Measured
in benchmarks/bench_hrrr.py against the in-process decode.

Protocol (stdin/stdout of the child): length-prefixed pickles of ``(function, kwargs)``
requests and ``("ok", result)`` / ``("data_error", details)`` / ``("error", text)`` replies.
Only this module's own functions can be called, with arguments built by the parent.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pyarrow as pa

from snoiq_assets.lib.childproc import describe_exit, stop, wait_or_kill
from snoiq_assets.lib.hrrr import HrrrDataError

_HEADER = struct.Struct("!Q")
STDERR_TAIL = 600   # characters of the child's stderr quoted in a crash error


def _send(fh, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(data)))
    fh.write(data)
    fh.flush()


def _recv(fh):
    head = fh.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the decoder process closed its output")
    size = _HEADER.unpack(head)[0]
    data = fh.read(size)
    if len(data) < size:
        raise EOFError("the decoder process closed its output mid-reply")
    return pickle.loads(data)


class DecoderProcess:
    """One child process for GRIB work; use as a context manager (the child stops on exit)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._stderr_path: Path | None = None
        # Removed by close() in this process only: a forked copy of this object (whose finalizer
        # a TemporaryDirectory would run at the fork's exit) must not delete the folder.
        self._owner = os.getpid()
        self._tmp = tempfile.mkdtemp(prefix="snoiq-decode-")
        self.starts = 0   # children started (one, plus one after each crash)

    def __enter__(self) -> "DecoderProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> subprocess.Popen:
        fd, err = tempfile.mkstemp(prefix="stderr-", suffix=".txt", dir=self._tmp)
        self._stderr_path = Path(err)
        # No faulthandler dump: the crash message quoted is ecCodes' own line, not a traceback.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
        # glibc keeps the freed decode buffers (tens of MB per partition) for the next partition
        # instead of unmapping and faulting them in again: measured 0.1-0.35 s of system time
        # per partition without, 0.07 s with (most of it the table's memory file).
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(256 << 20))
        env.setdefault("MALLOC_TRIM_THRESHOLD_", str(1 << 30))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "snoiq_assets.lib.hrrr.isolation"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fd, env=env, close_fds=True,
        )
        os.close(fd)
        self.starts += 1
        return self._proc

    def _stderr_tail(self) -> str:
        try:
            text = self._stderr_path.read_text(errors="replace") if self._stderr_path else ""
        except OSError:
            return ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        own = [ln for ln in lines if "ECCODES" in ln or "assert" in ln.lower()]   # ecCodes' own words
        return " | ".join(own or lines)[-STDERR_TAIL:]

    def _call(self, name: str, function: str, kwargs: dict):
        fresh = self._proc is None or self._proc.poll() is not None
        proc = self._start() if fresh else self._proc
        try:
            _send(proc.stdin, (function, kwargs))
            status, payload = _recv(proc.stdout)
        except (EOFError, BrokenPipeError, OSError):
            code = wait_or_kill(proc)
            tail = self._stderr_tail()
            self._proc = None
            if not fresh and function != "release":
                # A child that served earlier files may die of what one of them left in its
                # memory: the file is blamed only if it also kills a fresh child.
                return self._call(name, function, kwargs)
            raise HrrrDataError(
                name, f"ecCodes crashed while decoding the file (decoder process {describe_exit(code)})"
                + (f": {tail}" if tail else ""),
                expected="a GRIB2 file ecCodes can decode",
            ) from None
        if status == "ok":
            return payload
        if status == "data_error":
            file, problem = payload.pop("file"), payload.pop("problem")
            payload["message"] = payload.pop("message_number")
            raise HrrrDataError(file, problem, **payload)
        # Anything else the decode raised came from this file's bytes (ecCodes' Python layer,
        # a date that does not exist ...): still a bad file, named with the error.
        raise HrrrDataError(name, f"decoding failed: {payload}", expected="a GRIB2 file ecCodes can decode")

    def decode_fields(self, path: str | os.PathLike, variables, forecast_hour: int, **kwargs) -> tuple[pa.Table, dict]:
        """``decode.decode_fields`` in the child; same arguments, same result, same errors."""
        name = kwargs.get("name") or str(path)
        request = {"path": str(path), "variables": [v.column for v in variables], "forecast_hour": forecast_hour,
                   **kwargs}
        if hasattr(os, "memfd_create"):
            # Linux: the table comes back in an anonymous memory file of the child's, mapped here
            # through /proc: no disk write (under write-back pressure a 76 MB temp file cost
            # hundreds of ms per partition) and no copy.
            reply = self._call(name, "decode_to_memory", request)
            source_path, stats = f"/proc/{self._proc.pid}/fd/{reply['fd']}", reply["stats"]
        else:
            out = Path(self._tmp) / "table.arrow"
            stats = self._call(name, "decode_to_file", {**request, "out": str(out)})
            source_path = str(out)
        with pa.memory_map(source_path) as source:
            table = pa.ipc.open_file(source).read_all()
        if source_path.startswith(self._tmp):
            os.unlink(source_path)   # the mapping stays valid; the next partition writes a new file
        return table, stats

    def decode_lead_fields(self, path: str | os.PathLike, variables, forecast_hour: int,
                           **kwargs) -> tuple[pa.Table, dict]:
        """``accum.decode_lead_fields`` in the child (accumulation windows checked, 1-hour buckets decoded)."""
        return self.decode_fields(path, variables, forecast_hour, lead=True, **kwargs)

    def scan_grib(self, path: str | os.PathLike, name: str | None = None):
        """``decode.scan_grib`` in the child."""
        return self._call(name or str(path), "scan", {"path": str(path), "name": name})

    def release(self) -> None:
        """Between uses: the child closes the last table's memory file and returns its freed
        heap to the system (a live child otherwise keeps the largest partition's buffers)."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(HrrrDataError):   # a child that dies now is restarted by the next call
                self._call("release", "release", {})

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop(proc)
        if os.getpid() == self._owner:
            shutil.rmtree(self._tmp, ignore_errors=True)


_SHARED: DecoderProcess | None = None
_SHARED_PID = 0
_SHARED_LOCK = threading.RLock()


@contextlib.contextmanager
def shared_decoder():
    """This process's DecoderProcess, started on first use and kept for the next caller; one
    caller at a time (threads wait their turn). A crashed child is replaced by the next call,
    as in any DecoderProcess; the child exits with this process (its input closes)."""
    global _SHARED, _SHARED_PID
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED_PID != os.getpid():
            # (A forked copy of a parent's decoder would share the parent's pipes: never used.)
            if _SHARED is None:
                atexit.register(_close_shared)
            _SHARED, _SHARED_PID = DecoderProcess(), os.getpid()
        try:
            yield _SHARED
        finally:
            _SHARED.release()


def _close_shared() -> None:
    if _SHARED is not None and _SHARED_PID == os.getpid():
        _SHARED.close()


# ----- the child ----------------------------------------------------------------------------

def _decode(path: str, variables: list[str], forecast_hour: int, lead: bool = False,
            **kwargs) -> tuple[pa.Table, dict]:
    from snoiq_assets.lib.hrrr.accum import decode_lead_fields
    from snoiq_assets.lib.hrrr.decode import decode_fields
    from snoiq_assets.lib.hrrr.variables import resolve

    return (decode_lead_fields if lead else decode_fields)(path, resolve(variables), forecast_hour, **kwargs)


def _write_ipc(table: pa.Table, out: str) -> None:
    with pa.OSFile(out, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def decode_to_file(path: str, variables: list[str], forecast_hour: int, out: str, **kwargs) -> dict:
    table, stats = _decode(path, variables, forecast_hour, **kwargs)
    _write_ipc(table, out)
    return stats


# The memory file of the last table handed back: kept open until the next request, by when the
# parent has mapped it (its mapping keeps the pages alive after this process closes it).
_HANDED: list[int] = []


def decode_to_memory(path: str, variables: list[str], forecast_hour: int, **kwargs) -> dict:
    while _HANDED:
        os.close(_HANDED.pop())
    table, stats = _decode(path, variables, forecast_hour, **kwargs)
    fd = os.memfd_create("snoiq-decoded-table")
    _HANDED.append(fd)
    _write_ipc(table, f"/proc/self/fd/{fd}")
    return {"stats": stats, "fd": fd}


def scan(path: str, name: str | None = None):
    from snoiq_assets.lib.hrrr.decode import scan_grib

    return scan_grib(path, name)


def release() -> None:
    import ctypes

    while _HANDED:
        os.close(_HANDED.pop())
    if sys.platform.startswith("linux"):
        # glibc: unmap the freed heap kept by MALLOC_TRIM_THRESHOLD_. The process's own symbols
        # (CDLL(None)), not ctypes.util.find_library, which runs ldconfig on every call.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


_FUNCTIONS = {"decode_to_file": decode_to_file, "decode_to_memory": decode_to_memory, "scan": scan,
              "release": release}


def serve(stdin, stdout) -> None:
    while True:
        try:
            function, kwargs = _recv(stdin)
        except EOFError:
            return
        try:
            reply = ("ok", _FUNCTIONS[function](**kwargs))
        except HrrrDataError as exc:
            reply = ("data_error", exc.details())
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _send(stdout, reply)


if __name__ == "__main__":
    # pyproj before eccodes: the two wheels bundle clashing native libraries (see conftest.py).
    import pyproj  # noqa: F401
    import eccodes  # noqa: F401  (imported now, so the first request does not pay for it)

    from snoiq_assets.lib.hrrr import decode  # noqa: F401

    # Replies go to a private copy of stdout; anything a library prints lands in stderr instead.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, replies)
