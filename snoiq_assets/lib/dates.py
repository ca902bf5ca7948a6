"""Dates given as text in run config."""

from __future__ import annotations

import datetime as dt
from typing import Optional


def optional_date(text: Optional[str], what: str, error: type[Exception] = ValueError) -> Optional[dt.date]:
    """``None`` for empty text, else the ISO date; ``error`` naming the setting when it is not one."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise error(f"{what}={text!r} is not a date (YYYY-MM-DD)") from None
