"""Forecast lead times: which leads a cycle has, and whether all of them (and their messages) landed.

HRRR runs every hour out to 18 hours and out to 48 hours at 00, 06, 12 and 18Z. A
``LeadSchedule`` says which leads are *expected* for a cycle (configurable: a deployment may
keep only f00-f06); ``completeness`` compares the expected messages x leads with those present
and names every missing one, so the archive's hour-long publishing of a cycle's leads is a
"not yet" that the next sensor tick retries, never a silent hole.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from snoiq_assets.lib.hrrr.inventory import IdxEntry, select
from snoiq_assets.lib.hrrr.variables import Variable


class LeadError(ValueError):
    """A lead outside the configured set, or a malformed lead list."""


@dataclass(frozen=True)
class LeadSchedule:
    max_lead: int = 18                       # every cycle: f00..f18
    extended_max_lead: int = 48              # the extended cycles: f00..f48
    extended_cycles: tuple[int, ...] = (0, 6, 12, 18)

    def leads_for(self, run_time: dt.datetime) -> list[int]:
        top = self.extended_max_lead if run_time.hour in self.extended_cycles else self.max_lead
        return list(range(0, top + 1))

    def check(self, run_time: dt.datetime, forecast_hour: int, what: str = "") -> None:
        allowed = self.leads_for(run_time)
        if forecast_hour not in allowed:
            raise LeadError(f"{what + ': ' if what else ''}lead f{forecast_hour:02d} is outside the configured leads "
                            f"of cycle {run_time:%Y-%m-%dT%H} (f00-f{allowed[-1]:02d})")

    def select(self, run_time: dt.datetime, subset: list[int] | None) -> list[int]:
        """The leads to process for a cycle: ``subset`` (checked against the schedule) or all of them."""
        if subset is None:
            return self.leads_for(run_time)
        for fh in subset:
            self.check(run_time, fh)
        return sorted(set(subset))


HRRR_SCHEDULE = LeadSchedule()

_RANGE = re.compile(r"^\s*f?(\d{1,2})\s*(?:-\s*f?(\d{1,2}))?\s*$")


def parse_leads(text: str) -> list[int]:
    """``"0-6,9,12"`` (or ``f00-f06``) -> [0..6, 9, 12]; the run-config form of a lead subset."""
    out: set[int] = set()
    for part in text.split(","):
        m = _RANGE.match(part)
        if not m:
            raise LeadError(f"lead list {text!r}: {part.strip()!r} is not a lead or a range like 0-6")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise LeadError(f"lead list {text!r}: range {part.strip()!r} runs backwards")
        out.update(range(lo, hi + 1))
    return sorted(out)


def messages_present(entries: list[IdxEntry], variables: list[Variable], forecast_hour: int) -> set[str]:
    """The catalogue columns whose message for ``forecast_hour`` an inventory lists."""
    return {v.column for v in variables if select(entries, v.idx_pattern(forecast_hour))}


@dataclass
class Completeness:
    run_time: dt.datetime
    expected_leads: list[int]
    expected_columns: list[str]
    missing_leads: list[int] = field(default_factory=list)                 # no file at all
    missing_messages: dict[int, list[str]] = field(default_factory=dict)   # file there, messages not

    @property
    def complete(self) -> bool:
        return not self.missing_leads and not self.missing_messages

    @property
    def present_leads(self) -> list[int]:
        return [fh for fh in self.expected_leads if fh not in self.missing_leads and fh not in self.missing_messages]

    def describe(self) -> str:
        if self.complete:
            return (f"cycle {self.run_time:%Y-%m-%dT%H}: all {len(self.expected_leads)} leads x "
                    f"{len(self.expected_columns)} messages present")
        parts = []
        if self.missing_leads:
            parts.append("missing leads " + ", ".join(f"f{fh:02d}" for fh in self.missing_leads))
        for fh, cols in sorted(self.missing_messages.items()):
            parts.append(f"f{fh:02d} lacks {', '.join(cols)}")
        n_missing = len(self.missing_leads) * len(self.expected_columns) + sum(map(len, self.missing_messages.values()))
        return (f"cycle {self.run_time:%Y-%m-%dT%H}: {n_missing} of "
                f"{len(self.expected_leads) * len(self.expected_columns)} messages missing: " + "; ".join(parts))

    def as_dict(self) -> dict:
        return {"run_time": f"{self.run_time:%Y-%m-%dT%H}", "complete": self.complete,
                "expected_leads": self.expected_leads, "expected_columns": self.expected_columns,
                "missing_leads": self.missing_leads,
                "missing_messages": {f"f{fh:02d}": cols for fh, cols in sorted(self.missing_messages.items())}}


def completeness(run_time: dt.datetime, expected_leads: list[int], variables: list[Variable],
                 present: dict[int, set[str]]) -> Completeness:
    """``present[fh]`` = the columns landed for lead ``fh`` (a lead absent from ``present`` has no file)."""
    columns = [v.column for v in variables]
    report = Completeness(run_time, list(expected_leads), columns)
    for fh in expected_leads:
        if fh not in present:
            report.missing_leads.append(fh)
            continue
        lacking = [c for c in columns if c not in present[fh]]
        if lacking:
            report.missing_messages[fh] = lacking
    return report
