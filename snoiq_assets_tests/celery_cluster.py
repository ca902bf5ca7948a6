"""A real Celery set-up for tests and benchmarks: Debian's ``redis-server`` as the broker on a
free loopback port, and Celery workers running Dagster steps (``dagster_celery.app``).

Each process is started in its own session and stopped by its PID (SIGTERM, then SIGKILL), so
several test runs can share a machine. The workers get their broker and result backend the way
``dagster-celery worker start -y <yaml>`` gives them: a ``dagster_celery_config`` module on
their PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from snoiq_assets_tests.s3server import free_port, stop_process_group

ROOT = Path(__file__).resolve().parent.parent


def redis_binary() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if not found:
        raise RuntimeError("the 'redis-server' binary is not installed; `apt-get install redis-server` "
                           "(.ci/run installs it)")
    return found


def _log_tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@dataclass
class RedisServer:
    workdir: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 30.0) -> "RedisServer":
        import redis

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = self.workdir / "redis.log"
        # No persistence (a test broker), loopback only.
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {_log_tail(log)}")
            try:
                if redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).ping():
                    return self
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, term_wait_s=10, kill_wait_s=10)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def write_worker_config(config_dir: Path, broker: str, backend: str) -> Path:
    """The ``dagster_celery_config`` module ``dagster-celery worker start`` writes from its YAML."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "dagster_celery_config.py").write_text(f"broker_url = {broker!r}\nresult_backend = {backend!r}\n")
    return config_dir


@dataclass
class CeleryWorker:
    """One Celery worker process (one step at a time) consuming Dagster's ``dagster`` queue."""

    name: str
    config_dir: Path
    env: dict
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def hostname_prefix(self) -> str:
        return self.name + "@"

    def start(self) -> "CeleryWorker":
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.config_dir), str(ROOT), env.get("PYTHONPATH")) if p)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker", "--pool=solo",
                 "--concurrency=1", "--prefetch-multiplier=1", "-Q", "dagster", "-n", f"{self.name}@%h",
                 "--loglevel=INFO", "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while " ready." not in _log_tail(self.log, 100_000):
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker {self.name} exited with {self.proc.returncode}: {_log_tail(self.log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery worker {self.name} not ready within {timeout:.0f} s: {_log_tail(self.log)}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, term_wait_s=30, kill_wait_s=10)


class CeleryCluster:
    """A Redis broker and ``workers`` Celery workers sharing ``env`` (instance, lake, settings)."""

    def __init__(self, workdir: Path, env: dict, workers: int = 2):
        self.workdir, self.base_env, self.n = workdir, env, workers
        self.redis = RedisServer(workdir / "redis")
        self.workers: list[CeleryWorker] = []

    @property
    def broker(self) -> str:
        return self.redis.url(0)

    def __enter__(self) -> "CeleryCluster":
        self.redis.start()
        try:
            config_dir = write_worker_config(self.workdir / "celery_config", self.redis.url(0), self.redis.url(1))
            env = {**self.base_env, "SNOIQ_CELERY_BROKER": self.redis.url(0), "SNOIQ_CELERY_BACKEND": self.redis.url(1)}
            self.env = env
            self.workers = [CeleryWorker(f"snoiq{i + 1}", config_dir, env, self.workdir / f"worker{i + 1}.log").start()
                            for i in range(self.n)]
            for w in self.workers:
                w.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            w.stop()
        self.redis.stop()
