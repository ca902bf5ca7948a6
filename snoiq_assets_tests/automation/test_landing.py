"""Landing detection over real stores (local folder and S3 server)."""

import time

from snoiq_assets.lib.landing import LandingCursor, run_key_for, scan_landings


def scan(store, cursor, prefix="raw/observations/"):
    result = scan_landings(store.list(prefix), LandingCursor.from_json(cursor.to_json()))
    return result


def test_new_then_idempotent_then_changed(store):
    store.put("raw/observations/A.csv", b"1")
    store.put("raw/observations/B.csv", b"2")
    first = scan(store, LandingCursor())
    assert [i.key for i in first.changed] == ["raw/observations/A.csv", "raw/observations/B.csv"]
    # Seen twice (e.g. after a daemon restart, with the cursor reloaded from JSON): nothing new.
    again = scan(store, first.cursor)
    assert again.changed == []
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    store.put("raw/observations/A.csv", b"1-changed")
    changed = scan(store, again.cursor)
    assert [i.key for i in changed.changed] == ["raw/observations/A.csv"]
    assert run_key_for(changed.changed[0]) != run_key_for(first.changed[0])
    assert scan(store, changed.cursor).changed == []


def test_burst_of_500_reported_once(store):
    for i in range(500):
        store.put(f"raw/observations/S{i:04d}.csv", b"x")
    first = scan(store, LandingCursor())
    assert len(first.changed) == 500 and len({run_key_for(i) for i in first.changed}) == 500
    assert scan(store, first.cursor).changed == []


def test_old_files_outside_window_not_rescanned(store):
    store.put("raw/observations/A.csv", b"1")
    first = scan(store, LandingCursor())
    # Pretend the watermark moved far ahead: A is no longer in the recent window nor reported.
    import datetime as dt

    moved = LandingCursor(watermark=first.cursor.watermark + dt.timedelta(hours=1), recent=set())
    assert scan(store, moved).changed == []
    assert len(scan(store, moved).cursor.recent) == 0
