"""Partial failures, one way for every asset that processes several partitions (or models) in
one run: each item is tried, a failure is recorded with its reason and the others carry on;
then the run fails with one message naming every failed item and what happened to the good
ones. ``defs/failures.py`` turns this into a Dagster ``Failure``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartialFailures:
    """``asset``: who reports; ``items``: everything the run tries, in order (partition keys,
    model types, champions); ``what``: how the items are called in the message."""

    asset: str
    items: list[str]
    what: str = "partitions"
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, item: str, error: str, **details: Any) -> None:
        """Record why ``item`` failed; ``details`` (file, quarantined_to, message_number ...)
        go with it into the failure's metadata."""
        self.failed[item] = {"error": error, **details}

    def __bool__(self) -> bool:
        return bool(self.failed)

    @property
    def good(self) -> list[str]:
        return [i for i in self.items if i not in self.failed]

    def in_order(self) -> list[str]:
        """The failed items in the run's order (then any recorded that the run did not list)."""
        return [i for i in self.items if i in self.failed] + [i for i in self.failed if i not in self.items]

    def message(self, consequence: str) -> str:
        """``<asset>: 2 of 4 partitions failed (a, b); <consequence>. <asset> a: <error> (moved to q); ...``
        (the head only when the run had several items)."""
        failed = self.in_order()
        parts = []
        for item in failed:
            rec = self.failed[item]
            moved = f" (moved to {rec['quarantined_to']})" if rec.get("quarantined_to") else ""
            parts.append(f"{self.asset} {item}: {rec['error']}{moved}")
        head = (f"{self.asset}: {len(failed)} of {len(self.items)} {self.what} failed ({', '.join(failed)}); "
                f"{consequence}. " if len(self.items) > 1 else "")
        return head + "; ".join(parts)
