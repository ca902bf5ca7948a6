"""The two reference forecasts every model is scored against, on the same test rows.

- persistence: the previous period's observed target at the same location (the training
  table's rows are consecutive periods per location). Where the previous period has no
  observed target, the training mean stands in (and the count is reported).
- climatology: the training-period mean of the target for the same calendar month at the same
  location (falling back to the location's, then the overall, training mean). For an hourly
  table, the mean for the same month and hour of day (the diurnal cycle) comes first, and a
  month the training period lacks (a March test after a December-February training) falls
  back to the location's mean for that hour of day before the location's overall mean.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def persistence(frame: pl.DataFrame, train_mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Per row: the target of the previous period at the location. Returns (values, n_filled)."""
    prev = frame.select(pl.col("target").shift(1).over("location", order_by="period_start")).to_series().to_numpy()
    prev = prev.astype(float)
    fallback = float(np.nanmean(frame["target"].to_numpy()[train_mask]))
    missing = ~np.isfinite(prev)
    prev[missing] = fallback
    return prev, int(missing.sum())


def climatology(frame: pl.DataFrame, train_mask: np.ndarray) -> np.ndarray:
    hourly = isinstance(frame.schema["period_start"], pl.Datetime)
    f = frame.with_columns(pl.col("period_start").dt.month().alias("_m"),
                           (pl.col("period_start").dt.hour() if hourly else pl.lit(0)).alias("_h"),
                           pl.Series("_train", train_mask))
    train = f.filter(pl.col("_train") & pl.col("target").is_not_null())
    by_hour = train.group_by("location", "_m", "_h").agg(pl.col("target").mean().alias("_clim_h"))
    by_month = train.group_by("location", "_m").agg(pl.col("target").mean().alias("_clim_m"))
    by_loc_hour = train.group_by("location", "_h").agg(pl.col("target").mean().alias("_clim_lh"))
    by_loc = train.group_by("location").agg(pl.col("target").mean().alias("_clim_l"))
    overall = float(train["target"].mean())
    out = (
        f.join(by_hour, on=["location", "_m", "_h"], how="left", maintain_order="left")
        .join(by_month, on=["location", "_m"], how="left", maintain_order="left")
        .join(by_loc_hour, on=["location", "_h"], how="left", maintain_order="left")
        .join(by_loc, on="location", how="left", maintain_order="left")
        .select(pl.coalesce("_clim_h", "_clim_m", "_clim_lh", "_clim_l", pl.lit(overall)))
        .to_series()
    )
    return out.to_numpy().astype(float)
