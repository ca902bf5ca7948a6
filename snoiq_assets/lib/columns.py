"""What each stored column holds and in which unit, for the column schemas the Dagster UI shows.

Column names follow one convention (SI units in the name, see DESIGN: ``_c``, ``_mm``, ``_ms``,
``_hpa``...; HRRR variables as ``<name>_<level>_<unit>``; window statistics as ``<var>__<stat>``;
lags and rolling means as ``<column>__lag<n>`` / ``__roll<n>d``), so most descriptions are
derived from the name; the rest are listed here. ``describe`` returns None for a name it does
not know, so a new column shows up as undescribed in tests rather than wrongly described.
"""

from __future__ import annotations

import re

# Longest suffix first. The unit a name ends with.
UNITS: tuple[tuple[str, str], ...] = (
    ("_kg_m2_s", "kg m-2 s-1"), ("_kg_m2", "kg m-2"), ("_m_s", "m/s"), ("_m3m3", "m3/m3"), ("_wm2", "W/m2"),
    ("_w_m2", "W/m2"), ("_hpa", "hPa"), ("_pa", "Pa"), ("_pct", "%"), ("_deg", "degrees"), ("_ms", "m/s"), ("_mm", "mm"), ("_c", "degC"),
    ("_k", "K"), ("_m", "m"),
)

QUANTITIES = {
    # HRRR surface variables (hrrr_fields; lib/hrrr/variables.py)
    "tmp_2m": "HRRR 2 m air temperature", "dpt_2m": "HRRR 2 m dew point", "apcp": "HRRR precipitation accumulated "
    "since the cycle", "asnow": "HRRR snowfall accumulated since the cycle", "csnow": "HRRR categorical snow "
    "(1 = snowing, 0 = not; no unit)", "prate": "HRRR precipitation rate", "snod": "HRRR snow depth",
    "ugrd_10m": "HRRR 10 m wind, eastward component", "vgrd_10m": "HRRR 10 m wind, northward component",
    "weasd": "HRRR snow water equivalent",
    # their hourly amounts, per lead (lib/hrrr/accum.py): null at f00, where no hour has passed
    "apcp_1h": "HRRR precipitation in the hour ending at the valid time", "asnow_1h": "HRRR snowfall in the "
    "hour ending at the valid time",
    # further HRRR surface variables of the point forecasts (lib/features/point_forecasts.py)
    "cfrzr": "HRRR categorical freezing rain (1 = yes, 0 = no; no unit)", "cicep": "HRRR categorical ice "
    "pellets (1 = yes, 0 = no; no unit)", "crain": "HRRR categorical rain (1 = yes, 0 = no; no unit)",
    "cpofp": "HRRR percent of frozen precipitation", "dlwrf": "HRRR downward long-wave radiation at the surface",
    "dswrf": "HRRR downward short-wave radiation at the surface", "gust_sfc": "HRRR surface wind gust",
    "hgt_sfc": "HRRR model terrain height", "pres_sfc": "HRRR surface pressure", "rh_2m": "HRRR 2 m relative "
    "humidity", "snowc": "HRRR snow cover", "tmp_sfc": "HRRR surface (skin) temperature", "vis": "HRRR visibility",
    "wind_10m_hourly_max": "HRRR hourly maximum 10 m wind speed",
    # Station observations (clean table; lib/stations/schema.py)
    "air_temp": "air temperature", "air_temp_max": "maximum air temperature over the period",
    "air_temp_min": "minimum air temperature over the period", "dew_point": "dew point", "precip": "precipitation "
    "over the period", "pressure": "sea-level pressure", "station_pressure": "station pressure",
    "relative_humidity": "relative humidity", "snow_depth": "snow depth", "snowfall": "new snowfall over the period",
    "soil_moisture_5cm": "volumetric soil moisture at 5 cm", "soil_temp_5cm": "soil temperature at 5 cm",
    "solar_radiation": "solar radiation", "surface_temp": "ground surface (infrared) temperature",
    "visibility": "horizontal visibility", "wind_dir": "wind direction (from, clockwise from north)",
    "wind_gust": "peak wind gust", "wind_speed": "wind speed", "wind_speed_max": "maximum sustained wind speed",
}

STATS = {
    "centre": "at the station's grid cell", "mean": "mean over the station's window of cells",
    "min": "minimum over the station's window of cells", "max": "maximum over the station's window of cells",
    "std": "standard deviation over the station's window of cells",
    "grad_sn": "south-to-north difference across the window, per cell", "grad_we": "west-to-east difference across "
    "the window, per cell",
}

NAMED = {
    "station_id": "station identifier (USCRN WBAN, GSOD USAF+WBAN, GHCN-Daily or ASOS id)",
    "location": "the location a model or target series is for (a station id or a user's name)",
    "timestamp_utc": "end of the observation period, UTC", "period_start": "start of the period a row covers, UTC",
    "line_no": "line of the source file the row comes from (1-based)", "resolution": "hourly or daily",
    "source_format": "the file format the row was parsed from", "precip_flag": "the source's precipitation flag",
    "precip_detected": "road-weather precipitation sensor: true = precipitation detected",
    "weather_flags": "the source's weather-type flags", "surface_temp_type": "how the surface temperature was "
    "measured (source code)", "qc_relative_humidity": "the source's quality flag for relative humidity",
    "qc_solar_radiation": "the source's quality flag for solar radiation", "qc_surface_temp": "the source's "
    "quality flag for surface temperature",
    "run_time": "HRRR cycle (model initialisation) time, UTC", "valid_time": "time the forecast is valid for, UTC",
    "forecast_hour": "hours from the cycle to the valid time", "grid_x": "column of the HRRR grid cell (0-based)",
    "grid_y": "row of the HRRR grid cell (0-based)", "x": "column on the HRRR grid (0-based)",
    "y": "row on the HRRR grid (0-based)", "latitude": "latitude, degrees north (WGS84)",
    "longitude": "longitude, degrees east (WGS84)", "cell_latitude": "latitude of the nearest grid cell, degrees north",
    "cell_longitude": "longitude of the nearest grid cell, degrees east", "distance_m": "distance from the station "
    "to its grid cell's centre, m", "grid_id": "hash identifying the HRRR grid", "included": "whether the station "
    "is inside the grid with a full window", "exclusion_reason": "why the station is excluded, if it is",
    "window_cells": "number of grid cells in the station's window", "window_mask": "which cells of the window "
    "are on the grid", "name": "station name", "network": "observing network (USCRN, GSOD, GHCN-D, ASOS)",
    "state": "US state", "wban": "the station's WBAN number, where it has one", "elevation_m": "station elevation above sea level, m", "begin_date": "first day of record",
    "end_date": "last day of record",
    "obs_timestamp_utc": "time of the station observation joined to the valid time, UTC (null: none)",
    "cycle_time": "HRRR cycle the row's forecast comes from, UTC",
    "nwp_at_cycle": "the cycle's own analysis (lead 0) of the target variable, in the target's unit",
    "obs_minus_nwp_at_cycle": "observed target minus the cycle's analysis at the cycle time, target unit",
    "persistence": "baseline: the target as observed at the cycle time, target unit",
    "raw_forecast": "baseline: HRRR's own forecast of the target variable, in the target's unit",
    "hour_sin": "hour of day (UTC) on the unit circle, sine", "hour_cos": "hour of day (UTC) on the unit circle, cosine",
    "season_sin": "day of year on the unit circle, sine", "season_cos": "day of year on the unit circle, cosine",
    "target": "the target column a model predicts", "observed": "the target as observed (null if not yet)",
    "prediction": "the model's prediction of the target, in the target's unit",
    "model_type": "xgboost, lightgbm or random_forest", "model_version": "registered MLflow model version",
    "mlflow_run_id": "the MLflow run that trained the model", "model_prefix": "the model's folder in the model store",
    "run_id": "the training run's id (the experiments table's key)", "spec": "the model spec the row belongs "
    "to (raw/model_specs/SPEC_ID.yaml)", "lead_hours": "forecast lead: hours from the cycle to the valid time",
    "run_timestamp": "when the model was "
    "trained, UTC (its folder name)", "resolution_days": "days per row the model was trained on (0: hourly)",
    "test_start": "first period of the held-out test set", "test_end": "last period of the held-out test set",
    "rmse": "root mean squared error on the test set, target unit", "mae": "mean absolute error on the test set, "
    "target unit", "r2": "coefficient of determination on the test set (no unit)", "bias": "mean prediction minus "
    "observation on the test set, target unit", "skill_persistence": "1 - RMSE / RMSE of persistence (no unit; "
    "above 0 beats it)", "skill_climatology": "1 - RMSE / RMSE of climatology (no unit; above 0 beats it)",
    "metrics_json": "every metric of the run, JSON",
    "rule": "the validation rule that failed", "column": "the column the rule checked", "value": "the value as found",
    "reason": "why the row or value was rejected", "action": "dropped (row removed) or nulled (value set to null)",
    "variable": "the target variable of the series", "parse_error": "why the line could not be parsed (null: parsed)",
    "station": "station identifier as in the source file",
    # champion_model: one row per decision
    "candidate_prefix": "the best new model's folder", "candidate_model_type": "the best new model's type",
    "candidate_rmse": "the best new model's test RMSE, target unit", "candidate_mae": "the best new model's test "
    "MAE, target unit", "current_prefix": "the champion's folder before the decision", "current_rmse": "the "
    "champion's RMSE on the candidate's test period, target unit", "current_mae": "the champion's MAE on the "
    "candidate's test period, target unit", "metric": "the metric compared (rmse or mae)", "min_improvement":
    "relative improvement required to promote (no unit)", "decided_at": "time of the decision, UTC",
    "promoted": "whether the candidate became the champion", "registered_model": "the MLflow registered model",
    "registered_version": "the champion's registered version after the decision",
    "spec_key": "the model spec the decision is for (its id)",
    "candidate_run_id": "the candidate's training run (the experiments table's run_id)",
    "snapshot_sha256": "SHA-256 of the exact rows the model was trained and tested on (snapshots/<sha256>.parquet)",
    "training_window": "the candidate's train and test periods and row counts",
}

# DataDecide tables (lib/datadecide): model sizes are parameter counts, scores are the benchmark's
# own unit (accuracy 0-1, bits per byte, cross-entropy in nats).
DATADECIDE = {
    "project": "W&B project of the run", "run_name": "W&B run name", "run_id": "W&B run id",
    "run_kind": "what the run name says the run is: ladder, finetune, checkpoint or unknown",
    "record_source": "where the run's row came from (W&B run record, or history only)",
    "recipe": "pretraining data recipe, display name (e.g. Dolma1.7 (no Flan))",
    "recipe_key": "pretraining data recipe, identifier joining display names and run names (e.g. no_flan)",
    "size": "model size as named (e.g. 150M)", "size_params": "model size, parameters",
    "params": "model size as the source names it (e.g. 150M)", "log_size_params": "log10 of the model size in parameters",
    "chinchilla_mult": "training tokens as a multiple of the Chinchilla-optimal count (no unit)",
    "seed": "training seed (null: the source names none)", "seed_label": "the seed as the source writes it",
    "replicate": "run number within a recipe and size when the source numbers runs without naming seeds",
    "step": "training step", "tokens": "training tokens seen at the step", "compute": "training compute at the step, FLOPs",
    "data": "pretraining data recipe as the source names it", "task": "evaluation task",
    "primary_score": "the task's primary score at the checkpoint (the task's unit, e.g. accuracy 0-1)",
    "primary_metric": "which metric primary_score is", "metrics": "every numeric metric of the evaluation, name -> value",
    "metrics_text": "non-numeric metric values, name -> text", "outputs": "per-question outputs of the evaluation",
    "source_file": "the landed file the row was read from", "source_line": "line of that file (1-based)",
    "metric": "metric name as logged", "value": "the metric's value at the step (the metric's own unit)",
    "value_text": "the value when it is not a number, as logged",
    "checkpoint": "checkpoint name", "checkpoint_owner": "organisation hosting the checkpoint",
    "model_name": "model (checkpoint repository) name", "group": "W&B run group", "url": "W&B run page",
    "runs_in_checkpoint": "W&B runs listed for the checkpoint",
    "checkpoints_location": "where the model's checkpoints are stored", "revision": "checkpoint revision (branch)",
    "matched_checkpoint": "the matched-runs checkpoint the model name joins to (null: none)",
    "matched_run_ids": "W&B run ids of the matched checkpoint", "wandb_projects": "W&B projects of those runs",
    "runs_in_wandb_runs": "how many of those runs wandb_runs holds",
    "score_runs": "runs averaged into primary_score (score_level recipe_size_mean)",
    "score_level": "seed: the checkpoint's own score; recipe_size_mean: the recipe and size's mean over score_runs",
    "run_ids": "W&B run ids of the checkpoint", "wandb_project": "W&B project of the checkpoint's runs",
    "k": "early window: the first k points of each curve", "x_axis": "what the curve's x is (step or tokens)",
    "final_x": "x of the curve's last point (steps or tokens, as x_axis)", "final_value": "the metric's final value",
    "early_last": "last value inside the early window", "early_mean": "mean value inside the early window",
    "early_slope": "slope of the value against log x inside the early window, per log10 unit",
    "pl_a": "power-law fit a + b * x^-c over the early window: a (metric unit)", "pl_b": "power-law fit: b (metric unit)",
    "pl_c": "power-law fit: exponent c (no unit)", "early_points": "points inside the early window",
    "model": "forecast model name", "prediction": "forecast of the final value (metric unit)",
    "decision_accuracy": "share of recipe pairs ranked as at the largest size (0-1)",
    "pairs": "recipe pairs compared", "samples": "curves the model was scored on", "groups": "recipes (CV groups)",
    "folds": "cross-validation folds", "target_size": "the largest size, whose ranking is the reference",
    "recipes": "recipes evaluated at both sizes", "agree": "pairs ranked as at the largest size (a tie at this size counts half)",
    "ties_at_size": "pairs tied at this size", "ties_at_target": "pairs tied at the largest size (left out)",
    "min_runs": "fewest runs in a recipe's mean", "max_runs": "most runs in a recipe's mean",
    "forecast_model": "the early-window model compared beside it",
    "forecast_pairs": "pairs where the forecast has both recipes",
    "forecast_decision_accuracy": "the forecast's decision accuracy on those pairs (0-1)",
    "forecast_note": "what the forecast accuracy is computed on", "rmse": "root mean squared error of the forecast (metric unit)",
    "mae": "mean absolute error of the forecast (metric unit)",
    "history_rows": "rows of the run's history", "history_last_step": "last training step in the run's history",
    "history_max_tokens": "most training tokens in the run's history",
}
# Tables whose names mean something else than the SnoIQ meaning of the same name.
ASSET_COLUMNS = {asset: DATADECIDE for asset in (
    "wandb_history", "wandb_runs", "hf_eval_results", "matched_runs", "datadecide_checkpoints",
    "early_window_features", "final_metric_model", "final_metric_predictions", "decision_accuracy_by_size",
    "finetune_pretrain")}
# hrrr_station_windows: the grid cell each row was taken from (its other columns are hrrr_fields')
ASSET_COLUMNS["hrrr_station_windows"] = {
    "cell": "HRRR grid cell, row-major (y * nx + x, as hrrr_grid's rows): a cell of some station's window"}


def unit_for(asset: str | None, name: str) -> str | None:
    """The unit a column's name carries (``unit_of``), unless the asset's own vocabulary defines
    the name (DataDecide's ``pl_c`` is an exponent, not degC)."""
    return None if name in ASSET_COLUMNS.get(asset or "", {}) else unit_of(name)


def describe_for(asset: str | None, name: str) -> str | None:
    """What column ``name`` of ``asset``'s table holds: the asset's own vocabulary first (the
    DataDecide tables), then the SnoIQ naming convention (``describe``)."""
    own = ASSET_COLUMNS.get(asset or "", {})
    if name in own:
        return own[name]
    if own and name.startswith("summary."):
        return f"the run's final (summary) value of `{name[len('summary.'):]}` as logged (the metric's own unit)"
    if own and "/" in name:
        return f"W&B metric `{name}` at the step, as logged (the metric's own unit)"
    return describe(name)


def unit_of(name: str) -> str | None:
    for suffix, unit in UNITS:
        if name.endswith(suffix):
            return unit
    return None


def _quantity(name: str) -> str | None:
    """``tmp_2m_k`` -> "HRRR 2 m air temperature, K"; ``air_temp_c`` -> "air temperature, degC"."""
    for suffix, unit in UNITS:
        if name.endswith(suffix) and name[: -len(suffix)] in QUANTITIES:
            return f"{QUANTITIES[name[: -len(suffix)]]}, {unit}"
    if name in QUANTITIES:   # unitless (csnow)
        return QUANTITIES[name]
    return None


def describe(name: str) -> str | None:
    """What column ``name`` holds, with its unit; None if the name follows no known pattern."""
    if name in NAMED:
        return NAMED[name]
    if m := re.fullmatch(r"(.+)__lag(\d+)(h?)", name):
        base = "the target" if m[1] == "target" else describe(m[1])
        period = f"{m[2]} hour(s)" if m[3] else f"{m[2]} period(s)"
        return f"{base}, {period} before the row's period" if base else None
    if m := re.fullmatch(r"(.+)__roll(\d+)d", name):
        base = describe(m[1])
        return f"{base}, mean over the {m[2]} days before the row's period" if base else None
    if m := re.fullmatch(r"(.+)__(centre|mean|min|max|std|grad_sn|grad_we)", name):
        base = _quantity(m[1].removeprefix("grid_"))
        return f"{base}; {STATS[m[2]]}" if base else None
    if name.startswith("obs_"):
        base = describe(name[4:])
        return f"observed at the station at the valid time: {base}" if base else None
    return _quantity(name)


# Asset definition metadata key: the asset's columns are a source's fields as landed (the value
# names the source); the IO manager then describes unknown columns with ``describe_raw``.
COLUMNS_AS_LANDED = "snoiq/columns_as_landed"


def describe_raw(name: str, source_formats: str = "the station file") -> str:
    """A raw table keeps every source field as landed: described as such."""
    return f"field `{name}` of {source_formats} as landed (source units, not converted)"
