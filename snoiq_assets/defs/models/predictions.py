"""``predictions`` (a location and date range, from config) and ``hourly_predictions`` (every
hourly champion on each new grid_join_features partition). Predictions are written under the
model's folder in the model store (lib/models/store.py); ``hourly_predictions`` also returns
them to the IO manager, one lake file per hour."""

import dagster as dg
import polars as pl

from snoiq_assets.defs.failures import partial_failure
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.partitions import every_stored_partition, hourly_partitions
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
from snoiq_assets.lib.models.store import (
    check_scoring_columns, hourly_champions, load_bundle, read_champion, write_predictions,
)
from snoiq_assets.lib.parquet import StoredParquet

GROUP = "models"


class PredictionsConfig(dg.Config):
    location: str
    target: str = "precip_mm"
    start_date: str
    end_date: str


def _resolution(days) -> str:
    return "hourly" if days == 0 else f"resolution_days={days}"


@dg.asset(
    group_name=GROUP,
    deps=[champion_model],
    ins={"training_table": dg.AssetIn()},
    description="The champion's predictions for a location and date range (config), with model version and run id "
                "in every row, under the model's folder: `predictions/<start>_to_<end>/predictions.parquet`.",
    kinds={"parquet"},
)
def predictions(
    context: dg.AssetExecutionContext,
    config: PredictionsConfig,
    store: ObjectStoreResource,
    training_table: StoredParquet,
) -> None:
    location = safe_identifier(config.location, "location")
    start, end = model_date(config.start_date, "start_date"), model_date(config.end_date, "end_date")
    if start is None or end is None or start > end:
        raise ModelError(f"predictions need start_date <= end_date; got {config.start_date!r} and {config.end_date!r}")
    object_store = store.get_store()
    champ = read_champion(object_store, location, config.target)
    if champ is None:
        raise ModelError(f"no champion for location {location!r} and target {config.target!r}; "
                         "materialise champion_model first")
    info = info_from_schema_metadata(training_table.metadata())
    table = training_table.read()
    model, meta = load_bundle(object_store, champ["model_prefix"], table.columns)
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
    context.add_output_metadata({"uri": dg.MetadataValue.path(uri), "dagster/row_count": scored.num_rows,
                                 "model_version": str(champ.get("registered_version")),
                                 "mlflow_run_id": meta["mlflow_run_id"], "model_type": meta["model_type"]})


@dg.asset(
    group_name=GROUP,
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[champion_model],
    ins={
        "grid_join_features": dg.AssetIn(),
        "observations_clean": every_stored_partition(),
    },
    description="For each grid_join_features partition, every hourly champion's predictions for its stations "
                "(features built exactly as the hourly training table builds them), written under the model's "
                "folder as `predictions/<hour>_to_<hour>/predictions.parquet` and here, one file per hour.",
    kinds={"parquet"},
)
def hourly_predictions(
    context: dg.AssetExecutionContext,
    store: ObjectStoreResource,
    grid_join_features: dict[str, pl.LazyFrame],
    observations_clean: pl.LazyFrame,
) -> dict[str, pl.DataFrame]:
    object_store = store.get_store()
    champions = hourly_champions(object_store)
    pks = list(context.partition_keys)
    if not champions:
        raise ModelError("no hourly champion to predict with: train with training_table hourly: true and "
                         "trained_models hourly: true, then materialise champion_model")
    loaded = [(c, *load_bundle(object_store, c["model_prefix"])) for c in champions]
    obs = lag_observations(observations_clean, pks, [meta for _c, _m, meta in loaded])
    out: dict[str, pl.DataFrame] = {}
    files = []
    # One champion that cannot score (features missing) does not stop the others.
    failures = PartialFailures("hourly_predictions", [c["model_prefix"] for c in champions], what="champions")
    for pk in pks:
        frames = []
        for champ, model, meta in loaded:
            if champ["model_prefix"] in failures.failed:
                continue
            rows, _features = hourly_feature_rows(grid_join_features[pk], obs, meta["target"], lags_of(meta["features"]) or (),
                                                  locations=champion_stations(meta))
            try:
                check_scoring_columns(meta, rows.columns)
            except ModelError as exc:
                failures.add(champ["model_prefix"], f"{pk}: {exc}")
                context.log.error(f"hourly_predictions: {champ['model_prefix']}: {pk}: {exc}")
                continue
            if rows.height == 0:
                context.log.warning(f"{pk}: none of {meta.get('stations')} is in grid_join_features; nothing to predict "
                                    f"for {champ['model_prefix']}")
                continue
            scored = scored_table(rows, model, meta, champ)
            files.append(write_predictions(object_store, champ["model_prefix"], pk, pk, scored))
            frames.append(pl.from_arrow(scored))
        out[pk] = pl.concat(frames) if frames else pl.DataFrame(schema=PREDICTIONS_SCHEMA)
    if failures:
        # The other champions' files are written; this run fails so the mismatch is seen and
        # these hours are predicted again once the champion or the features are fixed.
        raise partial_failure(failures, f"{len(files)} prediction file(s) of the other champions written",
                              prediction_files_written=len(files))
    context.add_output_metadata({
        "champions": dg.MetadataValue.json([c["model_prefix"] for c in champions]),
        "prediction_files": len(files),
        "first_file": dg.MetadataValue.path(files[0]) if files else "",
    })
    return out
