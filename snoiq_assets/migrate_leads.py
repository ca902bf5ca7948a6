"""`python -m snoiq_assets.migrate_leads [--dry-run]`: the one-off move of lead-less lake files.

Before forecast hours had their own files, ``hrrr_fields`` and ``grid_join_features`` stored one
file per run cycle, ``lake/<asset>/<cycle>.parquet``, holding the one lead that run decoded. This
moves each to ``lake/<asset>/<cycle>/f<FF>.parquet``, its lead read from the file (the footer's
``forecast_hour`` for hrrr_fields, the ``forecast_hour`` column for grid_join_features). Until it
runs, the old files stay readable as that one lead (``StoredParquet.leads``). Safe to re-run: a
moved file is no longer there to move; an existing lead file is never overwritten.
"""

from __future__ import annotations

import argparse
import sys

import polars as pl

from snoiq_assets.check import checked_settings
from snoiq_assets.lib.lake import lead_file_moves
from snoiq_assets.lib.parquet import parquet_key_value_metadata
from snoiq_assets.lib.storage import ObjectStore, store_from_settings


class MigrationError(ValueError):
    pass


def fields_lead(store: ObjectStore, key: str) -> int:
    meta = parquet_key_value_metadata(store, key)
    if "forecast_hour" not in meta:
        raise MigrationError(f"{store.uri(key)} has no forecast_hour in its Parquet metadata")
    return int(meta["forecast_hour"])


def join_lead(store: ObjectStore, key: str) -> int:
    with store.local_path(key) as path:
        leads = pl.scan_parquet(path).select(pl.col("forecast_hour").unique()).collect()["forecast_hour"].to_list()
    if len(leads) != 1:
        raise MigrationError(f"{store.uri(key)} holds forecast hours {sorted(leads)}, expected exactly one")
    return int(leads[0])


ASSETS = {"hrrr_fields": fields_lead, "grid_join_features": join_lead}


def migrate(store: ObjectStore, dry_run: bool = False) -> list[tuple[str, str]]:
    """Move every lead-less file of the lead-keyed assets; the (old, new) keys moved (or to move)."""
    done = []
    for asset, lead_of in ASSETS.items():
        for old, new in lead_file_moves(store, asset, lead_of):
            if store.exists(new):
                raise MigrationError(f"{store.uri(new)} already exists; {store.uri(old)} was not moved "
                                     "(remove whichever is stale, then re-run)")
            if not dry_run:
                store.move(old, new)
            done.append((old, new))
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="list the moves without making them")
    args = ap.parse_args(argv)
    settings = checked_settings()
    if settings is None:
        return 2
    try:
        moves = migrate(store_from_settings(settings), dry_run=args.dry_run)
    except MigrationError as exc:
        print(f"migrate_leads: {exc}", file=sys.stderr)
        return 1
    for old, new in moves:
        print(f"{'would move' if args.dry_run else 'moved'} {old} -> {new}")
    print(f"migrate_leads: {len(moves)} file(s) {'to move' if args.dry_run else 'moved'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
