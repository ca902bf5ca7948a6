"""A real PostgreSQL for tests and benchmarks: PostgreSQL 16 from PyPI (``pgserver``: the
server binaries in the wheel), listening on a Unix socket only, nothing on TCP. As root,
pgserver runs the server as a system user of its own (``pgserver``, created with ``useradd``),
since PostgreSQL refuses to run as root.

    with RealPostgres(tmp / "pg") as pg:
        pg.psql("CREATE DATABASE dagster;")
        url = pg.url("dagster")   # postgresql+psycopg2://postgres@/dagster?host=<socket folder>
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse


class RealPostgres:
    """One server with its data in ``data``; ``stop()`` (or leaving the ``with``) stops it and
    removes the data."""

    def __init__(self, data: Path):
        with warnings.catch_warnings():   # platformdirs: no XDG_RUNTIME_DIR in a container
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver._commands import POSTGRES_BIN_PATH

        self.data = Path(data)
        self._server = pgserver.get_server(self.data, cleanup_mode="delete")
        # libpq's `host` may be a socket folder: what every client here is given
        self.socket_dir = parse_qs(urlparse(self._server.get_uri()).query)["host"][0]
        self.psql_binary = str(POSTGRES_BIN_PATH / "psql")

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        """A SQLAlchemy URL with the driver Dagster's Postgres storage installs (psycopg2)."""
        return f"postgresql+psycopg2://{user}@/{database}?host={self.socket_dir}"

    def psql(self, sql: str) -> str:
        """Run ``sql`` as the superuser ``postgres`` (before any password is required)."""
        return self._server.psql(sql)

    def psql_as(self, user: str, password: str, database: str, *args: str) -> subprocess.CompletedProcess:
        """The ``psql`` client as ``user``, with its password, on ``database``."""
        return subprocess.run([self.psql_binary, "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir, "-U", user,
                               "-d", database, *args], env={**os.environ, "PGPASSWORD": password},
                              capture_output=True, text=True, timeout=60)

    def require_passwords(self) -> None:
        """Password authentication (scram-sha-256) on every connection, as the postgres image
        sets up; afterwards ``psql`` as the password-less superuser no longer connects."""
        (self.data / "pg_hba.conf").write_text("local all all scram-sha-256\n")
        self._server.psql("SELECT pg_reload_conf();")

    def stop(self) -> None:
        self._server.cleanup()

    def __enter__(self) -> "RealPostgres":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
