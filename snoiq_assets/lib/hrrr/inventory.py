"""wgrib2-style ``.idx`` inventories: parse, select by regex, group into byte ranges.

A line reads ``msg:offset:d=YYYYMMDDHH:VAR:level:forecast:`` (the fields of a message holding
several, like NCEP's U/V wind pairs, number ``3.1``, ``3.2`` and share the message's offset). A message ends one byte before the next distinct offset; the
last one is open-ended (``end=None``: read to the end of the file). Selection works like
Herbie's ``searchString``: a regex searched in ``:VAR:level:forecast:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

_LINE = re.compile(r"^(?P<msg>\d+(?:\.\d+)?):(?P<offset>\d+):d=(?P<date>\d{10}):(?P<rest>.*)$")


class IdxError(ValueError):
    pass


@dataclass(frozen=True)
class IdxEntry:
    msg: str            # message number as written ("3" or "3.1")
    start: int          # first byte
    end: int | None     # last byte, inclusive; None = to the end of the file
    date: str           # run date YYYYMMDDHH
    variable: str       # "TMP" or "var discipline=0 ... parm=201"
    level: str
    forecast: str
    extra: str = ""     # anything after the forecast field

    @property
    def number(self) -> int:
        return int(self.msg.split(".")[0])

    @property
    def field(self) -> int:
        """1-based field within the message (``3.2`` is field 2 of message 3; ``3`` is field 1)."""
        _, _, sub = self.msg.partition(".")
        return int(sub) if sub else 1

    @property
    def search_this(self) -> str:
        return f":{self.variable}:{self.level}:{self.forecast}:"

    @property
    def length(self) -> int | None:
        return None if self.end is None else self.end - self.start + 1

    def line(self, msg: str | None = None, start: int | None = None) -> str:
        tail = f"{self.extra}:" if self.extra else ""
        return (f"{msg or self.msg}:{self.start if start is None else start}:d={self.date}:"
                f"{self.variable}:{self.level}:{self.forecast}:{tail}")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int | None                      # inclusive; None = open-ended
    entries: tuple[IdxEntry, ...] = field(default=())

    @property
    def header(self) -> str:
        return f"bytes={self.start}-" + ("" if self.end is None else str(self.end))

    @property
    def length(self) -> int | None:
        return None if self.end is None else self.end - self.start + 1


def parse_idx(text: str, *, source: str = "<idx>", file_size: int | None = None) -> list[IdxEntry]:
    """Parse an inventory; ``file_size`` (if known) closes the last message's range."""
    rows = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _LINE.match(line)
        if not m:
            raise IdxError(f"{source} line {lineno}: not a wgrib2 inventory line: {line[:120]!r}")
        fields = m.group("rest").split(":")
        if len(fields) < 3:
            raise IdxError(f"{source} line {lineno}: expected VAR:level:forecast after the date: {line[:120]!r}")
        variable, level, forecast = fields[0], fields[1], fields[2]
        extra = ":".join(f for f in fields[3:] if f != "")
        rows.append((m.group("msg"), int(m.group("offset")), m.group("date"), variable, level, forecast, extra))
    if not rows:
        raise IdxError(f"{source}: empty inventory")
    starts = [r[1] for r in rows]
    for i in range(1, len(starts)):
        if starts[i] < starts[i - 1]:
            raise IdxError(f"{source} line {i + 1}: offset {starts[i]} goes backwards (previous {starts[i - 1]})")
    entries = []
    for i, (msg, start, date, variable, level, forecast, extra) in enumerate(rows):
        nxt = next((s for s in starts[i + 1:] if s > start), None)
        end = nxt - 1 if nxt is not None else (file_size - 1 if file_size else None)
        entries.append(IdxEntry(msg, start, end, date, variable, level, forecast, extra))
    return entries


def select(entries: list[IdxEntry], pattern: str) -> list[IdxEntry]:
    """Entries whose ``:VAR:level:forecast:`` matches ``pattern`` (re.search), in file order."""
    rx = re.compile(pattern)
    return [e for e in entries if rx.search(e.search_this)]


def whole_messages(entries: list[IdxEntry], selected: list[IdxEntry]) -> list[IdxEntry]:
    """``selected`` plus the other fields of each selected field's message (``3.1`` brings
    ``3.2``): a byte range fetches whole messages, so the landed file's inventory lists them all."""
    starts = {e.start for e in selected}
    return [e for e in entries if e.start in starts]


def group_ranges(selected: list[IdxEntry]) -> list[ByteRange]:
    """Merge selected messages that follow each other in the file into one range each."""
    groups: list[ByteRange] = []
    for e in sorted(selected, key=lambda e: e.start):
        if groups and e.start == groups[-1].entries[-1].start:
            groups[-1] = replace(groups[-1], entries=groups[-1].entries + (e,))  # another field of a message in it
        elif groups and groups[-1].end is not None and groups[-1].end + 1 >= e.start:
            last = groups[-1]
            if e.start <= last.end and e.end is not None and e.end <= last.end:
                groups[-1] = replace(last, entries=last.entries + (e,))  # a sub-message already covered
            else:
                groups[-1] = ByteRange(last.start, e.end, last.entries + (e,))
        else:
            groups.append(ByteRange(e.start, e.end, (e,)))
    return groups


def subset_idx(ranges: list[ByteRange], sizes: list[int]) -> str:
    """The inventory of a file made by concatenating ``ranges`` (with the byte sizes fetched)."""
    lines, pos, n = [], 0, 0
    for rng, size in zip(ranges, sizes):
        seen: dict[int, int] = {}
        for e in rng.entries:
            if e.start not in seen:
                n += 1
                seen[e.start] = n
            sub = e.msg.split(".", 1)
            msg = f"{seen[e.start]}.{sub[1]}" if len(sub) == 2 else str(seen[e.start])
            lines.append(e.line(msg=msg, start=pos + (e.start - rng.start)))
        pos += size
    return "\n".join(lines) + "\n"
