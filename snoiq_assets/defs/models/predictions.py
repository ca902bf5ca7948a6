"""``predictions`` (one partition per model spec: its champion over a date range, by default
the champion's held-out period) and ``hourly_predictions`` (every hourly spec's champion on each
forecast cycle its spec covers). Predictions are written under the
model's folder in the model store (lib/models/store.py); ``hourly_predictions`` also returns
them to the IO manager, one lake file per hour."""

from typing import Optional

import dagster as dg
import polars as pl

from snoiq_assets.defs.failures import partial_failure
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.partitions import every_stored_partition, hourly_partitions, model_spec_partitions
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.failures import PartialFailures
from snoiq_assets.lib.features.hourly import hourly_feature_rows, lags_of
from snoiq_assets.lib.features.training import info_from_schema_metadata
from snoiq_assets.lib.keys import safe_identifier
from snoiq_assets.lib.models import ModelError
from snoiq_assets.lib.models.evaluate import period_between
from snoiq_assets.lib.models.predict import (
    PREDICTIONS_SCHEMA, champion_stations, lag_observations, scored_table,
)
from snoiq_assets.lib.models.runs import model_date
from snoiq_assets.lib.features import point_forecasts
from snoiq_assets.lib.hours import hour_of
from snoiq_assets.lib.models.specs import ModelSpec, SpecError, read_spec
from snoiq_assets.lib.models.store import (
    check_scoring_columns, hourly_champions, load_bundle, read_champion, write_predictions,
)
from snoiq_assets.lib.parquet import StoredParquet

GROUP = "models"


class PredictionsConfig(dg.Config):
    start_date: Optional[str] = None  # default: the champion's test period
    end_date: Optional[str] = None


def _resolution(days) -> str:
    return "hourly" if days == 0 else f"resolution_days={days}"


@dg.asset(
    group_name=GROUP,
    partitions_def=model_spec_partitions,
    deps=[champion_model],
    ins={"training_table": dg.AssetIn()},
    description="Per model spec, its champion's predictions for a date range (config; default the champion's test "
                "period), with spec, model version and run id in every row, under the model's folder: "
                "`predictions/<start>_to_<end>/predictions.parquet`.",
    kinds={"parquet"},
)
def predictions(
    context: dg.AssetExecutionContext,
    config: PredictionsConfig,
    store: ObjectStoreResource,
    training_table: StoredParquet,
) -> None:
    object_store = store.get_store()
    spec = read_spec(object_store, context.partition_key)
    location = safe_identifier(spec.store_location, "location")
    champ = read_champion(object_store, location, spec.target)
    if champ is None:
        raise ModelError(f"spec {spec.spec_id!r} has no champion yet (nothing promoted for location {location!r} and "
                         f"target {spec.target!r}); materialise champion_model for it first")
    info = info_from_schema_metadata(training_table.metadata(spec.spec_id))
    table = training_table.read(spec.spec_id)
    model, meta = load_bundle(object_store, champ["model_prefix"], table.columns)
    window = meta.get("training_window") or {}
    first, last = config.start_date or window.get("test_start"), config.end_date or window.get("test_end")
    start, end = _bound(first, "start_date", spec.hourly), _bound(last, "end_date", spec.hourly)
    if start is None or end is None or start > end:
        raise ModelError(f"predictions need start_date <= end_date; got {first!r} and {last!r}")
    if meta.get("resolution_days") != info.get("resolution_days"):
        raise ModelError(f"the champion was trained {_resolution(meta.get('resolution_days'))}, "
                         f"the training table is {_resolution(info.get('resolution_days'))}; rebuild it to match")
    check_scoring_columns(meta, table.columns)
    stations = champion_stations({**meta, "location": location})
    rows = (table.filter(pl.col("location").is_in(stations) & period_between(table, start, end))
            .sort("location", "period_start"))
    if rows.height == 0:
        raise ModelError(f"the training table has no rows for {stations} between {start} and {end}")
    scored = scored_table(rows, model, meta, champ)
    uri = write_predictions(object_store, champ["model_prefix"], start, end, scored)
    context.add_output_metadata({"spec": spec.spec_id, "uri": dg.MetadataValue.path(uri),
                                 "dagster/row_count": scored.num_rows, "start": str(start), "end": str(end),
                                 "model_version": str(champ.get("registered_version")),
                                 "mlflow_run_id": meta["mlflow_run_id"], "run_id": str(meta.get("run_id")),
                                 "model_type": meta["model_type"]})


def _bound(text: Optional[str], what: str, hourly: bool):
    """A date (daily specs) or the day of an hour (hourly specs: the whole days it covers)."""
    if text is None:
        return None
    return model_date(text[:10] if hourly else text, what)


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Every spec's champion (the hourly ones predict here).
    deps=[dg.AssetDep(champion_model, partition_mapping=dg.AllPartitionMapping())],
    ins={
        # A cycle's grid features when its hour has them (point-forecast specs do not need them).
        "grid_join_features": dg.AssetIn(metadata={"allow_missing_partitions": True}),
        "observations_clean": every_stored_partition(),
    },
    description="For each forecast cycle (hour), every hourly spec's champion predicts the cycle's leads it covers "
                "(features built exactly as its training table builds them: from `grid_join_features`, or from the "
                "landed point forecasts for a point-forecast spec), one row per station and lead with `cycle_time` "
                "and `lead_hours`, spec, model version and run id; written under the model's folder as "
                "`predictions/<hour>_to_<hour>/predictions.parquet` and here, one file per hour.",
    kinds={"parquet"},
)
def hourly_predictions(
    context: dg.AssetExecutionContext,
    store: ObjectStoreResource,
    grid_join_features: dict[str, pl.LazyFrame],
    observations_clean: pl.LazyFrame,
) -> dict[str, pl.DataFrame]:
    object_store = store.get_store()
    pks = list(context.partition_keys)
    champions = [(c, _spec_of(object_store, c)) for c in hourly_champions(object_store)]
    if not champions:
        raise ModelError("no hourly champion to predict with: register an hourly model spec and materialise its "
                         "training_table, trained_models and champion_model")
    loaded = [(c, spec, *load_bundle(object_store, c["model_prefix"])) for c, spec in champions]
    obs = lag_observations(observations_clean, pks, [meta for *_x, meta in loaded])
    points = _point_forecast_cycles(context, object_store, pks) if any(
        spec is not None and spec.forecast_source == "point_forecasts" for _c, spec, *_ in loaded) else None
    out: dict[str, pl.DataFrame] = {}
    files, by_spec = [], {}
    # One champion that cannot score (features missing) does not stop the others.
    failures = PartialFailures("hourly_predictions", [c["model_prefix"] for c, _spec in champions], what="champions")
    for pk in pks:
        frames = []
        for champ, spec, model, meta in loaded:
            if champ["model_prefix"] in failures.failed:
                continue
            source = _forecast_rows(spec, pk, grid_join_features, points)
            if source is None:
                continue   # this hour has no forecasts of the kind the spec is built from
            rows, _features = hourly_feature_rows(source, obs, meta["target"], lags_of(meta["features"]) or (),
                                                  locations=champion_stations(meta), leads=spec.leads if spec else None)
            try:
                check_scoring_columns(meta, rows.columns)
            except ModelError as exc:
                failures.add(champ["model_prefix"], f"{pk}: {exc}")
                context.log.error(f"hourly_predictions: {champ['model_prefix']}: {pk}: {exc}")
                continue
            if rows.height == 0:
                continue
            scored = scored_table(rows, model, meta, champ)
            files.append(write_predictions(object_store, champ["model_prefix"], pk, pk, scored))
            frames.append(pl.from_arrow(scored))
            name = spec.spec_id if spec else champ["model_prefix"]
            by_spec.setdefault(name, {"model_version": str(champ.get("registered_version")),
                                      "run_id": meta.get("run_id"), "rows": 0})["rows"] += scored.num_rows
        out[pk] = pl.concat(frames) if frames else pl.DataFrame(schema=PREDICTIONS_SCHEMA)
        context.add_asset_metadata({"dagster/row_count": out[pk].height,
                                    "specs": ", ".join(sorted(out[pk]["spec"].unique().to_list()))}, partition_key=pk)
    if failures:
        # The other champions' files are written; this run fails so the mismatch is seen and
        # these hours are predicted again once the champion or the features are fixed.
        raise partial_failure(failures, f"{len(files)} prediction file(s) of the other champions written",
                              prediction_files_written=len(files))
    if not files:
        context.log.warning(f"no hourly champion's spec covers {pks[0]}..{pks[-1]}: nothing to predict")
    context.add_output_metadata({
        "by_spec": dg.MetadataValue.json(by_spec), "prediction_files": len(files),
        "first_file": dg.MetadataValue.path(files[0]) if files else "",
    })
    return out


def _spec_of(object_store, champ: dict) -> Optional[ModelSpec]:
    """The spec a champion was promoted for (None for a champion from before specs, or whose spec
    file is gone: it predicts from grid_join_features as then)."""
    try:
        return read_spec(object_store, champ["spec"]) if champ.get("spec") else None
    except SpecError:
        return None


def _point_forecast_cycles(context: dg.AssetExecutionContext, object_store, pks: list[str]) -> pl.DataFrame:
    """The landed point forecasts of the run's cycles (read once per run)."""
    try:
        rows, source = point_forecasts.read_landed(object_store)
    except point_forecasts.PointForecastError as exc:
        raise ModelError(str(exc)) from None
    for key, dest in source["quarantined"].items():
        context.log.error(f"hourly_predictions: {key} could not be read; quarantined to {dest} (reason beside it)")
    cycles = [hour_of(pk) for pk in pks]
    return rows.filter(pl.col("run_time").cast(pl.Datetime("us", "UTC")).is_in(cycles))


def _forecast_rows(spec: Optional[ModelSpec], pk: str, grid: dict[str, pl.LazyFrame],
                   points: Optional[pl.DataFrame]) -> Optional[pl.LazyFrame]:
    if spec is not None and spec.forecast_source == "point_forecasts":
        cycle = points.filter(pl.col("run_time").cast(pl.Datetime("us", "UTC")) == hour_of(pk))
        return cycle.lazy() if cycle.height else None
    return grid.get(pk)
