"""Metadata values as the Dagster UI shows them: floats rounded, in one place.

A metric, a statistic or a share shows 3 decimals, or 4 significant digits when smaller than 1
(``0.01234``), never 17 digits of binary noise. Floats inside JSON values, table records and
lists are rounded the same way; ints, strings and other values pass unchanged. The IO manager
rounds every asset output's metadata with it; code that emits metadata elsewhere (per-partition
metadata, ``MaterializeResult``, ``AssetCheckResult``) wraps its dict in ``rounded``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import dagster as dg

DECIMALS = 3
SIGNIFICANT = 4


def round_float(x: float) -> float:
    """3 decimals, or 4 significant digits below 1; nan and inf unchanged."""
    if not math.isfinite(x) or x == 0:
        return x
    magnitude = math.floor(math.log10(abs(x)))
    return round(x, max(DECIMALS, SIGNIFICANT - 1 - magnitude))


def _round_plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return round_float(value)
    if isinstance(value, Mapping):
        return {k: _round_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round_plain(v) for v in value]
    return value


def rounded_value(value: Any) -> Any:
    """One metadata value (raw or a ``MetadataValue``) with its floats rounded."""
    if isinstance(value, dg.FloatMetadataValue):
        return dg.MetadataValue.float(round_float(value.value)) if value.value is not None else value
    if isinstance(value, dg.JsonMetadataValue):
        return dg.MetadataValue.json(_round_plain(value.data))
    if isinstance(value, dg.TableMetadataValue):
        return dg.MetadataValue.table(
            [dg.TableRecord(_round_plain(dict(r.data))) for r in value.records], schema=value.schema)
    if isinstance(value, dg.MetadataValue):
        return value
    return _round_plain(value)


def rounded(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A metadata dict with every float rounded for display (see the module's docstring)."""
    return {k: rounded_value(v) for k, v in metadata.items()}


def changed_by_rounding(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``metadata`` that rounding changes, rounded (what the IO manager re-adds)."""
    out = {}
    for key, value in metadata.items():
        new = rounded_value(value)
        if new != value:
            out[key] = new
    return out


def markdown_table(rows: list[Mapping[str, Any]]) -> str:
    """Rows (dicts with the same keys) as a Markdown table for ``MetadataValue.md``; floats
    rounded as everywhere else, None shown empty."""
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value: Any) -> str:
        value = _round_plain(value)
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
