"""Corrupt GRIB2 files generated from a real one: truncations, flipped bytes per section, junk.

Sections are found by walking the real message (section 0 = the 16-byte indicator, 1-7 by
their length fields, 8 = the '7777' end marker), so a case names the section it damages.
"""

from __future__ import annotations

from pathlib import Path

from snoiq_assets.lib.hrrr.decode import scan_framing

# Octet 36 of section 5 (0-based 35): flipping it makes ecCodes abort
# ("assertion failed: 'e == 0' in grib_bits_any_endian.cc") in both decode engines.
CRASH_SECTION, CRASH_OFFSET = 5, 35


def sections(data: bytes, message_offset: int = 0) -> dict[int, tuple[int, int]]:
    """section number -> (absolute offset, length) for the message at ``message_offset``."""
    (offset, length), = [f for f in scan_framing(data, "real") if f[0] == message_offset]
    out = {0: (offset, 16)}
    pos, end = offset + 16, offset + length - 4
    while pos < end:
        size = int.from_bytes(data[pos:pos + 4], "big")
        out.setdefault(data[pos + 4], (pos, size))
        pos += size
    out[8] = (end, 4)
    return out


def flipped(data: bytes, section: int, rel: int, message_offset: int = 0) -> bytes:
    """``data`` with the byte at ``rel`` inside ``section`` of one message inverted."""
    start, size = sections(data, message_offset)[section]
    assert rel < size, (section, rel, size)
    out = bytearray(data)
    out[start + rel] ^= 0xFF
    return bytes(out)


def crashing(data: bytes, message_offset: int = 0) -> bytes:
    return flipped(data, CRASH_SECTION, CRASH_OFFSET, message_offset)


def corpus(real: Path) -> dict[str, bytes]:
    """Named corrupt variants of ``real``: truncations at many offsets (inside every section of
    the first message, and inside the second), one flipped byte at several places of each
    section 0-8 of the first message, an empty file and non-GRIB files."""
    data = real.read_bytes()
    secs = sections(data)
    cases: dict[str, bytes] = {"empty": b"", "text": b"station,date,temp\n1,2020-01-01,3\n",
                               "png": b"\x89PNG\r\n\x1a\n" + bytes(64),
                               "grib1": b"GRIB" + (1000).to_bytes(3, "big") + b"\x01" + bytes(992) + b"7777"}
    for n, (start, size) in secs.items():
        for rel in sorted({0, size // 2, size - 1}):
            cases[f"truncated_in_section{n}_at_{start + rel}"] = data[:start + rel]
        rels = {0, 4, 5, size // 2, size - 1} if size > 5 else set(range(size))
        if n == 5:
            rels |= {6, 11, 16, 22, CRASH_OFFSET, 45}   # packing parameters: reference value, scales, widths
        if n == 7:
            rels |= {5, 9}
        for rel in sorted(r for r in rels if r < size):
            cases[f"flip_section{n}_octet{rel + 1}"] = flipped(data, n, rel)
    second = scan_framing(data, "real")[1][0]
    cases[f"truncated_in_message2_at_{second + 1000}"] = data[:second + 1000]
    cases["trailing_junk"] = data + b"GRIB\x00\x00"
    return cases
