"""Physical plausibility of decoded HRRR fields: the defence GRIB2 itself does not have.

GRIB2 carries no checksum: a flipped byte in a message's packing parameters decodes
"successfully" into nonsense (APCP of -1.7e36 in every cell, a million null cells). Every
decoded partition is checked against physical bounds per variable before anything is written;
a partition outside them fails (and its file is quarantined) like any other bad file.

Bounds are generous (world records with a margin): they catch corruption and unit mistakes,
not weather. Accumulations (``step_type == "accum"``, from the run start) scale their upper
bound with the accumulation window (``forecast_hour``, at least one hour); a lower bound of 0
allows ``ACCUM_TOLERANCE`` of packing noise. Missing cells: HRRR writes these fields with no
bitmap, so at most ``MAX_NULL_SHARE`` of the cells may be null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from snoiq_assets.lib.hrrr import HrrrDataError


@dataclass(frozen=True)
class Bounds:
    lo: float
    hi: float
    per_window_hour: bool = False   # hi is per hour of the accumulation window

    def limits(self, forecast_hour: int) -> tuple[float, float]:
        return self.lo, self.hi * max(forecast_hour, 1) if self.per_window_hour else self.hi


ACCUM_TOLERANCE = 1e-3
MAX_NULL_SHARE = 0.01

BOUNDS: dict[str, Bounds] = {
    "tmp_2m_k": Bounds(170.0, 340.0),
    "dpt_2m_k": Bounds(150.0, 320.0),
    "snod_m": Bounds(0.0, 50.0),
    "weasd_kg_m2": Bounds(0.0, 50_000.0),
    "asnow_m": Bounds(-ACCUM_TOLERANCE, 1.5, per_window_hour=True),
    "apcp_kg_m2": Bounds(-ACCUM_TOLERANCE, 400.0, per_window_hour=True),
    # the 1-hour buckets (and the hourly amounts derived per lead, lib/hrrr/accum.py)
    "asnow_1h_m": Bounds(-ACCUM_TOLERANCE, 1.5),
    "apcp_1h_kg_m2": Bounds(-ACCUM_TOLERANCE, 400.0),
    "prate_kg_m2_s": Bounds(0.0, 0.15),
    "csnow": Bounds(0.0, 1.0),
    "ugrd_10m_m_s": Bounds(-120.0, 120.0),
    "vgrd_10m_m_s": Bounds(-120.0, 120.0),
}


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def problems(stats: dict[str, dict], n_cells: int, forecast_hour: int) -> list[str]:
    """Every way the per-variable ``stats`` ({min, max, null_count}) are implausible; [] if none."""
    out = []
    for column, s in stats.items():
        nulls = s["null_count"]
        if n_cells and nulls / n_cells > MAX_NULL_SHARE:
            out.append(f"{column}: {nulls} of {n_cells} cells are null ({nulls / n_cells:.1%}; "
                       f"at most {MAX_NULL_SHARE:.0%} allowed)")
        if nulls == n_cells:
            continue
        lo_v, hi_v = s["min"], s["max"]
        if not (_finite(lo_v) and _finite(hi_v)):
            out.append(f"{column}: non-finite values (min {lo_v}, max {hi_v})")
            continue
        bounds = BOUNDS.get(column)
        if bounds is None:
            continue
        lo, hi = bounds.limits(forecast_hour)
        if lo_v < lo or hi_v > hi:
            out.append(f"{column}: values {lo_v:.6g} .. {hi_v:.6g} outside the plausible [{lo:g}, {hi:g}]"
                       + (f" for a {max(forecast_hour, 1)} h accumulation" if bounds.per_window_hour else ""))
    return out


def check_plausible(stats: dict[str, dict], n_cells: int, forecast_hour: int, name: str) -> None:
    """Raise ``HrrrDataError`` naming the file and every implausible variable."""
    found = problems(stats, n_cells, forecast_hour)
    if found:
        raise HrrrDataError(name, "implausible decoded values (corrupt GRIB or wrong units): " + "; ".join(found),
                            expected="values within the physical bounds of lib/hrrr/plausibility.py")


def bounds_for(columns, forecast_hour: int) -> dict[str, list[float]]:
    """The bounds applied to ``columns`` (for asset metadata)."""
    return {c: list(BOUNDS[c].limits(forecast_hour)) for c in columns if c in BOUNDS}
