"""The analysis app: `make explore` serves it (``marimo run``, 127.0.0.1). Read-only over the
platform's own tables: the DuckDB file in SNOIQ_HOME and the Parquet lake (local folder or
bucket, same settings as the assets). Views are built by ``snoiq_assets.lib.analysis.views``."""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="snoiq explore")


@app.cell
def _():
    import marimo as mo
    import polars as pl

    from snoiq_assets.lib.analysis import views
    from snoiq_assets.lib.analysis.catalog import Catalog
    from snoiq_assets.lib.datadecide.decision import eval_values

    catalog = Catalog.from_env()

    def missing(lookup):
        """A plain note for a table that is not there yet (not an error)."""
        return mo.callout(mo.md(f"**`{lookup.name}`** is not available yet: {lookup.source}."), kind="warn")

    mo.md(f"# snoiq explore\nRead-only view of `{catalog.settings.describe()}` (DuckDB `{catalog.duckdb_path}`).")
    return catalog, eval_values, missing, mo, pl, views


@app.cell
def _(mo):
    mo.md("## DataDecide")
    return


@app.cell
def _(catalog, missing, mo, views):
    _acc = catalog.table("decision_accuracy_by_size")
    mo.vstack([
        mo.md("### Decision accuracy by size\nShare of recipe pairs ordered at each size as at the largest "
              "(diamonds: the early-window forecast on the same pairs, where it has forecasts)."),
        views.decision_accuracy_chart(_acc.frame) if _acc.found else missing(_acc),
    ])
    return


@app.cell
def _(catalog, eval_values):
    evals_lookup = catalog.table("hf_eval_results")
    eval_long = eval_values(evals_lookup.frame) if evals_lookup.found and evals_lookup.frame.height else None
    return eval_long, evals_lookup


@app.cell
def _(eval_long, mo):
    if eval_long is not None:
        _metrics = sorted(eval_long["metric"].unique().to_list())
        _recipes = sorted(eval_long["recipe"].drop_nulls().unique().to_list())
        rank_metric = mo.ui.dropdown(_metrics, value=_metrics[0], label="metric")
        rank_recipe = mo.ui.dropdown(_recipes, value=_recipes[0], label="highlight recipe")
    else:
        rank_metric = rank_recipe = None
    return rank_metric, rank_recipe


@app.cell
def _(eval_long, evals_lookup, missing, mo, rank_metric, rank_recipe, views):
    if eval_long is None:
        _out = missing(evals_lookup) if not evals_lookup.found else mo.callout(mo.md("`hf_eval_results` has no rows."), kind="warn")
    else:
        _ranks = views.recipe_ranks_frame(eval_long, rank_metric.value)
        _out = mo.vstack([mo.hstack([rank_metric, rank_recipe]),
                          views.recipe_ranks_chart(_ranks, rank_recipe.value)])
    mo.vstack([mo.md("### Recipe rankings at each size"), _out])
    return


@app.cell
def _(catalog):
    history_lookup = catalog.table("wandb_history")
    features_lookup = catalog.table("early_window_features")
    predictions_lookup = catalog.table("final_metric_predictions")
    return features_lookup, history_lookup, predictions_lookup


@app.cell
def _(features_lookup, mo):
    if features_lookup.found and features_lookup.frame.height:
        _f = features_lookup.frame
        _metrics = _f.group_by("metric").len().sort("len", descending=True)["metric"].to_list()
        curve_metric = mo.ui.dropdown(_metrics, value=_metrics[0], label="metric")
        _ks = sorted(_f["k"].unique().to_list())
        curve_window = mo.ui.dropdown({f"{k:g}": k for k in _ks}, value=f"{_ks[0]:g}", label="early window")
    else:
        curve_metric = curve_window = None
    return curve_metric, curve_window


@app.cell
def _(curve_metric, curve_window, features_lookup, history_lookup, missing, mo, views):
    if curve_metric is None or not history_lookup.found:
        _out = missing(features_lookup if not features_lookup.found else history_lookup)
    else:
        _curves = views.early_curves_frame(history_lookup.frame, features_lookup.frame, curve_metric.value)
        _out = mo.vstack([mo.hstack([curve_metric, curve_window]),
                          views.early_curves_chart(_curves, curve_window.value)])
    mo.vstack([mo.md("### Early training curves against the final value"), _out])
    return


@app.cell
def _(features_lookup, missing, mo, predictions_lookup, views):
    if not features_lookup.found:
        _out = missing(features_lookup)
    else:
        _errors = views.forecast_error_frame(features_lookup.frame, predictions_lookup.frame)
        _out = views.forecast_error_chart(_errors)
    mo.vstack([mo.md("### Forecast error by early window"), _out])
    return


@app.cell
def _(mo):
    mo.md("## SnoIQ")
    return


@app.cell
def _(catalog, mo):
    skill_lookup = catalog.table("skill_by_lead")
    if skill_lookup.found and skill_lookup.frame.height:
        _specs = sorted(skill_lookup.frame["spec_id"].unique().to_list())
        skill_spec = mo.ui.dropdown(_specs, value=_specs[0], label="model spec")
        skill_measure = mo.ui.dropdown(["rmse", "mae", "bias"], value="rmse", label="measure")
    else:
        skill_spec = skill_measure = None
    return skill_lookup, skill_measure, skill_spec


@app.cell
def _(missing, mo, skill_lookup, skill_measure, skill_spec, views):
    if skill_spec is None:
        _out = missing(skill_lookup)
    else:
        _out = mo.vstack([mo.hstack([skill_spec, skill_measure]),
                          views.skill_chart(skill_lookup.frame, skill_spec.value, skill_measure.value)])
    mo.vstack([mo.md("### Skill by lead time (each spec against its baselines)"), _out])
    return


@app.cell
def _(catalog, mo):
    series_lookup = catalog.table("hourly_predictions")
    stations_lookup = catalog.table("station_metadata")
    if series_lookup.found and series_lookup.frame.height:
        _stations = sorted(series_lookup.frame["location"].unique().to_list())
        series_station = mo.ui.dropdown(_stations, value=_stations[0], label="station")
    else:
        series_station = None
    return series_lookup, series_station, stations_lookup


@app.cell
def _(missing, mo, series_lookup, series_station, stations_lookup, views):
    if series_station is None:
        _out = missing(series_lookup)
    else:
        _charts = [series_station, views.station_series_chart(series_lookup.frame, series_station.value)]
        if stations_lookup.found:
            _errors = views.station_error_frame(series_lookup.frame, stations_lookup.frame)
            _charts.append(views.station_map_chart(_errors, series_station.value))
        else:
            _charts.append(missing(stations_lookup))
        _out = mo.vstack(_charts)
    mo.vstack([mo.md("### Forecast against observed, per station, and the station map"), _out])
    return


@app.cell
def _(catalog, mo):
    experiments_lookup = catalog.table("experiments")
    if experiments_lookup.found and experiments_lookup.frame.height:
        _e = experiments_lookup.frame
        exp_types = mo.ui.multiselect(sorted(_e["model_type"].drop_nulls().unique().to_list()), label="model type")
        exp_status = mo.ui.multiselect(sorted(_e["status"].drop_nulls().unique().to_list()), label="status")
        exp_location = mo.ui.dropdown(sorted(_e["location"].drop_nulls().unique().to_list()), label="location")
    else:
        exp_types = exp_status = exp_location = None
    return exp_location, exp_status, exp_types, experiments_lookup


@app.cell
def _(exp_location, exp_status, exp_types, experiments_lookup, missing, mo, views):
    if exp_types is None:
        _out = missing(experiments_lookup)
    else:
        _rows = views.experiments_frame(experiments_lookup.frame, list(exp_types.value), list(exp_status.value), exp_location.value)
        _out = mo.vstack([mo.hstack([exp_types, exp_status, exp_location]),
                          views.experiments_chart(_rows), mo.ui.table(_rows, selection=None)])
    mo.vstack([mo.md("### Experiments"), _out])
    return


if __name__ == "__main__":
    app.run()
