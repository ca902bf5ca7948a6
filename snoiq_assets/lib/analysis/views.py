"""Altair charts and the frames behind them for the analysis app (``make explore``).

Each ``*_frame`` function shapes a platform table for one view; each ``*_chart`` draws it. They
are plain functions so the app stays thin and each view can be checked without a browser.
"""

from __future__ import annotations

import altair as alt
import polars as pl

# vega-embed draws SVG: one element per mark, so a page test can see what a chart shows.
SVG = {"embedOptions": {"renderer": "svg"}}
WIDTH = 560
BASELINES = ("persistence", "climatology", "raw_forecast")


def _chart(data) -> alt.Chart:
    return alt.Chart(data, usermeta=SVG, width=WIDTH)


# ----- DataDecide ---------------------------------------------------------------------
def decision_accuracy_chart(table: pl.DataFrame) -> alt.LayerChart:
    """Decision accuracy against model size, one line per metric; the forecast's where it has pairs."""
    base = _chart(table).encode(
        x=alt.X("size_params:Q", scale=alt.Scale(type="log"), title="model parameters (smaller size)"),
        color=alt.Color("metric:N"),
        tooltip=["metric", "size", "target_size", "pairs", alt.Tooltip("decision_accuracy:Q", format=".1%"),
                 "forecast_pairs", alt.Tooltip("forecast_decision_accuracy:Q", format=".1%")],
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("decision_accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"),
                title="pairs ranked as at the largest size"))
    forecast = base.transform_filter("datum.forecast_pairs > 0").mark_point(shape="diamond", size=90, filled=True).encode(
        y="forecast_decision_accuracy:Q")
    return (line + forecast).properties(usermeta=SVG)


def recipe_ranks_frame(evals: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Mean over runs per recipe and size for ``metric``, ranked within each size (1 = lowest)."""
    return (
        evals.filter(pl.col("metric") == metric)
        .group_by(["recipe", "size", "size_params"]).agg(pl.col("value").mean())
        .with_columns(pl.col("value").rank("ordinal").over("size").cast(pl.Int64).alias("rank"))
        .sort(["size_params", "rank"])
    )


def recipe_ranks_chart(ranks: pl.DataFrame, selected: str) -> alt.Chart:
    """Rank of each recipe at each size; the selected recipe drawn strong, the rest faint."""
    data = ranks.with_columns((pl.col("recipe") == selected).alias("selected"))
    return _chart(data).mark_line(point=True).encode(
        x=alt.X("size_params:Q", scale=alt.Scale(type="log"), title="model parameters"),
        y=alt.Y("rank:Q", scale=alt.Scale(reverse=True), title="rank at that size (1 = lowest value)"),
        detail="recipe:N",
        color=alt.condition("datum.selected", alt.Color("recipe:N"), alt.value("#d0d0d0")),
        opacity=alt.condition("datum.selected", alt.value(1.0), alt.value(0.35)),
        tooltip=["recipe", "size", "rank", alt.Tooltip("value:Q", format=".4f")],
    ).properties(title=f"{selected}: rank at each size")


def early_curves_frame(history: pl.DataFrame, features: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Each run's curve of ``metric`` with its position relative to training (x / final x)."""
    axis = features.filter(pl.col("metric") == metric).select("project", "run_id", "x_axis", "final_x", "final_value").unique()
    curves = history.filter(pl.col("metric") == metric).join(axis, on=["project", "run_id"], how="inner")
    x = pl.when(pl.col("x_axis") == "tokens").then(pl.col("tokens")).otherwise(pl.col("step").cast(pl.Float64))
    return curves.with_columns((x / pl.col("final_x")).alias("fraction"), (pl.col("project") + "/" + pl.col("run_name")).alias("run"))


def early_curves_chart(curves: pl.DataFrame, window: float) -> alt.LayerChart:
    """Curves against the fraction of training, the early window shaded, the final value as a tick."""
    base = _chart(curves)
    lines = base.mark_line().encode(x=alt.X("fraction:Q", title="fraction of training"), y=alt.Y("value:Q", scale=alt.Scale(zero=False)),
                                    color="run:N", tooltip=["run", "step", "value"])
    finals = base.transform_aggregate(final="max(final_value)", groupby=["run"]).mark_tick(thickness=2, size=18).encode(
        x=alt.datum(1.0), y="final:Q", color="run:N")
    window_rule = alt.Chart(pl.DataFrame({"k": [window]}), usermeta=SVG).mark_rule(strokeDash=[4, 4]).encode(x="k:Q")
    return (lines + finals + window_rule).properties(usermeta=SVG)


def forecast_error_frame(features: pl.DataFrame, predictions: pl.DataFrame | None) -> pl.DataFrame:
    """Absolute error of the final-value forecast by early window k: the model's out-of-fold
    predictions where it ran, and the naive forecast (the last value in the window) for every k."""
    naive = features.filter(pl.col("final_value").is_finite() & pl.col("early_last").is_finite()).select(
        "k", pl.lit("last value in window").alias("forecast"), (pl.col("early_last") - pl.col("final_value")).abs().alias("abs_error"))
    frames = [naive]
    if predictions is not None and predictions.height:
        frames.append(predictions.filter(pl.col("prediction").is_finite()).select(
            pl.col("k").cast(pl.Float64), pl.col("model").alias("forecast"),
            (pl.col("prediction") - pl.col("final_value")).abs().alias("abs_error")))
    return pl.concat(frames, how="vertical_relaxed").group_by(["k", "forecast"]).agg(
        pl.col("abs_error").median().alias("median_abs_error"), pl.len().alias("curves")).sort(["k", "forecast"])


def forecast_error_chart(errors: pl.DataFrame) -> alt.Chart:
    return _chart(errors).mark_bar().encode(
        x=alt.X("forecast:N", title=None), y=alt.Y("median_abs_error:Q", title="median |forecast - final|"),
        color="forecast:N", column=alt.Column("k:O", title="early window (fraction of training)"),
        tooltip=["k", "forecast", "median_abs_error", "curves"],
    ).properties(width=110)


# ----- SnoIQ ----------------------------------------------------------------------------
def skill_chart(skill: pl.DataFrame, spec_id: str, measure: str = "rmse") -> alt.Chart:
    """``measure`` by lead hour for one spec: its model types solid, the baselines dashed."""
    data = skill.filter(pl.col("spec_id") == spec_id).with_columns(
        pl.when(pl.col("model").is_in(BASELINES)).then(pl.lit("baseline")).otherwise(pl.lit("model")).alias("kind"))
    return _chart(data).mark_line(point=True).encode(
        x=alt.X("lead_hour:Q", title="lead time (h)"), y=alt.Y(f"{measure}:Q", title=measure.upper()),
        color="model:N", strokeDash=alt.StrokeDash("kind:N", sort=["model", "baseline"]),
        tooltip=["model", "lead_hour", measure, "n_rows"],
    ).properties(title=f"{spec_id}: {measure} by lead time")


def station_series_chart(predictions: pl.DataFrame, station: str) -> alt.Chart:
    """Forecast and observed over time at one station."""
    data = (predictions.filter(pl.col("location") == station)
            .select("period_start", "observed", "prediction")
            .unpivot(index="period_start", variable_name="series", value_name="value")
            .sort("period_start"))
    return _chart(data).mark_line(point=True).encode(
        x=alt.X("period_start:T", title="valid time (UTC)"), y=alt.Y("value:Q", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", sort=["observed", "prediction"]), tooltip=["period_start:T", "series", "value"],
    ).properties(title=f"station {station}: forecast vs observed")


def station_error_frame(predictions: pl.DataFrame, stations: pl.DataFrame) -> pl.DataFrame:
    """Mean absolute error per station, with its coordinates."""
    err = predictions.filter(pl.col("observed").is_not_null() & pl.col("prediction").is_not_null()).group_by("location").agg(
        (pl.col("prediction") - pl.col("observed")).abs().mean().alias("mae"), pl.len().alias("n"))
    meta = stations.select(pl.col("station_id").cast(pl.String).alias("location"), "latitude", "longitude",
                           *([pl.col("name")] if "name" in stations.columns else [pl.lit(None, pl.String).alias("name")]))
    return err.join(meta, on="location", how="inner")


def station_map_chart(errors: pl.DataFrame, selected: str | None) -> alt.Chart:
    data = errors.with_columns((pl.col("location") == (selected or "")).alias("selected"))
    return _chart(data).mark_circle(stroke="black").encode(
        longitude="longitude:Q", latitude="latitude:Q", color=alt.Color("mae:Q", scale=alt.Scale(scheme="orangered"), title="MAE"),
        size=alt.condition("datum.selected", alt.value(400), alt.value(120)),
        strokeWidth=alt.condition("datum.selected", alt.value(2), alt.value(0)),
        tooltip=["location", "name", alt.Tooltip("mae:Q", format=".3f"), "n"],
    ).project("albersUsa").properties(height=340, title="stations coloured by mean absolute error")


def experiments_frame(experiments: pl.DataFrame, model_types: list[str], statuses: list[str], location: str | None) -> pl.DataFrame:
    out = experiments
    if model_types:
        out = out.filter(pl.col("model_type").is_in(model_types))
    if statuses:
        out = out.filter(pl.col("status").is_in(statuses))
    if location:
        out = out.filter(pl.col("location") == location)
    cols = [c for c in ("started_at", "status", "model_type", "location", "target", "sweep_id", "rmse", "mae", "bias",
                        "skill_persistence", "skill_climatology", "error") if c in out.columns]
    return out.select(cols).sort("started_at", descending=True)


def experiments_chart(rows: pl.DataFrame) -> alt.Chart:
    return _chart(rows.filter(pl.col("rmse").is_not_null())).mark_point(filled=True, size=80).encode(
        x=alt.X("started_at:T", title="started"), y=alt.Y("rmse:Q"), color="model_type:N", shape="location:N",
        tooltip=["model_type", "location", "target", "rmse", "status"],
    ).properties(title="held-out RMSE of the selected runs")
