"""GRIB2 checks and decoding: framing, inventory-vs-GRIB, grid, then xarray + cfgrib (or ecCodes) -> Arrow.

Order of checks (each failure is an ``HrrrDataError`` naming file, message and expectation):
1. framing: every message starts with ``GRIB``, is edition 2, fits in the file and ends in
   ``7777``; no trailing bytes (catches truncation at any offset);
2. ecCodes reads the product keys of each field: a message may hold several fields (NCEP packs
   10 m U and V wind into one; sections 2-7, 3-7 or 4-7 repeat, WMO FM 92 GRIB2 section 0
   note), each field is addressed as ``N.k`` like wgrib2 does and decoded on its own;
3. the ``.idx`` (if given) lists exactly these fields (``N`` or ``N.k``) at their message's
   offset, and the variable/level of each;
4. every message is on the expected grid (``grid_id``);
5. each requested variable is present exactly once (its absence is an error), for the
   requested forecast hour and, if given, the partition's run cycle.

The file is read once: one pass frames every message, opens it with ecCodes and reads its
keys; the handles of the requested messages are kept for decoding. Two decode engines share
these checks and that pass:

- ``"eccodes"`` (default): the kept handles decoded directly by ecCodes, one message per
  thread on every usable core (cffi releases the GIL during ecCodes' unpacking).
- ``"cfgrib"`` (the xarray stack): xarray + cfgrib, one ``open_dataset`` per level/step group
  with ``filter_by_keys`` (``open_dataset`` alone would drop variables whose level or step
  coordinates conflict), fed the kept handles as a cfgrib fieldset; every requested variable
  must come back exactly once or the decode fails naming it. cfgrib's backend reads under one
  global lock, so it cannot use threads. For an ``xarray.Dataset`` of a landed file or a stored
  partition, use ``lib/hrrr/dataset.py``.

Both give a direct ecCodes decode's values as float32, missing (bitmap) points as nulls.
cfgrib costs more: its OnDiskArray copies each field element by element (``.flat[:] =``) into
a NaN-filled array and reads shortName/name/units per variable; see benchmarks/bench_hrrr.py.
"""

from __future__ import annotations

import datetime as dt
import json
import mmap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from snoiq_assets.lib.cpus import available_cpus
from snoiq_assets.lib.hrrr import HrrrDataError
from snoiq_assets.lib.hrrr.grid import grid_id_from_keys, grid_keys
from snoiq_assets.lib.hrrr.inventory import IdxEntry, IdxError, parse_idx
from snoiq_assets.lib.hrrr.variables import (
    WGRIB2_NAMES,
    Variable,
    wgrib2_forecast,
    wgrib2_level,
    wgrib2_name,
)

MAX_GAP = 8  # stray bytes allowed between messages

PRODUCT_KEYS = ("discipline", "parameterCategory", "parameterNumber", "typeOfFirstFixedSurface", "level",
                "stepType", "startStep", "endStep", "dataDate", "dataTime", "centre")


@dataclass
class MessageInfo:
    """One field of a GRIB2 message (most messages hold one; NCEP's U/V messages hold two)."""

    number: int          # message number, 1-based
    offset: int          # of the message
    length: int          # of the message
    keys: dict
    grid_id: str
    field: int = 1       # 1-based field within the message
    fields: int = 1      # fields in the message

    @property
    def label(self) -> str:
        """wgrib2's name for the field: ``N``, or ``N.k`` in a message of several fields."""
        return str(self.number) if self.fields == 1 else f"{self.number}.{self.field}"

    @property
    def ref(self) -> tuple[int, int]:
        return self.number, self.field

    @property
    def run_time(self) -> dt.datetime:
        d, t = int(self.keys["dataDate"]), int(self.keys["dataTime"])
        return dt.datetime(d // 10000, d // 100 % 100, d % 100, t // 100, t % 100, tzinfo=dt.timezone.utc)

    @property
    def wgrib2_name(self) -> str:
        k = self.keys
        return wgrib2_name(k["discipline"], k["parameterCategory"], k["parameterNumber"], k.get("centre_code", 7))

    @property
    def wgrib2_level(self) -> str:
        return wgrib2_level(self.keys["typeOfFirstFixedSurface"], self.keys["level"])

    def idx_line(self) -> str:
        k = self.keys
        fc = wgrib2_forecast(k["stepType"], k["startStep"], k["endStep"])
        date = self.run_time.strftime("%Y%m%d%H")
        return f"{self.label}:{self.offset}:d={date}:{self.wgrib2_name}:{self.wgrib2_level}:{fc}:"


GZIP_MAGIC = b"\x1f\x8b"


def gunzip_grib(src: str | Path, dest: str | Path, name: str) -> int:
    """Decompress a gzip-compressed GRIB2 file (MRMS is distributed as ``.grib2.gz``) into
    ``dest``; return the decompressed size. A file that is not gzip, or a truncated or corrupt
    gzip stream, raises ``HrrrDataError`` saying so."""
    import gzip
    import shutil
    import zlib

    with open(src, "rb") as fh:
        if fh.read(2) != GZIP_MAGIC:
            raise HrrrDataError(name, "not gzip data (no gzip magic bytes 1f 8b)", expected="a .grib2.gz file")
    try:
        with gzip.open(src, "rb") as zin, open(dest, "wb") as out:
            shutil.copyfileobj(zin, out, 8 << 20)
            return out.tell()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise HrrrDataError(name, f"gzip cannot decompress the file: {type(exc).__name__}: {exc}",
                            expected="a complete gzip stream") from None


def scan_framing(data, name: str) -> list[tuple[int, int]]:
    """(offset, length) of each GRIB2 message; raise on any framing defect."""
    size = len(data)
    out, pos, n = [], 0, 0
    if size == 0:
        raise HrrrDataError(name, "empty file", message=1, expected="a GRIB2 message")
    if data[:2] == GZIP_MAGIC:
        raise HrrrDataError(name, "the file is gzip-compressed (it starts with the gzip magic bytes 1f 8b); "
                            "decompress it first, or land it as <name>.grib2.gz for hrrr_raw to decompress",
                            message=1, expected="'GRIB'", found="gzip data")
    while pos < size:
        n += 1
        if data[pos:pos + 4] != b"GRIB":
            # Tolerate a few stray bytes between messages, as ecCodes and wgrib2 do (Herbie's
            # subsets carry one: its ranges end on the next message's first byte).
            nxt = data.find(b"GRIB", pos, pos + MAX_GAP + 4)
            if nxt == -1 and size - pos <= MAX_GAP and n > 1:
                break   # trailing padding after the last message
            if nxt != -1 and n > 1:
                pos = nxt
        if size - pos < 16:
            raise HrrrDataError(name, f"truncated: {size - pos} stray bytes at offset {pos}", message=n,
                                expected="a 16-byte GRIB2 indicator section")
        if data[pos:pos + 4] != b"GRIB":
            raise HrrrDataError(name, f"no GRIB marker at offset {pos}", message=n, expected="'GRIB'",
                                found=repr(bytes(data[pos:pos + 4])))
        edition = data[pos + 7]
        if edition != 2:
            raise HrrrDataError(name, f"unsupported GRIB edition at offset {pos}", message=n, expected="edition 2",
                                found=f"edition {edition}")
        length = int.from_bytes(data[pos + 8:pos + 16], "big")
        if length < 16 + 4 or pos + length > size:
            raise HrrrDataError(name, f"truncated or corrupt: message at offset {pos} declares {length} bytes but "
                                f"{size - pos} remain", message=n, expected=f"{length} bytes")
        if data[pos + length - 4:pos + length] != b"7777":
            raise HrrrDataError(name, f"corrupt: message at offset {pos} does not end in '7777'", message=n,
                                expected="'7777' end marker", found=repr(bytes(data[pos + length - 4:pos + length])))
        out.append((pos, length))
        pos += length
    return out


# Missing points (bitmap) are decoded as this value, then set to NaN (as cfgrib does): ecCodes'
# default missingValue (9999) is a legal value for some fields.
MISSING_VALUE = float(np.finfo(np.float32).max)


def split_fields(data, offset: int, length: int, name: str, number: int) -> list[tuple[bytes, bytes]]:
    """Each field of a framed GRIB2 message as ``(section 3, a one-field GRIB2 message)``.

    A message holds sections 1-7 once, then may repeat 2-7, 3-7 or 4-7 for further fields; a
    repeated field inherits the last section 2 and 3 seen, and a bitmap indicator 254 ("the
    bitmap defined earlier in this message applies") takes the last bitmap given. A message of
    one field is returned as it is (one copy, as before). Any other layout raises
    ``HrrrDataError``.
    """
    end = offset + length - 4
    pos = offset + 16
    current: dict[int, tuple[int, int]] = {}   # section number -> (position, size) in data
    last_bitmap: tuple[int, int] | None = None
    fields: list[dict[int, tuple[int, int]]] = []
    expected: tuple[int, ...] = (1,)
    while pos < end:
        size = int.from_bytes(data[pos:pos + 4], "big") if pos + 5 <= end else 0
        sec_no = data[pos + 4] if size else None
        if size < 5 or pos + size > end or sec_no not in expected:
            raise HrrrDataError(name, f"corrupt: section layout broken at offset {pos}", message=number,
                                expected=f"section {' or '.join(map(str, expected))} within the message's "
                                f"{length} bytes", found=f"section {sec_no} of {size} bytes")
        where = (pos, size)
        if sec_no == 6 and data[pos + 5] == 0:
            last_bitmap = where
        elif sec_no == 6 and data[pos + 5] == 254:
            if last_bitmap is None:
                raise HrrrDataError(name, f"corrupt: field {len(fields) + 1} refers to an earlier bitmap "
                                    "(indicator 254) but none was given", message=number,
                                    expected="a bitmap (indicator 0) before indicator 254")
            where = last_bitmap
        current[sec_no] = where
        pos += size
        if sec_no == 7:
            fields.append(dict(current))
        expected = {1: (2, 3), 2: (3,), 3: (4,), 4: (5,), 5: (6,), 6: (7,), 7: (2, 3, 4)}[sec_no]
    if not fields or pos != end:
        raise HrrrDataError(name, "corrupt: the message holds no complete field (sections 1 to 7)",
                            message=number, expected="sections 1, 3, 4, 5, 6, 7 before '7777'")

    def section(secs: dict, k: int) -> bytes:
        p, n = secs[k]
        return bytes(data[p:p + n])

    if len(fields) == 1:
        return [(section(fields[0], 3), bytes(data[offset:offset + length]))]
    out = []
    for secs in fields:
        body = b"".join(section(secs, k) for k in (1, 2, 3, 4, 5, 6, 7) if k in secs)
        total = 16 + len(body) + 4
        out.append((section(secs, 3), bytes(data[offset:offset + 8]) + total.to_bytes(8, "big") + body + b"7777"))
    return out


def _scan(path: str | Path, name: str, keep=None) -> tuple[list[MessageInfo], dict[tuple[int, int], int]]:
    """One pass over the file: framing, then each field's keys through ecCodes.

    ``keep(keys) -> bool`` selects fields whose ecCodes handle is returned (``MessageInfo.ref``
    -> handle) for decoding; the caller releases them. Every other handle is released at once.
    """
    import eccodes

    infos: list[MessageInfo] = []
    kept: dict[tuple[int, int], int] = {}
    grid_ids: dict[bytes, str] = {}   # the grid keys all live in section 3: same bytes, same grid_id
    with open(path, "rb") as fh:
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise HrrrDataError(name, "empty file", message=1, expected="a GRIB2 message") from None
        try:
            for n, (offset, length) in enumerate(scan_framing(data, name), 1):
                parts = split_fields(data, offset, length, name, n)
                for k, (sec3, raw) in enumerate(parts, 1):
                    where = f"at offset {offset}" + (f" (field {k} of {len(parts)})" if len(parts) > 1 else "")
                    try:
                        h = eccodes.codes_new_from_message(raw)
                    except Exception as exc:  # noqa: BLE001
                        raise HrrrDataError(name, f"ecCodes cannot read the message {where}: {exc}",
                                            message=n, expected="a valid GRIB2 message") from None
                    hold = False
                    try:
                        keys = {}
                        for key in PRODUCT_KEYS:
                            keys[key] = eccodes.codes_get(h, key, str if key in ("stepType", "centre") else int)
                        keys["centre_code"] = eccodes.codes_get(h, "centre", int)
                        gid = grid_ids.get(sec3)
                        if gid is None:
                            gid = grid_ids[sec3] = grid_id_from_keys(grid_keys(h))
                        info = MessageInfo(n, offset, length, keys, gid, k, len(parts))
                        info.run_time  # noqa: B018 - a corrupt date fails here, naming the message
                        infos.append(info)
                        hold = keep is not None and keep(keys)
                    except Exception as exc:  # noqa: BLE001
                        raise HrrrDataError(name, f"ecCodes cannot read the keys of the message {where}: "
                                            f"{exc}", message=n, expected="a valid GRIB2 message") from None
                    finally:
                        if hold:
                            kept[info.ref] = h
                        else:
                            eccodes.codes_release(h)
        except BaseException:
            for h in kept.values():
                eccodes.codes_release(h)
            raise
        finally:
            data.close()
    return infos, kept


def scan_grib(path: str | Path, name: str | None = None) -> list[MessageInfo]:
    """Frame-check every message and read its product and grid keys (values are not decoded)."""
    return _scan(path, name or str(path))[0]


def _handles_at(path: str | Path, messages: list[MessageInfo], name: str) -> dict[tuple[int, int], int]:
    """ecCodes handles of already-scanned fields, read at their message's offsets."""
    import eccodes

    out: dict[tuple[int, int], int] = {}
    try:
        with open(path, "rb") as fh:
            for m in messages:
                fh.seek(m.offset)
                raw = fh.read(m.length)
                if m.fields > 1:
                    raw = split_fields(raw, 0, m.length, name, m.number)[m.field - 1][1]
                try:
                    out[m.ref] = eccodes.codes_new_from_message(raw)
                except Exception as exc:  # noqa: BLE001
                    raise HrrrDataError(name, f"ecCodes cannot read the message at offset {m.offset}: {exc}",
                                        message=m.number, expected="a valid GRIB2 message") from None
    except BaseException:
        for h in out.values():
            eccodes.codes_release(h)
        raise
    return out


def decode_values(h) -> tuple[np.ndarray, int]:
    """The message's values as float32 (NaN where the bitmap says missing) and the NaN count."""
    import eccodes

    bitmap = bool(eccodes.codes_get(h, "bitmapPresent"))
    if bitmap:
        eccodes.codes_set(h, "missingValue", MISSING_VALUE)
    values = eccodes.codes_get_values(h).astype(np.float32)
    if not bitmap:
        return values, 0
    missing = values == np.float32(MISSING_VALUE)
    n = int(np.count_nonzero(missing))
    if n:
        values[missing] = np.nan
    return values, n


def idx_text(messages: list[MessageInfo]) -> str:
    """A wgrib2-style inventory of a scanned file."""
    return "".join(m.idx_line() + "\n" for m in messages)


def check_idx(entries: list[IdxEntry], messages: list[MessageInfo], name: str) -> None:
    """The inventory must list every field (``N`` or ``N.k``) at its message's offset, with its
    variable and level."""
    by_offset: dict[int, list[MessageInfo]] = {}
    for m in messages:
        by_offset.setdefault(m.offset, []).append(m)
    size = messages[-1].offset + messages[-1].length if messages else 0
    listed: set[tuple[int, int]] = set()
    for e in entries:
        if e.start >= size:
            raise HrrrDataError(name, f".idx entry {e.msg} points at offset {e.start}, past the end of the file "
                                f"({size} bytes)", message=e.number, expected=f"an offset below {size}")
        fields = by_offset.get(e.start)
        if fields is None:
            raise HrrrDataError(name, f".idx entry {e.msg} offset {e.start} is not the start of a GRIB message",
                                message=e.number, expected=f"one of {sorted(by_offset)[:10]}")
        k = e.field
        if k > len(fields):
            raise HrrrDataError(name, f".idx entry {e.msg} names field {k} of the message at offset {e.start}",
                                message=fields[0].number, expected=f"at most {len(fields)} field(s)")
        m = fields[k - 1]
        listed.add(m.ref)
        known = WGRIB2_NAMES.get((m.keys["discipline"], m.keys["parameterCategory"], m.keys["parameterNumber"]))
        idx_var = e.variable
        if known is not None and idx_var != known:
            raise HrrrDataError(name, f".idx entry {e.msg} names the wrong variable at offset {e.start}",
                                message=m.number, expected=f"{idx_var} (from the .idx)", found=known)
        if known is None and idx_var in WGRIB2_NAMES.values():
            raise HrrrDataError(name, f".idx entry {e.msg} names the wrong variable at offset {e.start}",
                                message=m.number, expected=f"{idx_var} (from the .idx)", found=m.wgrib2_name)
        if m.keys["typeOfFirstFixedSurface"] in (1, 103) and e.level != m.wgrib2_level:
            raise HrrrDataError(name, f".idx entry {e.msg} names the wrong level at offset {e.start}",
                                message=m.number, expected=f"{e.level} (from the .idx)", found=m.wgrib2_level)
    missing = [m for m in messages if m.ref not in listed]
    if missing:
        raise HrrrDataError(name, f"fields {[m.label for m in missing[:10]]} are not listed in the .idx",
                            message=missing[0].number, expected="one .idx line per field (N, or N.k for field k "
                            "of a message holding several)")


def parse_and_check_idx(text: str, messages: list[MessageInfo], name: str) -> list[IdxEntry]:
    try:
        entries = parse_idx(text, source=name + ".idx")
    except IdxError as exc:
        raise HrrrDataError(name + ".idx", str(exc), expected="a wgrib2 inventory") from None
    check_idx(entries, messages, name)
    return entries


def check_grid(messages: list[MessageInfo], expected_grid_id: str | None, name: str) -> str:
    gid = messages[0].grid_id if expected_grid_id is None else expected_grid_id
    for m in messages:
        if m.grid_id != gid:
            raise HrrrDataError(name, "the message is on a different grid", message=m.number,
                                expected=f"grid_id {gid[:16]}… (hrrr_grid)", found=f"grid_id {m.grid_id[:16]}…")
    return gid


def find_messages(messages: list[MessageInfo], variables: list[Variable], forecast_hour: int,
                  name: str, run_time: dt.datetime | None = None) -> dict[str, MessageInfo]:
    """The message of each variable; with ``run_time`` the run cycle must be that one (a file
    landed under the wrong hour would otherwise decode silently into the wrong partition)."""
    found = {}
    for var in variables:
        hits = [m for m in messages if var.matches(m.keys)]
        if not hits:
            raise HrrrDataError(name, f"requested variable {var.column} is absent ({len(messages)} messages in file)",
                                message=None, expected=var.describe())
        if len(hits) > 1:
            raise HrrrDataError(name, f"variable {var.column} appears {len(hits)} times "
                                f"(fields {[m.label for m in hits]})", message=hits[1].number,
                                expected=f"exactly one {var.describe()}")
        m = hits[0]
        if m.keys["endStep"] != forecast_hour:
            raise HrrrDataError(name, f"{var.column} is for the wrong forecast hour", message=m.number,
                                expected=f"f{forecast_hour:02d}", found=f"f{m.keys['endStep']:02d}")
        found[var.column] = m
    runs = {m.run_time for m in found.values()}
    if len(runs) > 1:
        raise HrrrDataError(name, f"messages come from several run times {sorted(runs)}",
                            expected="one run cycle per file")
    if run_time is not None and runs and runs != {run_time}:
        m = next(iter(found.values()))
        raise HrrrDataError(name, "the file is for another run cycle", message=m.number,
                            expected=f"run {run_time:%Y-%m-%dT%H}Z (the partition)", found=f"run {m.run_time:%Y-%m-%dT%H}Z")
    return found


ENGINES = ("cfgrib", "eccodes")
DEFAULT_ENGINE = "eccodes"

# Extra ecCodes keys cfgrib copies into each data variable's attributes (as GRIB_<key>), so every
# variable cfgrib returns can be matched back to the catalogue entry it must be.
# Typed as in the scan (cfgrib reads a key's native type: typeOfFirstFixedSurface would be "sfc").
_CFGRIB_READ_KEYS = ("discipline:int", "parameterCategory:int", "parameterNumber:int",
                     "typeOfFirstFixedSurface:int", "level:int", "stepType:str", "startStep:int",
                     "endStep:int")


def _cfgrib_keys(attrs: dict) -> dict:
    """The GRIB keys ``Variable.matches`` needs, from a cfgrib data variable's attributes."""
    return {k.partition(":")[0]: attrs.get("GRIB_" + k) for k in _CFGRIB_READ_KEYS}


@dataclass
class _Field:
    """One decoded variable: its Arrow column (NaN -> null) and statistics, built from the
    float32 values (NaN where missing) by whichever thread decoded them."""

    column: pa.Array
    size: int
    stats: dict
    grib_units: str

    @classmethod
    def of(cls, values: np.ndarray, n_null: int, grib_units: str) -> "_Field":
        if n_null == values.size:
            stats = {"min": None, "mean": None, "max": None, "null_count": n_null}
        elif n_null:
            stats = {"min": float(np.nanmin(values)), "mean": float(np.nanmean(values, dtype=np.float64)),
                     "max": float(np.nanmax(values)), "null_count": n_null}
        else:
            stats = {"min": float(values.min()), "mean": float(values.mean(dtype=np.float64)),
                     "max": float(values.max()), "null_count": 0}
        column = pa.array(values, mask=np.isnan(values)) if n_null else pa.array(values)
        return cls(column, values.size, stats, grib_units)


def decode_threads(n_messages: int) -> int:
    """Threads for the "eccodes" engine: one per usable core, at most one per message."""
    return max(1, min(n_messages, available_cpus()))


def _decode_eccodes(handles: dict[tuple[int, int], int], chosen: dict[str, MessageInfo], variables: list[Variable],
                    name: str) -> dict[str, _Field]:
    """Engine "eccodes": each message's values straight from its ecCodes handle, the messages in
    parallel threads.

    Why threads pay: ecCodes' Python binding calls C through cffi, which releases the GIL for the
    call, so the unpacking (nearly all the decode time) of different handles runs on different
    cores; this ecCodes is built with ``ECCODES_THREADS`` (its global context is locked), and each
    thread works on its own handle only. The float32 cast and NaN count are numpy, which releases
    the GIL too. A native crash in any thread still takes down the whole decoder process, which
    ``isolation.DecoderProcess`` turns into a quarantined file.
    """
    import eccodes

    def one(var: Variable) -> _Field:
        msg = chosen[var.column]
        h = handles[msg.ref]
        try:
            values, n_null = decode_values(h)
            grib_units = eccodes.codes_get(h, "units", str)
        except Exception as exc:  # noqa: BLE001
            raise HrrrDataError(name, f"ecCodes cannot decode the values of {var.column}: {exc}",
                                message=msg.number, expected=var.describe()) from None
        return _Field.of(values, n_null, grib_units)

    threads = decode_threads(len(variables))
    if threads == 1:
        return {var.column: one(var) for var in variables}
    with ThreadPoolExecutor(threads, thread_name_prefix="grib-decode") as pool:
        # Results in request order; the first failure (in that order) is the one raised.
        futures = [pool.submit(one, var) for var in variables]
        return {var.column: fut.result() for var, fut in zip(variables, futures)}


def _cfgrib_groups(handles: dict[tuple[int, int], int], chosen: dict[str, MessageInfo],
                   variables: list[Variable]) -> list[tuple[dict, list[Variable]]]:
    """Requested variables grouped so that one cfgrib dataset holds each group without conflict:
    same level type, level and step type (``open_dataset`` drops variables whose level or step
    coordinates clash), and no paramId twice (cfgrib would silently keep only one message).

    The level type is filtered by the name ecCodes gives the message's own level (the key cfgrib
    filters on: ``heightAboveSea`` for type 102 ...), so no level type needs a table of ours."""
    import eccodes

    groups: dict[tuple, list[tuple[dict, set, list]]] = {}
    for var in variables:
        h = handles[chosen[var.column].ref]
        param_id = eccodes.codes_get(h, "paramId", int)
        fbk = {"typeOfLevel": eccodes.codes_get(h, "typeOfLevel", str), "level": var.level_value,
               "stepType": var.step_type}
        subgroups = groups.setdefault(tuple(fbk.values()), [])
        for fb, params, members in subgroups:
            if param_id not in params:
                params.add(param_id)
                members.append(var)
                break
        else:
            subgroups.append((fbk, {param_id}, [var]))
    return [(fbk, members) for subgroups in groups.values() for fbk, _, members in subgroups]


def _decode_cfgrib(handles: dict[tuple[int, int], int], chosen: dict[str, MessageInfo], variables: list[Variable],
                   name: str) -> dict[str, _Field]:
    """Engine "cfgrib": xarray + cfgrib, one ``open_dataset`` per level/step group.

    cfgrib is given the ecCodes handles the scan already opened, as an in-memory fieldset
    (``{message number: cfgrib.messages.Message}``, cfgrib's documented non-path input), so the
    file is read once; cfgrib builds its index over the group's messages, applies the
    ``filter_by_keys`` and decodes the values (float32, its missing value mapped to NaN). Each
    requested variable must come back exactly once, as one field; anything else fails loudly.
    The handles passed to cfgrib are owned (and released) by its Message objects.
    """
    import xarray as xr
    from cfgrib.messages import Message

    out: dict[str, _Field] = {}
    for fbk, members in _cfgrib_groups(handles, chosen, variables):
        fieldset = {}
        for var in members:
            ref = chosen[var.column].ref
            fieldset[ref] = Message(codes_id=handles.pop(ref))
        first = chosen[members[0].column]
        try:
            ds = xr.open_dataset(
                fieldset, engine="cfgrib", cache=False, mask_and_scale=False,
                backend_kwargs={
                    "filter_by_keys": fbk,
                    # no "geography": values stay 1-D in file order; lat/lon come from hrrr_grid
                    "encode_cf": ("parameter", "time", "vertical"),
                    "read_keys": list(_CFGRIB_READ_KEYS),
                    "errors": "raise",   # never skip a variable silently
                },
            )
        except Exception as exc:  # noqa: BLE001
            cols = ", ".join(v.column for v in members)
            raise HrrrDataError(name, f"cfgrib cannot open {cols}: {exc}", message=first.number,
                                expected=f"one dataset for {fbk}") from None
        with ds:
            returned = {dv: ds[dv].attrs for dv in ds.data_vars}
            for var in members:
                msg = chosen[var.column]
                hits = [dv for dv, a in returned.items() if var.matches(_cfgrib_keys(a))]
                if len(hits) != 1:
                    what = "is missing from" if not hits else f"appears {len(hits)} times ({hits}) in"
                    raise HrrrDataError(name, f"requested variable {var.column} {what} the cfgrib dataset "
                                        f"(data variables {sorted(returned)}; level type {var.level_type}, "
                                        f"cfgrib typeOfLevel {fbk['typeOfLevel']!r})", message=msg.number,
                                        expected=f"exactly one {var.describe()}")
                da = ds[hits[0]]
                if da.dims != ("values",):
                    raise HrrrDataError(name, f"cfgrib returned {var.column} with dimensions {dict(da.sizes)}",
                                        message=msg.number, expected="one field (dimension 'values' only)")
                try:
                    values = da.values
                except Exception as exc:  # noqa: BLE001
                    raise HrrrDataError(name, f"cfgrib cannot decode the values of {var.column}: {exc}",
                                        message=msg.number, expected=var.describe()) from None
                if values.dtype != np.float32:
                    values = values.astype(np.float32)
                out[var.column] = _Field.of(values, int(np.count_nonzero(np.isnan(values))),
                                         str(da.attrs.get("GRIB_units", "")))
            extra = sorted(dv for dv, a in returned.items()
                           if not any(v.matches(_cfgrib_keys(a)) for v in members))
            if extra:
                raise HrrrDataError(name, f"cfgrib returned unrequested variables {extra}", message=first.number,
                                    expected=", ".join(v.column for v in members))
        del ds, fieldset
    return out


_DECODERS = {"cfgrib": _decode_cfgrib, "eccodes": _decode_eccodes}


def decode_fields(path: str | Path, variables: list[Variable], forecast_hour: int, *,
                  expected_grid_id: str | None = None, idx: str | None = None,
                  name: str | None = None, messages: list[MessageInfo] | None = None,
                  run_time: dt.datetime | None = None, engine: str = DEFAULT_ENGINE) -> tuple[pa.Table, dict]:
    """Decode ``variables`` from one GRIB2 file into a float32 Arrow table (one row per cell).

    ``engine``: "eccodes" (default: direct ecCodes handle decode, messages in parallel threads)
    or "cfgrib" (xarray + cfgrib). Both run the same checks (framing, .idx, grid, each variable present
    once for the forecast hour and run) on one scan of the file (unless ``messages`` from an
    earlier ``scan_grib`` are given) and decode from the ecCodes handles opened during it; both
    give the values of a direct ecCodes decode, missing points as nulls.
    Returns ``(table, stats)``; ``stats[column] = {min, mean, max, null_count}``.
    """
    import eccodes

    if engine not in _DECODERS:
        raise ValueError(f"unknown HRRR decode engine {engine!r}; known: {', '.join(ENGINES)}")
    name = name or str(path)
    if messages is None:
        messages, handles = _scan(path, name, keep=lambda keys: any(v.matches(keys) for v in variables))
    else:
        handles = None
    try:
        if idx is not None:
            parse_and_check_idx(idx, messages, name)
        grid_id = check_grid(messages, expected_grid_id, name)
        chosen = find_messages(messages, variables, forecast_hour, name, run_time)
        if handles is None:
            handles = _handles_at(path, list(chosen.values()), name)
        wanted = {m.ref for m in chosen.values()}
        for n in [n for n in handles if n not in wanted]:   # kept by the scan but not chosen
            eccodes.codes_release(handles.pop(n))
        fields = _DECODERS[engine](handles, chosen, variables, name)
    finally:
        for h in (handles or {}).values():   # the cfgrib engine has taken (and owns) its handles
            eccodes.codes_release(h)
    return _assemble(fields, chosen, variables, forecast_hour, grid_id, engine, name)


def _assemble(fields: dict[str, _Field], chosen: dict[str, MessageInfo], variables: list[Variable],
              forecast_hour: int, grid_id: str, engine: str, name: str) -> tuple[pa.Table, dict]:
    """Arrow columns (NaN -> null), per-variable stats and the schema metadata, for either engine."""
    columns: dict[str, pa.Array] = {}
    stats: dict[str, dict] = {}
    units: dict[str, str] = {}
    sources: dict[str, dict] = {}
    n_points = None
    for var in variables:
        msg = chosen[var.column]
        f = fields[var.column]
        if n_points is None:
            n_points = f.size
        elif f.size != n_points:
            raise HrrrDataError(name, f"{var.column} has {f.size} points", message=msg.number,
                                expected=f"{n_points} points")
        stats[var.column] = f.stats
        columns[var.column] = f.column
        units[var.column] = var.units
        sources[var.column] = {"message": msg.number, "field": msg.field, "offset": msg.offset, "grib_units": f.grib_units,
                               "idx": msg.idx_line()}
    first = chosen[variables[0].column]
    run = first.run_time
    valid_time = run + dt.timedelta(hours=forecast_hour)
    table = pa.table(columns).replace_schema_metadata({
        "grid_id": grid_id,
        "run_time": run.isoformat(),
        "valid_time": valid_time.isoformat(),
        "forecast_hour": str(forecast_hour),
        "units": json.dumps(units, sort_keys=True),
        "messages": json.dumps(sources, sort_keys=True),
        "decode_engine": engine,
    })
    return table, stats
