"""Recognise a station file's format from its content, and the errors every parser raises."""

from __future__ import annotations

import enum
import re


class Format(str, enum.Enum):
    USCRN_HOURLY02 = "uscrn_hourly02"
    USCRN_DAILY01 = "uscrn_daily01"
    GSOD_CSV = "gsod_csv"
    IEM_ASOS_CSV = "iem_asos_csv"
    GHCND_CDO_CSV = "ghcnd_cdo_csv"
    INDOT_RWIS_CSV = "indot_rwis_csv"


RESOLUTION = {
    Format.USCRN_HOURLY02: "hourly",
    Format.USCRN_DAILY01: "daily",
    Format.GSOD_CSV: "daily",
    Format.IEM_ASOS_CSV: "hourly",
    Format.GHCND_CDO_CSV: "daily",
    Format.INDOT_RWIS_CSV: "subhourly",
}
# Resolutions whose rows are single reports at an instant (hourly models may use them).
INSTANT_RESOLUTIONS = ("hourly", "subhourly")


class StationFileError(ValueError):
    """A file that cannot be read as a whole; the message names file, line and column."""

    def __init__(self, file: str, reason: str, *, line: int | None = None, column: str | None = None):
        self.file, self.reason, self.line, self.column = file, reason, line, column
        where = file
        if line is not None:
            where += f" line {line}"
        if column is not None:
            where += f" column {column}"
        super().__init__(f"{where}: {reason}")


def decode_utf8(data: bytes, file: str) -> str:
    """The text of ``data``; non-UTF-8 bytes raise with the line and character position."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise StationFileError(
            file, f"byte 0x{data[exc.start]:02x} is not UTF-8 (at character {col})", line=line, column=f"char {col}"
        ) from None


# A USCRN line: WBAN (5 digits), then YYYYMMDD; hourly02 has HHmm YYYYMMDD HHmm next.
_USCRN_HOURLY = re.compile(r"^\d{5} \d{8} \d{4} \d{8} \d{4} ")
_USCRN_DAILY = re.compile(r"^\d{5} \d{8} +\S+ +-?\d+\.\d+ +-?\d+\.\d+ ")


def _header_fields(first_line: str) -> list[str]:
    return [f.strip().strip('"').strip().upper() for f in first_line.split(",")]


def detect_format(text: str, file: str) -> Format:
    """The format of a file's text (its first lines), or a ``StationFileError`` saying why not."""
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        raise StationFileError(file, "empty file or empty first line; no known station format", line=1)
    if _USCRN_HOURLY.match(first):
        return Format.USCRN_HOURLY02
    if _USCRN_DAILY.match(first):
        return Format.USCRN_DAILY01
    fields = _header_fields(first)
    fset = set(fields)
    if {"STATION", "DATE", "TEMP", "FRSHTT"} <= fset or {"STATION", "DATE", "TEMP_ATTRIBUTES"} <= fset:
        return Format.GSOD_CSV
    if fields[:2] == ["STATION", "VALID"]:
        return Format.IEM_ASOS_CSV
    if {"TIME_LOCAL", "TIME_UTC", "AIR_TEMP_F", "PAVEMENT_TEMP_F"} <= fset:
        return Format.INDOT_RWIS_CSV
    if "STATION" in fset and "DATE" in fset and ({"TMAX", "TMIN", "PRCP", "SNWD"} & fset):
        return Format.GHCND_CDO_CSV
    if re.match(r"^\d{5} ", first):
        raise StationFileError(file, "looks like USCRN text but the fields are not hourly02 or daily01", line=1)
    raise StationFileError(
        file,
        f"no known station format: header {first[:80]!r} is not USCRN hourly02/daily01, GSOD, IEM ASOS, GHCN-Daily CDO or INDOT RWIS",
        line=1,
    )
