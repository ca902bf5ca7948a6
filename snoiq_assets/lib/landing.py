"""Finding new and changed files in a landing prefix, for the sensors.

A sensor lists its prefix through the ObjectStore each tick and keeps a small cursor:

- ``watermark``: the newest LastModified seen so far;
- ``recent``: a short digest of (key, version token) for each object modified within ``slack``
  of the watermark (digests, not the keys themselves, keep a burst of 10,000 files in ~200 kB).

An object is reported when it is newer than ``watermark - slack`` and its version token is not
the one already recorded. So an overwritten file is seen again (its LastModified moves), the
same file seen twice is reported once, and a file whose upload finished while the previous tick
was listing (LastModified slightly older than the watermark) is still caught. The cursor stays
small however many files have landed, unlike a key -> token map of the whole prefix.

Run keys built from ``key@version_token`` make the launch itself idempotent on top of this.

Limit: a file copied in with an old modification time preserved (``cp -p``, ``rsync -t``) more
than ``slack`` before the watermark is not seen; touch it, or land it with a fresh write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable

from snoiq_assets.lib.storage import ObjectInfo

DEFAULT_SLACK = dt.timedelta(minutes=10)


def _digest(info: ObjectInfo) -> str:
    return hashlib.blake2b(f"{info.key}\0{info.version_token}".encode(), digest_size=8).hexdigest()


@dataclass
class LandingCursor:
    watermark: dt.datetime | None = None
    recent: set[str] = field(default_factory=set)

    def to_json(self) -> str:
        return json.dumps(
            {"watermark": self.watermark.isoformat() if self.watermark else None, "recent": sorted(self.recent)},
            sort_keys=True, separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> "LandingCursor":
        if not text:
            return cls()
        data = json.loads(text)
        wm = data.get("watermark")
        return cls(watermark=dt.datetime.fromisoformat(wm) if wm else None, recent=set(data.get("recent", [])))


@dataclass
class LandingScan:
    changed: list[ObjectInfo]
    cursor: LandingCursor
    listed: int


def scan_landings(
    objects: Iterable[ObjectInfo],
    cursor: LandingCursor,
    *,
    accept: Callable[[str], bool] = lambda key: True,
    slack: dt.timedelta = DEFAULT_SLACK,
) -> LandingScan:
    """New or changed objects since ``cursor``, oldest first, and the next cursor."""
    floor = cursor.watermark - slack if cursor.watermark else None
    changed: list[ObjectInfo] = []
    newest = cursor.watermark
    window: list[ObjectInfo] = []
    listed = 0
    for info in objects:
        listed += 1
        if not accept(info.key):
            continue
        if floor is not None and info.last_modified < floor:
            continue
        window.append(info)
        if newest is None or info.last_modified > newest:
            newest = info.last_modified
        if _digest(info) not in cursor.recent:
            changed.append(info)
    new_floor = newest - slack if newest else None
    recent = {_digest(info) for info in window if new_floor is None or info.last_modified >= new_floor}
    changed.sort(key=lambda i: (i.last_modified, i.key))
    return LandingScan(changed=changed, cursor=LandingCursor(watermark=newest, recent=recent), listed=listed)


def run_key_for(info: ObjectInfo) -> str:
    """The same file seen twice gives the same run key; a rewritten file a new one."""
    return f"{info.key}@{info.version_token}"
