"""Scoring with a champion: its predictions as a table that names the model version, and the
observations the hourly lag features of a run of feature partitions need."""

from __future__ import annotations

import datetime as dt
from typing import Optional, Sequence

import polars as pl
import pyarrow as pa

from snoiq_assets.lib.features.hourly import lags_of
from snoiq_assets.lib.hours import hour_of
from snoiq_assets.lib.models.evaluate import feature_matrix

PREDICTIONS_SCHEMA = {
    "location": pl.Utf8, "cycle_time": pl.Datetime("us", "UTC"), "lead_hours": pl.Int32,
    "period_start": pl.Datetime("us", "UTC"), "observed": pl.Float64, "prediction": pl.Float64,
    "target": pl.Utf8, "spec": pl.Utf8, "model_type": pl.Utf8, "model_version": pl.Utf8, "run_id": pl.Utf8,
    "mlflow_run_id": pl.Utf8, "model_prefix": pl.Utf8,
}
MAX_LEAD = dt.timedelta(hours=48)  # HRRR's longest forecast: a cycle's valid time is within this of it


def scored_table(rows: pl.DataFrame, model, meta: dict, champ: dict) -> pa.Table:
    """The champion's predictions for ``rows`` (location, period_start, features, target; a
    forecast table's rows also cycle_time and forecast_hour), with the spec, model version and
    run ids on every row and in the Parquet schema metadata."""
    version = str(champ.get("registered_version"))
    spec = str(champ.get("spec") or meta.get("spec_key"))
    predicted = model.predict(feature_matrix(rows, meta["features"]))
    if meta.get("residual_of"):  # the model learned the NWP's error: add the forecast back
        predicted = predicted + rows[meta["residual_of"]].to_numpy().astype(float)
    forecast = "cycle_time" in rows.columns
    out = rows.select(
        "location",
        pl.col("cycle_time").cast(PREDICTIONS_SCHEMA["cycle_time"]) if forecast
        else pl.lit(None, PREDICTIONS_SCHEMA["cycle_time"]).alias("cycle_time"),
        (pl.col("forecast_hour") if forecast else pl.lit(None)).cast(pl.Int32).alias("lead_hours"),
        pl.col("period_start").cast(pl.Datetime("us", "UTC")) if forecast else "period_start",
        pl.col("target").alias("observed"),
    ).with_columns(
        pl.Series("prediction", predicted, dtype=pl.Float64), pl.lit(meta["target"]).alias("target"),
        pl.lit(spec).alias("spec"), pl.lit(meta["model_type"]).alias("model_type"),
        pl.lit(version).alias("model_version"), pl.lit(str(meta.get("run_id"))).alias("run_id"),
        pl.lit(meta["mlflow_run_id"]).alias("mlflow_run_id"), pl.lit(champ["model_prefix"]).alias("model_prefix"),
    )
    table = out.to_arrow()
    return table.replace_schema_metadata({
        b"snoiq.spec": spec.encode(), b"snoiq.model_version": version.encode(),
        b"snoiq.run_id": str(meta.get("run_id")).encode(), b"snoiq.mlflow_run_id": str(meta["mlflow_run_id"]).encode(),
        b"snoiq.model_prefix": champ["model_prefix"].encode(), b"snoiq.target_transform": meta["target_transform"].encode(),
    })


def champion_stations(meta: dict) -> list[str]:
    return list(meta.get("stations") or [meta["location"]])


def lag_observations(observations: pl.LazyFrame, partition_keys: Sequence[str],
                     metas: Sequence[dict]) -> Optional[pl.LazyFrame]:
    """The observations every partition of the run may need for its lag features, read once:
    the champions' stations, from the longest lag before the first cycle to the last valid time."""
    if not observations.collect_schema():
        return None
    stations = sorted({s for meta in metas for s in champion_stations(meta)})
    longest = max([0, *(k for meta in metas for k in lags_of(meta["features"]))])
    cycles = [hour_of(pk) for pk in partition_keys]
    # Lags are relative to the cycle, which may be up to MAX_LEAD before a partition's hour.
    lo = min(cycles) - MAX_LEAD - dt.timedelta(hours=longest + 1)
    hi = max(cycles) + MAX_LEAD + dt.timedelta(hours=1)
    ts = pl.col("timestamp_utc").cast(pl.Datetime("us", "UTC"))
    return (observations.filter(pl.col("station_id").is_in(stations) & ts.is_between(pl.lit(lo), pl.lit(hi)))
            .collect().lazy())
