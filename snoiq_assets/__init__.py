# The system's SQLite library is loaded first, before anything imports ecCodes: eccodeslib
# bundles an older libsqlite3 (3.26) which, once loaded, is the one the whole process uses, and
# MLflow's SQLite tracking store refuses it ("MLflow requires SQLite >= 3.31.0").
import sqlite3  # noqa: F401
