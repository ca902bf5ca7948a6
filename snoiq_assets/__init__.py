# The system's SQLite library is loaded first, before anything imports ecCodes: eccodeslib
# bundles an older libsqlite3 (3.26) which, once loaded, is the one the whole process uses, and
# MLflow's SQLite tracking store refuses it ("MLflow requires SQLite >= 3.31.0").
import sqlite3  # noqa: F401

# libpq likewise, for the same reason: psycopg2-binary (Dagster's Postgres storage) bundles its
# own OpenLDAP, and once eckitlib's copy is loaded, psycopg2's binds to it and crashes the
# process at exit (SIGSEGV in libldap's destructor, after the work is done) in every process
# that loads both, e.g. a run on the compose stack's Postgres instance that decodes GRIB.
# Loaded first, it is safe. Not after: a process that imported ecCodes before this package
# would crash at exit on psycopg2's import alone (it may still, if it goes on to use Postgres).
import sys as _sys

if "gribapi" not in _sys.modules:
    try:
        import psycopg2  # noqa: F401
    except ImportError:   # not installed: nothing to clash with
        pass
