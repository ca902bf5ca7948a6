"""The local MLflow tracking database follows its SNOIQ_HOME when the folder moves.

MLflow stores absolute artifact paths in its database (each experiment's
``artifact_location``, each run's ``artifact_uri``, each model version's ``source``). The local
profile keeps that database and the artifacts together in SNOIQ_HOME, so after ``mv`` of the
home every stored path still names the old folder: new runs would write their artifacts there
(or fail), and old ones could no longer be read. ``relocate_artifact_root`` rewrites the old
prefix to the new one in every such column, in one transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# (table, column) holding artifact paths, in MLflow's SQLAlchemy schema.
PATH_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                ("model_versions", "source"), ("model_versions", "storage_location"),
                ("logged_models", "artifact_location"))


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


def relocate_artifact_root(db: Path, old_root: str, new_root: str) -> int:
    """Replace the ``old_root`` prefix by ``new_root`` in every artifact path; return rows changed."""
    old_root, new_root = old_root.rstrip("/"), new_root.rstrip("/")
    changed = 0
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
        for table, column in PATH_COLUMNS:
            if table not in tables:
                continue
            columns = {r[1] for r in con.execute(f"pragma table_info({table})")}
            if column not in columns:
                continue
            for start in (old_root + "/", "file://" + old_root + "/"):
                new = start.replace(old_root, new_root)
                cur = con.execute(
                    f"update {table} set {column} = ? || substr({column}, ?) "
                    f"where substr({column}, 1, ?) = ?", (new, len(start) + 1, len(start), start))
                changed += cur.rowcount
    return changed
