"""How this project opens ``$SNOIQ_HOME/snoiq.duckdb``: in a storage format the DuckDB CLI a
user can install still reads.

The Python duckdb 2.x in the lock would otherwise create the file in its newest format
(version 69), which the CLI from ``pip install duckdb-cli`` (1.5.x, the one on PyPI; Debian
ships none) refuses with "we can only read versions between 64 and 68". The format is fixed
when the file is created; every connection here passes the same setting so whichever writer
creates it first creates it readable, and checkpoints keep that format.
"""

from __future__ import annotations

from pathlib import Path

# DuckDB 1.4 and later read this (the duckdb-cli 1.5.x on PyPI included).
STORAGE_COMPATIBILITY_VERSION = "v1.4.0"


def connection_config() -> dict[str, str]:
    """The ``config=`` of every read-write connection to the project's DuckDB file."""
    return {"storage_compatibility_version": STORAGE_COMPATIBILITY_VERSION}


def connect(path: str | Path):
    """A read-write connection creating the file, if missing, in the readable format."""
    import duckdb

    return duckdb.connect(str(path), config=connection_config())
