"""Models benchmark.

1. Overhead of training through the `trained_models` asset (Dagster run, MLflow logging,
   plots, model store, experiments table) against calling the library directly on the same
   arrays (fit + predict on the same train/test split). Target: overhead under 15%.
2. An 8-config sweep (xgboost hyperparameter grid) as 8 Dagster runs: sequential against 2
   parallel runs (2 worker processes sharing one Dagster instance, store, MLflow and DuckDB),
   then a check that the experiments table holds each run exactly once.

Run: .venv/bin/python benchmarks/bench_models.py   (writes benchmarks/results/models.json)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

N_ESTIMATORS = 400
REPS = 3


def _env(home: Path) -> None:
    os.environ["SNOIQ_PROFILE"] = "local"
    os.environ["SNOIQ_HOME"] = str(home / "snoiq")
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    (home / "dagster").mkdir(parents=True, exist_ok=True)


def _resources():
    from snoiq_assets.defs.models.resources import mlflow_resource
    from snoiq_assets.defs.resources import build_resources
    from snoiq_assets.settings import Settings

    s = Settings.from_env()
    return {**build_resources(s), "mlflow": mlflow_resource(s)}


def _assets():
    from snoiq_assets.defs.features.training import training_table
    from snoiq_assets.defs.models.assets import champion_model, predictions, trained_models
    from snoiq_assets_tests.models.conftest import observations_clean

    return [observations_clean, training_table, trained_models, champion_model, predictions]


def _train_config(hp: dict, sweep_id: str | None = None, cv_folds: int = 0) -> dict:
    from snoiq_assets.defs.models.demo import demo_run_config

    cfg = demo_run_config("train")
    c = cfg["ops"]["trained_models"]["config"]
    c.update(hyperparameters=hp, cv_folds=cv_folds)
    if sweep_id:
        c["sweep_id"] = sweep_id
    return cfg


def _materialize_train(run_config: dict) -> float:
    import dagster as dg

    t = time.perf_counter()
    res = dg.materialize(_assets(), selection=["trained_models"], instance=dg.DagsterInstance.get(),
                         resources=_resources(), run_config=run_config, partition_key="xgboost")
    assert res.success
    return time.perf_counter() - t


def _worker(args):
    home, run_config = args
    _env(Path(home))
    return _materialize_train(run_config)


def main() -> dict:
    # Workers are spawned, not forked: Polars and OpenMP thread pools deadlock in a forked child.
    import dagster as dg
    import numpy as np
    import polars as pl
    import xgboost as xgb

    from snoiq_assets.defs.models.demo import demo_run_config
    from snoiq_assets.defs.partitions import station_file_partitions
    from snoiq_assets.lib.features.training import TrainingTableSpec, build_training_table
    from snoiq_assets.lib.models.evaluate import RunSpec, _matrix, prepare
    from snoiq_assets.lib.models.splits import time_split
    from snoiq_assets.lib.models.train import DEFAULT_PARAMS
    from snoiq_assets_tests.models.gsod import STATION, gsod_clean

    out: dict = {"n_estimators": N_ESTIMATORS, "reps": REPS, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        home = Path(tmp)
        _env(home)
        inst = dg.DagsterInstance.get()
        inst.add_dynamic_partitions(station_file_partitions.name, [STATION])
        assets, resources = _assets(), _resources()
        assert dg.materialize(assets, selection=["observations_clean"], instance=inst, resources=resources, partition_key=STATION).success
        assert dg.materialize(assets, selection=["training_table"], instance=inst, resources=resources,
                              run_config=demo_run_config("table")).success

        # --- 1. overhead -------------------------------------------------------------------
        table, info = build_training_table(gsod_clean().lazy(), TrainingTableSpec(target="precip_mm", locations=(STATION,)))
        spec = RunSpec(model_type="xgboost", target="precip_mm")
        t2, feats = prepare(table, info, spec)
        lab = t2.filter(pl.col("target").is_not_null())
        split = time_split(lab["period_start"].to_numpy(), __import__("datetime").date(2022, 6, 1))
        X, y = _matrix(lab, feats), lab["target"].to_numpy()
        hp = {**DEFAULT_PARAMS["xgboost"], "n_estimators": N_ESTIMATORS}

        def direct():
            t = time.perf_counter()
            m = xgb.XGBRegressor(**hp, random_state=0, n_jobs=1, tree_method="hist")
            m.fit(X[split.train], y[split.train])
            m.predict(X[split.test])
            return time.perf_counter() - t

        _materialize_train(_train_config({"n_estimators": N_ESTIMATORS}))  # warm-up (MLflow DB init)
        direct()
        d_times, a_times = [], []
        for _ in range(REPS):
            d_times.append(direct())
            a_times.append(_materialize_train(_train_config({"n_estimators": N_ESTIMATORS})))
        d, a = statistics.median(d_times), statistics.median(a_times)
        out["direct_fit_predict_s"] = round(d, 3)
        out["asset_materialize_s"] = round(a, 3)
        out["overhead_pct"] = round(100 * (a - d) / d, 1)
        out["overhead_target_pct"] = 15

        # --- 2. sweep ----------------------------------------------------------------------
        from snoiq_assets.defs.models.assets import sweep_run_configs

        grid = {"max_depth": [3, 5], "learning_rate": [0.03, 0.1], "n_estimators": [100, 200]}
        seq_cfgs = sweep_run_configs({**demo_run_config("train")["ops"]["trained_models"]["config"], "cv_folds": 0}, grid, "bench-seq")
        par_cfgs = sweep_run_configs({**demo_run_config("train")["ops"]["trained_models"]["config"], "cv_folds": 0}, grid, "bench-par")
        t = time.perf_counter()
        for c in seq_cfgs:
            _materialize_train(c)
        out["sweep_runs"] = len(seq_cfgs)
        out["sweep_sequential_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_worker, [(str(home), c) for c in par_cfgs]))
        out["sweep_parallel2_s"] = round(time.perf_counter() - t, 2)
        out["sweep_speedup"] = round(out["sweep_sequential_s"] / out["sweep_parallel2_s"], 2)

        import duckdb

        from snoiq_assets.lib.models.experiments import refresh_table
        from snoiq_assets.lib.storage import store_from_settings
        from snoiq_assets.settings import Settings

        s = Settings.from_env()
        refresh_table(store_from_settings(s), s.duckdb_path)
        with duckdb.connect(str(s.duckdb_path), read_only=True) as con:
            counts = dict(con.execute("SELECT sweep_id, count(DISTINCT run_id) FROM experiments WHERE sweep_id IS NOT NULL GROUP BY 1").fetchall())
            total = con.execute("SELECT count(*), count(DISTINCT run_id) FROM experiments").fetchone()
        out["experiments_rows_by_sweep"] = counts
        out["experiments_rows_total_distinct"] = list(total)
        assert counts == {"bench-seq": 8, "bench-par": 8} and total[0] == total[1]
    return out


if __name__ == "__main__":
    res = main()
    print(json.dumps(res, indent=2))
    (REPO / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "benchmarks" / "results" / "models.json").write_text(json.dumps(res, indent=2) + "\n")
