"""The long-lived child processes that keep a native library's crash away from the caller
(the GRIB decoder, ``lib/hrrr/isolation.py``; the model load check, ``lib/models/store.py``):
how they are stopped, and how their end is described in an error."""

from __future__ import annotations

import contextlib
import signal
import subprocess


def signal_name(code: int) -> str:
    """The signal of a negative return code (``SIGSEGV``), or ``signal N`` for an unknown one."""
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        return f"killed by {signal_name(code)}"
    return f"exited with status {code}"


def wait_or_kill(proc: subprocess.Popen, timeout_s: float = 10) -> int:
    """The child's return code, killing it if it has not ended within ``timeout_s``."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def stop(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    """End a child that serves requests on its stdin: close its input (it exits at EOF), wait,
    kill it if it does not end, and close its output."""
    with contextlib.suppress(OSError):
        proc.stdin.close()
    wait_or_kill(proc, timeout_s)
    proc.stdout.close()
