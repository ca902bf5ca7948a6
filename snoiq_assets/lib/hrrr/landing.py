"""Summaries of landed and decoded HRRR hours (landing itself: ``lib/hrrr/cycle.py``)."""

from __future__ import annotations


def aggregate_stats(per_partition: dict[str, tuple[int, dict]]) -> dict[str, dict]:
    """Per variable over all partitions ({partition: (rows, {column: stats})}): min, max,
    cell-weighted mean of non-null cells, summed null count."""
    out: dict[str, dict] = {}
    for rows, stats in per_partition.values():
        for col, s in stats.items():
            agg = out.setdefault(col, {"min": None, "max": None, "sum": 0.0, "valid": 0, "null_count": 0})
            agg["null_count"] += s["null_count"]
            valid = rows - s["null_count"]
            if valid and s["mean"] is not None:
                agg["min"] = s["min"] if agg["min"] is None else min(agg["min"], s["min"])
                agg["max"] = s["max"] if agg["max"] is None else max(agg["max"], s["max"])
                agg["sum"] += s["mean"] * valid
                agg["valid"] += valid
    return {col: {"min": a["min"], "max": a["max"], "mean": a["sum"] / a["valid"] if a["valid"] else None,
                  "null_count": a["null_count"]} for col, a in out.items()}
