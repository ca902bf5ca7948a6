"""`dg dev` (webserver + daemon) as `make dev` starts it, and a Playwright tab on it: shared by
the browser tests (``ui/test_browser.py``) and the demo's UI check (``test_demo.py``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERVER_START_LIMIT_S = 240   # wait limits, not assertions on speed
UI_LIMIT_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_signals() -> None:
    # Started from a non-interactive shell, `dg dev` (like `dagster dev`) inherits SIGINT ignored and maps
    # SIGTERM onto it; give it back the default handlers so SIGTERM stops it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def log_tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (webserver, daemon, code servers), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # stragglers left in the group
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


class ServerFailed(RuntimeError):
    """`dg dev` exited or did not answer in time; the message has its log's tail."""


@contextlib.contextmanager
def dg_dev(cwd: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`dg dev` on 127.0.0.1 and a free port (as `make dev` runs it, from the repo); yields its
    URL once ``/server_info`` answers; stopped with its whole process group on exit."""
    port = free_port()
    dg_cli = Path(sys.executable).parent / "dg"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(dg_cli), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_default_signals, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_LIMIT_S
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"dg dev exited with {proc.returncode}:\n{log_tail(log)}")
            try:
                with urllib.request.urlopen(url + "/server_info", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"dg dev did not answer /server_info in {SERVER_START_LIMIT_S} s:\n{log_tail(log)}")
            time.sleep(1)
        yield url
    finally:
        stop(proc)


@contextlib.contextmanager
def chromium() -> Iterator:
    """Headless Chromium (Debian's) through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def ui_tab(browser, url: str) -> Iterator:
    """One tab on the UI at ``url``; the first visit dismisses the community modal (Skip)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_LIMIT_MS)   # the UI is slow to render on two busy cores
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(UI_LIMIT_MS)
    try:
        pg = context.new_page()
        pg.goto(url + "/asset-groups")
        modal = pg.get_by_role("dialog").filter(has_text="Join the Dagster community")
        expect(modal).to_be_visible()
        modal.get_by_role("button", name="Skip").click()
        expect(modal).to_have_count(0)
        yield pg
    finally:
        context.close()
