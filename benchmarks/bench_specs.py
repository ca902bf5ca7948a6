"""Model-spec benchmark: training one spec (the road-weather air-temperature spec: 4 INDOT
stations x 18 leads, HRRR point forecasts, trained December 2018 - February 2019 with two
rolling-origin folds, tested on March 2019) through the ``trained_models`` asset against the
library calls on the same arrays.

- direct: ``lib.models.evaluate.train_and_evaluate`` on the spec's training table as the asset
  reads it (the same RunSpec the asset builds: LightGBM, the spec's hyperparameters, CV folds,
  per-lead scoring against persistence, climatology and raw HRRR);
- asset: ``dg.materialize(trained_models, partition_key=spec)``: the same fit, plus the input
  loading, MLflow run (params, metrics, plots, model file, dataset), training-data snapshot,
  model store, experiments row, DuckDB refresh (experiments and skill_by_lead) and output.

The spec's table is built once by the ``training_table`` asset (not timed). Runs alternate
(direct, asset, direct, asset, ...) in one process so machine load hits both alike; medians
are reported. Target: overhead under 15%. The per-lead RMSE table (model and baselines, March)
goes to the results file and is printed.

Run: .venv/bin/python benchmarks/bench_specs.py   (writes benchmarks/results/specs.json)
     .venv/bin/python benchmarks/bench_specs.py --all-types   (the spec's three model types, as its
     retraining trains them; writes benchmarks/results/specs_all_types.json)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, write_results  # noqa: F401 - puts the repo on sys.path

REPS = 3
SPEC = "rwis_air_temp"
MODEL_TYPE = "lightgbm"
# --all-types: the spec's own model types (its file: xgboost, lightgbm, random_forest), as its
# retraining runs; two rounds (each round is a few minutes of fits).
ALL_TYPES_REPS = 2


def main(all_types: bool = False) -> dict:
    import dagster as dg
    import polars as pl

    with tempfile.TemporaryDirectory(prefix="bench-specs-") as tmp:
        home = Path(tmp)
        os.environ.update({"SNOIQ_PROFILE": "local", "SNOIQ_HOME": str(home / "snoiq"), "DAGSTER_HOME": str(home / "dagster")})
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        (home / "dagster").mkdir(parents=True)

        from snoiq_assets.defs.features.assets import training_table
        from snoiq_assets.defs.models.demo import land_specs
        from snoiq_assets.defs.models.specs import register_spec_files
        from snoiq_assets.defs.models.training import TrainRunConfig, model_config, trained_models
        from snoiq_assets.defs.partitions import hourly_partitions, outcome_location_partitions
        from snoiq_assets.defs.resources import build_resources
        from snoiq_assets.defs.stations.assets import observations_clean, observations_raw, register_station_files
        from snoiq_assets.defs.stations.demo import POINT_FORECAST_FILES, SAMPLE, STATION_FILES
        from snoiq_assets.lib.features.training import info_from_schema_metadata
        from snoiq_assets.lib.lake import stored_metadata
        from snoiq_assets.lib.models import leads as L
        from snoiq_assets.lib.models.evaluate import train_and_evaluate
        from snoiq_assets.lib.models.runs import run_spec
        from snoiq_assets.lib.models.specs import read_spec
        from snoiq_assets.lib.storage import store_from_settings
        from snoiq_assets.settings import Settings

        settings = Settings.from_env()
        store = store_from_settings(settings)
        instance = dg.DagsterInstance.get()
        resources = build_resources(settings)
        assets = [observations_raw, observations_clean, training_table, trained_models,
                  dg.AssetSpec("grid_join_features", partitions_def=hourly_partitions),
                  dg.AssetSpec("outcome_of_interest", partitions_def=outcome_location_partitions)]

        def materialize(selection, partition_key, run_config=None) -> float:
            t = time.perf_counter()
            res = dg.materialize(assets, selection=selection, partition_key=partition_key, instance=instance,
                                 resources=resources, run_config=run_config or {})
            assert res.success
            return time.perf_counter() - t

        spec = read_spec(store, land_specs(store, [SPEC])[0])
        sites = list(spec.locations)
        for name, rel in STATION_FILES.items():
            if name.rsplit(".", 1)[0] in sites:
                store.put_file(f"raw/observations/{name}", SAMPLE / rel)
        for key, rel in POINT_FORECAST_FILES.items():
            store.put_file(key, SAMPLE / rel)
        register_station_files(instance, store)
        register_spec_files(instance, store)
        for site in sites:
            materialize(["observations_raw", "observations_clean", "observations_rejects"], site)
        table_s = materialize(["training_table"], SPEC)

        table = pl.read_parquet(store.get(f"lake/training_table/{SPEC}.parquet"))
        info = info_from_schema_metadata(stored_metadata(store, dg.AssetKey("training_table"), SPEC))
        model_types = list(spec.model_types) if all_types else [MODEL_TYPE]
        reps = ALL_TYPES_REPS if all_types else REPS
        runs = {}
        for mt in model_types:
            config = model_config(spec, TrainRunConfig(model_types=model_types), mt)
            runs[mt] = run_spec({**config.model_dump(), "model_type": mt}, mt, sites)
        type_config = {"ops": {"trained_models": {"config": {"model_types": model_types}}}}
        results = []

        def direct() -> float:
            # the library calls the asset makes, one type after the other as it trains them
            t = time.perf_counter()
            for mt in model_types:
                results.append((mt, train_and_evaluate(table, info, runs[mt])))
            return time.perf_counter() - t

        def asset() -> float:
            return materialize(["trained_models"], SPEC, type_config)

        direct()  # warm-up: imports, MLflow database, first fit
        asset()
        times = {"direct": [], "asset": []}
        for _ in range(reps):
            times["direct"].append(direct())
            times["asset"].append(asset())
        d, a = statistics.median(times["direct"]), statistics.median(times["asset"])
        result = next(r for mt, r in reversed(results) if mt == MODEL_TYPE)
        wide = L.rmse_table(result.by_lead)
        out = {
            "spec": SPEC, "model_types": model_types, "reps": reps, "overhead_target_pct": 15,
            "stations": sites, "leads": spec.leads, "table_rows": table.height, "features": len(result.features),
            "train_rows": result.window["train_rows"], "test_rows": result.window["test_rows"],
            "training_table_asset_s": round(table_s, 2),
            "direct_train_and_evaluate_s": round(d, 2), "asset_materialize_s": round(a, 2),
            "fixed_cost_s": round(a - d, 2), "overhead_pct": round(100 * (a - d) / d, 1),
            "runs_s": {k: [round(v, 2) for v in vs] for k, vs in times.items()},
            "beats_every_baseline_at_every_lead": {mt: not r.metrics["baseline_failures"] for mt, r in results[-len(model_types):]},
            f"rmse_by_lead_degC_{MODEL_TYPE}": {c: [round(v, 3) if isinstance(v, float) else v for v in wide[c].to_list()]
                                               for c in wide.columns},
        }
        print(L.markdown_table(wide))
    return out


if __name__ == "__main__":
    import sys

    every = "--all-types" in sys.argv[1:]
    write_results("specs_all_types" if every else "specs", main(all_types=every))
