"""The variable catalogue: how each field is found in an ``.idx`` and in a GRIB message.

Each entry knows its wgrib2 inventory pattern (for selecting byte ranges, Herbie-style),
the GRIB2 keys that identify its message (for decoding and for checking an ``.idx`` against
its GRIB), the output column name (unit in the name) and the unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# wgrib2 abbreviations for (discipline, parameterCategory, parameterNumber): NCEP tables.
WGRIB2_NAMES: dict[tuple[int, int, int], str] = {
    (0, 0, 0): "TMP", (0, 0, 2): "POT", (0, 0, 6): "DPT", (0, 1, 0): "SPFH", (0, 1, 1): "RH",
    (0, 1, 3): "PWAT", (0, 1, 7): "PRATE", (0, 1, 8): "APCP", (0, 1, 11): "SNOD", (0, 1, 13): "WEASD",
    (0, 1, 29): "ASNOW", (0, 1, 192): "CRAIN", (0, 1, 193): "CFRZR", (0, 1, 194): "CICEP",
    (0, 1, 195): "CSNOW", (0, 1, 39): "CPOFP", (0, 1, 42): "SNOWC" , (0, 2, 2): "UGRD",
    (0, 2, 3): "VGRD", (0, 2, 1): "WIND", (0, 2, 22): "GUST", (0, 2, 8): "VVEL", (0, 2, 9): "DZDT",
    (0, 3, 0): "PRES", (0, 3, 1): "PRMSL", (0, 3, 5): "HGT", (0, 19, 0): "VIS", (0, 16, 196): "REFC",
    (0, 16, 195): "REFD", (0, 7, 6): "CAPE", (0, 7, 7): "CIN", (0, 6, 1): "TCDC", (2, 0, 0): "LAND",
    (0, 1, 225): "FROZR", (0, 1, 227): "FRZR",
}


@dataclass(frozen=True)
class Variable:
    column: str          # output column, unit in the name
    var: str             # wgrib2 abbreviation
    level: str           # wgrib2 level text
    forecast: str        # regex for the wgrib2 forecast text
    discipline: int
    category: int
    number: int
    level_type: int      # typeOfFirstFixedSurface
    level_value: int
    step_type: str       # instant | accum
    units: str
    # accum only: None = accumulated from the cycle start (0-F); N = the last N hours ((F-N)-F)
    window_hours: int | None = None

    def idx_pattern(self, forecast_hour: int | None = None) -> str:
        """A Herbie-style search regex matching this variable's inventory line.

        With ``forecast_hour`` the forecast text is pinned (``anl`` / ``F hour fcst`` for
        instantaneous fields, ``0-F hour acc fcst`` for accumulations from the run start).
        """
        forecast = self.forecast
        if forecast_hour is not None:
            if self.step_type == "accum" and self.window_hours is not None:
                forecast = f"{forecast_hour - self.window_hours}-{forecast_hour} hour acc fcst"
            elif self.step_type == "accum":
                forecast = "0-0 day acc fcst" if forecast_hour == 0 else f"0-{forecast_hour} hour acc fcst"
            else:
                forecast = "anl" if forecast_hour == 0 else f"{forecast_hour} hour fcst"
            forecast = re.escape(forecast)
        return f":{re.escape(self.var)}:{re.escape(self.level)}:{forecast}:"

    def filter_keys(self, forecast_hour: int) -> dict:
        """cfgrib ``filter_by_keys`` selecting exactly this message (same key set for every variable)."""
        return {
            "discipline": self.discipline,
            "parameterCategory": self.category,
            "parameterNumber": self.number,
            "typeOfLevel": CFGRIB_LEVEL_TYPES[self.level_type],
            "level": self.level_value,
            "stepType": self.step_type,
            "startStep": (forecast_hour - (self.window_hours or forecast_hour)) if self.step_type == "accum"
            else forecast_hour,
        }

    def matches(self, keys: dict, forecast_hour: int | None = None) -> bool:
        ok = (
            keys["discipline"] == self.discipline
            and keys["parameterCategory"] == self.category
            and keys["parameterNumber"] == self.number
            and keys["typeOfFirstFixedSurface"] == self.level_type
            and keys["level"] == self.level_value
        )
        if not ok:
            return False
        if self.step_type == "accum" and self.window_hours is not None:
            # a trailing bucket never starts at the cycle start (0-1 at f01 is the run-start accumulation)
            return (keys["stepType"] == "accum" and keys["startStep"] > 0
                    and keys["endStep"] - keys["startStep"] == self.window_hours)
        if self.step_type == "accum":
            return keys["stepType"] == "accum" and keys["startStep"] == 0
        return keys["stepType"] == "instant"

    def describe(self) -> str:
        return f"{self.column} ({self.var}:{self.level}, {self.step_type})"


CFGRIB_LEVEL_TYPES = {1: "surface", 103: "heightAboveGround", 100: "isobaricInhPa"}

_INSTANT = r"(anl|\d+ hour fcst)"
_ACC0 = r"0-\d+ (hour|day) acc fcst"

CATALOGUE: dict[str, Variable] = {v.column: v for v in [
    Variable("tmp_2m_k", "TMP", "2 m above ground", _INSTANT, 0, 0, 0, 103, 2, "instant", "K"),
    Variable("dpt_2m_k", "DPT", "2 m above ground", _INSTANT, 0, 0, 6, 103, 2, "instant", "K"),
    Variable("snod_m", "SNOD", "surface", _INSTANT, 0, 1, 11, 1, 0, "instant", "m"),
    Variable("weasd_kg_m2", "WEASD", "surface", _INSTANT, 0, 1, 13, 1, 0, "instant", "kg m-2"),
    Variable("asnow_m", "ASNOW", "surface", _ACC0, 0, 1, 29, 1, 0, "accum", "m"),
    Variable("apcp_kg_m2", "APCP", "surface", _ACC0, 0, 1, 8, 1, 0, "accum", "kg m-2"),
    Variable("prate_kg_m2_s", "PRATE", "surface", _INSTANT, 0, 1, 7, 1, 0, "instant", "kg m-2 s-1"),
    Variable("csnow", "CSNOW", "surface", _INSTANT, 0, 1, 195, 1, 0, "instant", "1 (categorical 0/1)"),
    Variable("ugrd_10m_m_s", "UGRD", "10 m above ground", _INSTANT, 0, 2, 2, 103, 10, "instant", "m s-1"),
    Variable("vgrd_10m_m_s", "VGRD", "10 m above ground", _INSTANT, 0, 2, 3, 103, 10, "instant", "m s-1"),
]}

DEFAULT_VARIABLES: tuple[str, ...] = tuple(CATALOGUE)


# The last-hour buckets some files carry beside an accumulation from the cycle start (HRRR APCP
# from f02 on: "0-F hour acc" and "F-1-F hour acc"). Optional: decoded when present.
HOURLY_BUCKETS: dict[str, Variable] = {
    "apcp_kg_m2": Variable("apcp_1h_kg_m2", "APCP", "surface", r"\d+-\d+ hour acc fcst", 0, 1, 8, 1, 0, "accum",
                           "kg m-2", window_hours=1),
    "asnow_m": Variable("asnow_1h_m", "ASNOW", "surface", r"\d+-\d+ hour acc fcst", 0, 1, 29, 1, 0, "accum", "m",
                        window_hours=1),
}


def resolve(names) -> list[Variable]:
    out = []
    for name in names:
        if name not in CATALOGUE:
            raise ValueError(f"unknown HRRR variable {name!r}; known: {', '.join(CATALOGUE)}")
        out.append(CATALOGUE[name])
    if len({v.column for v in out}) != len(out):
        raise ValueError(f"duplicate variables in {list(names)}")
    return out


def search_pattern(variables, forecast_hour: int | None = None) -> str:
    """One Herbie-style regex selecting every given variable's message."""
    return "|".join(v.idx_pattern(forecast_hour) for v in variables)


def wgrib2_name(discipline: int, category: int, number: int, centre: int = 7) -> str:
    name = WGRIB2_NAMES.get((discipline, category, number))
    if name:
        return name
    return f"var discipline={discipline} center={centre} local_table=1 parmcat={category} parm={number}"


def wgrib2_level(level_type: int, level: int) -> str:
    if level_type == 1:
        return "surface"
    if level_type == 103:
        return f"{level} m above ground"
    if level_type == 100:
        return f"{level} mb"
    if level_type == 10:
        return "entire atmosphere"
    return f"level type {level_type} value {level}"


def wgrib2_forecast(step_type: str, start: int, end: int) -> str:
    if step_type == "instant":
        return "anl" if end == 0 else f"{end} hour fcst"
    kind = {"accum": "acc", "max": "max", "min": "min", "avg": "ave"}.get(step_type, step_type)
    if start == 0 and end == 0:
        return f"0-0 day {kind} fcst"
    return f"{start}-{end} hour {kind} fcst"
