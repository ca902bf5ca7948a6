# The system's SQLite library is loaded first, before anything imports ecCodes: eccodeslib
# bundles an older libsqlite3 (3.26) which, once loaded, is the one the whole process uses, and
# MLflow's SQLite tracking store refuses it ("MLflow requires SQLite >= 3.31.0").
import sqlite3  # noqa: F401

# libpq likewise, for the same reason: psycopg2-binary (Dagster's Postgres storage) bundles its
# own OpenLDAP, and once eckitlib's copy is loaded, psycopg2's binds to it and crashes the
# process at exit (SIGSEGV in libldap's destructor, after the work is done) in every process
# that has used both, e.g. a run on the compose stack's Postgres instance that decodes GRIB.
try:
    import psycopg2  # noqa: F401
except ImportError:   # not installed: nothing to clash with
    pass
