"""Stopping the long-lived helper children (decoder, model load check) and naming their end."""

import signal
import subprocess
import sys

from snoiq_assets.lib.childproc import describe_exit, signal_name, stop


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_a_child_that_ends_at_eof_is_stopped_by_closing_its_input():
    proc = _child("import sys; sys.stdin.read(); sys.exit(3)")
    stop(proc, timeout_s=30)
    assert proc.returncode == 3 and proc.stdout.closed


def test_a_child_that_ignores_its_input_is_killed_after_the_timeout():
    proc = _child("import time; time.sleep(60)")
    stop(proc, timeout_s=0.5)
    assert proc.returncode == -signal.SIGKILL
    assert describe_exit(proc.returncode) == "killed by SIGKILL"


def test_exits_are_named():
    assert signal_name(-signal.SIGSEGV) == "SIGSEGV" and signal_name(-200) == "signal 200"
    assert describe_exit(None) == "did not exit" and describe_exit(2) == "exited with status 2"
    assert describe_exit(-signal.SIGABRT) == "killed by SIGABRT"
