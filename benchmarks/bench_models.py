"""Models benchmark.

1. Overhead of training through the `trained_models` asset (a whole Dagster run: input
   loading, MLflow run with params/metrics/plots/model file, model store, experiments row and
   DuckDB refresh, output partition) against calling the library directly on the same arrays
   (fit + predict on the same train/test split, same parameters, same threads). Target: under
   15%. Two cases, measured in the same process with the runs alternating (direct, asset,
   direct, asset, ...) so machine load hits both alike:
   - large: the real observations_clean of two stations (GSOD Portland 2016-2024 and GHCN-Daily
     Seattle-Tacoma 2012-2015) in one table, 1000 trees of depth 6: a fit of ~10 s,
     the size at which the overhead matters;
   - small: Portland alone, 400 trees: a ~3 s fit, where the fixed cost of a Dagster run shows.
   The fixed cost (asset minus direct) is reported for both, and for the small case it is then
   broken down per phase (``small_fixed_cost_breakdown_s``) from extra instrumented runs
   (timing wrappers around the asset's helpers, MLflow, the IO manager and Dagster's run and
   event-log storage, plus the run's event timestamps), so the timed runs above stay unwrapped.
2. An 8-config sweep (xgboost hyperparameter grid) as 8 Dagster runs sharing one instance,
   store, MLflow and DuckDB: one after the other with every CPU per fit, against 2 runs side by
   side in 2 worker processes with 1 thread per fit (``sweep_run_configs(parallel=2)``), and,
   for the record, 2 side by side with every CPU each (oversubscribed). Worker start-up
   (spawn + imports) is reported apart from the runs. Then a check that the experiments table
   holds each run exactly once.

Run: .venv/bin/python benchmarks/bench_models.py   (writes benchmarks/results/models.json)
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import ROOT, write_results  # noqa: F401 - puts the repo on sys.path

REPS = 3
PORTLAND, SEATTLE = "72698024229", "USW00024233"
SPLIT = "2022-06-01"
CASES = {
    # name: (stations, model location name, hyperparameters)
    "large": ([PORTLAND, SEATTLE], "pdx_sea", {"n_estimators": 1000, "max_depth": 6}),
    "small": ([PORTLAND], PORTLAND, {"n_estimators": 400}),
}
SWEEP_GRID = {"max_depth": [3, 5], "learning_rate": [0.03, 0.1], "n_estimators": [100, 200]}


def _env(home: Path) -> None:
    os.environ["SNOIQ_PROFILE"] = "local"
    os.environ["SNOIQ_HOME"] = str(home / "snoiq")
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    (home / "dagster").mkdir(parents=True, exist_ok=True)


def _resources():
    from snoiq_assets.defs.resources import build_resources
    from snoiq_assets.settings import Settings

    return build_resources(Settings.from_env())


def _assets():
    import dagster as dg

    from snoiq_assets.defs.features.assets import training_table
    from snoiq_assets.defs.models.champion import champion_model
    from snoiq_assets.defs.models.predictions import predictions
    from snoiq_assets.defs.models.training import trained_models
    from snoiq_assets.defs.partitions import hourly_partitions, outcome_location_partitions
    from snoiq_assets.defs.stations.assets import observations_clean, observations_raw

    # training_table's other inputs: declared, nothing stored (a station-only table)
    upstream = [dg.AssetSpec("grid_join_features", partitions_def=hourly_partitions),
                dg.AssetSpec("outcome_of_interest", partitions_def=outcome_location_partitions)]
    return [observations_raw, observations_clean, *upstream, training_table, trained_models, champion_model, predictions]


def _land_specs(store, instance) -> None:
    """One daily precipitation model spec per case (``bench_<case>``), registered."""
    import yaml

    from snoiq_assets.defs.models.specs import register_spec_files
    from snoiq_assets.lib.models.specs import spec_key

    for case, (stations, location, _hp) in CASES.items():
        doc = {"target": "precip_mm", "location": location, "locations": stations, "resolution": "daily",
               "split": {"split_date": SPLIT}, "model_types": ["xgboost"]}
        store.put(spec_key(f"bench_{case}"), yaml.safe_dump(doc).encode())
    register_spec_files(instance, store)


def _train_config(case: str) -> dict:
    return {"ops": {"trained_models": {"config": {"hyperparameters": CASES[case][2], "cv_folds": 0, "n_jobs": 1}}}}


def _materialize(selection: list[str], run_config: dict, partition_key: str | None = None) -> float:
    import dagster as dg

    t = time.perf_counter()
    res = dg.materialize(_assets(), selection=selection, instance=dg.DagsterInstance.get(), resources=_resources(),
                         run_config=run_config, partition_key=partition_key)
    assert res.success
    return time.perf_counter() - t


def _worker_init(home: str) -> None:
    _env(Path(home))
    _assets()  # imports: Dagster, Polars, DuckDB
    # What a run imports lazily on first use: XGBoost, MLflow and its SQLite tracking store (the
    # ORM models, ~2-7 s in a fresh process), matplotlib for the plots. Done here, so it counts
    # as worker start-up and not as the first run's time in each worker.
    import matplotlib.backends.backend_agg  # noqa: F401
    import xgboost  # noqa: F401

    _resources()["mlflow"].experiment_id()


def _ready(_: int) -> int:
    time.sleep(3.0)  # keeps the first ready worker busy so the second one takes the other task
    return os.getpid()


def _worker(run_config: dict) -> float:
    return _materialize(["trained_models"], run_config, "bench_small")


def _sweep_parallel(home: Path, cfgs: list[dict]) -> tuple[float, float]:
    """(seconds to start 2 warm workers, seconds for the runs)."""
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(str(home),)) as pool:
        pids = set(pool.map(_ready, range(2)))
        startup = time.perf_counter() - t
        t = time.perf_counter()
        list(pool.map(_worker, cfgs))
        runs = time.perf_counter() - t
    if len(pids) != 2:
        print(f"note: one worker took both warm-up tasks ({pids}); start-up may be partly inside the runs' time")
    return startup, runs


class _Timers:
    """Timing wrappers set on functions by name for the duration of a ``with`` block."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, label: str) -> None:
        fn = getattr(owner, name, None)
        if fn is None:  # renamed upstream: that phase is reported as 0
            return

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t

        # The raw attribute (staticmethod objects stay staticmethods); None: inherited, delete it after.
        self._undo.append((owner, name, vars(owner).get(name)))
        setattr(owner, name, timed)

    def __enter__(self) -> "_Timers":
        import importlib

        import mlflow
        from dagster._core.instance import DagsterInstance
        from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

        from snoiq_assets.defs.io_manager import PartitionedParquetIOManager
        from snoiq_assets.lib.models import experiments, plots

        A = importlib.import_module("snoiq_assets.defs.models.training")
        self.wrap(A, "train_and_evaluate", "train_and_evaluate")
        self.wrap(A, "_data_version", "data_version_and_table_info")
        self.wrap(A, "info_from_schema_metadata", "data_version_and_table_info")
        self.wrap(A, "save_native", "model_files")
        self.wrap(A, "save_bundle", "model_files")
        self.wrap(plots, "feature_importance_png", "plots")
        self.wrap(plots, "predicted_vs_observed_png", "plots")
        self.wrap(experiments, "record", "experiments_record")
        self.wrap(experiments, "refresh_table", "duckdb_refresh")
        for m in ("create_run", "log_batch", "log_artifacts", "set_tag", "set_terminated"):
            self.wrap(mlflow.MlflowClient, m, "mlflow")
        self.wrap(PartitionedParquetIOManager, "load_input", "io_load_input")
        self.wrap(PartitionedParquetIOManager, "handle_output", "io_handle_output")
        self.wrap(DagsterInstance, "get", "dagster_instance_get")
        self.wrap(SqliteEventLogStorage, "_initdb", "dagster_event_log_shard_init")
        self.wrap(DagsterInstance, "handle_new_event", "dagster_event_writes")
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, raw in reversed(self._undo):
            if raw is None:
                delattr(owner, name)
            else:
                setattr(owner, name, raw)
        self._undo.clear()


def _fixed_cost_breakdown(direct, table, train, case: str, reps: int) -> dict:
    """Median seconds per phase of the fixed cost (asset run minus direct fit) of ``case``;
    ``table(case)`` rebuilds the training table (not timed), ``train(case)`` is the asset run."""
    import dagster as dg

    inst = dg.DagsterInstance.get()
    rows: list[dict[str, float]] = []
    for _ in range(reps):
        d = direct(case)
        table(case)
        with _Timers() as timers:
            a = train(case)
        run = inst.get_runs(limit=1)[0]
        ev = {e.dagster_event_type.value: e.timestamp for e in inst.all_logs(run.run_id) if e.dagster_event_type}
        op_body = ev["STEP_OUTPUT"] - ev["STEP_INPUT"]
        t = timers.seconds
        op_parts = ("train_and_evaluate", "plots", "mlflow", "model_files", "experiments_record", "duckdb_refresh",
                    "data_version_and_table_info")
        row = {"direct_fit_predict": d, "asset_total": a, "fixed_cost": a - d,
               "train_and_evaluate_minus_direct": t.get("train_and_evaluate", 0.0) - d,
               **{k: t.get(k, 0.0) for k in op_parts if k != "train_and_evaluate"},
               "op_body_other": op_body - sum(t.get(k, 0.0) for k in op_parts),
               "io_load_input": t.get("io_load_input", 0.0), "io_handle_output": t.get("io_handle_output", 0.0)}
        # Dagster: everything outside the op body and the IO manager (instance, run creation,
        # planning, event-log writes, step orchestration, the in-process job build).
        row["dagster_run_machinery"] = a - op_body - row["io_load_input"] - row["io_handle_output"]
        row["of_which_dagster_instance_get"] = t.get("dagster_instance_get", 0.0)
        row["of_which_event_log_shard_init"] = t.get("dagster_event_log_shard_init", 0.0)
        row["of_which_event_writes"] = t.get("dagster_event_writes", 0.0)
        rows.append(row)
    return {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}


def main() -> dict:
    # Workers are spawned, not forked: Polars and OpenMP thread pools deadlock in a forked child.
    import dagster as dg
    import polars as pl
    import xgboost as xgb

    from snoiq_assets.lib.models.sweeps import sweep_run_configs
    from snoiq_assets.defs.stations.assets import register_station_files
    from snoiq_assets.defs.stations.demo import SAMPLE, STATION_FILES
    from snoiq_assets.lib.models.evaluate import RunSpec, feature_matrix, prepare
    from snoiq_assets.lib.models.splits import time_split
    from snoiq_assets.lib.cpus import available_cpus
    from snoiq_assets.lib.models.train import DEFAULT_PARAMS
    from snoiq_assets.lib.storage import store_from_settings
    from snoiq_assets.settings import Settings

    out: dict = {"reps": REPS, "cpus": available_cpus(), "overhead_target_pct": 15,
                 "method": "median of alternating runs in one process; direct = xgboost fit+predict on the same "
                           "arrays, same params, 1 thread; asset = dg.materialize(trained_models) with cv_folds=0, n_jobs=1"}
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        home = Path(tmp)
        _env(home)
        inst = dg.DagsterInstance.get()
        store = store_from_settings(Settings.from_env())
        for sid in (PORTLAND, SEATTLE):
            name = next(n for n in STATION_FILES if n.startswith(sid + "."))
            store.put_file(f"raw/observations/{name}", SAMPLE / STATION_FILES[name])
        register_station_files(inst, store)
        _land_specs(store, inst)
        for sid in (PORTLAND, SEATTLE):  # the real stations assets (parser + validation)
            _materialize(["observations_raw", "observations_clean", "observations_rejects"], {}, sid)

        # --- 1. overhead -------------------------------------------------------------------
        from snoiq_assets.lib.features.training import TrainingTableSpec, build_training_table

        obs = pl.concat([pl.read_parquet(store.uri(f"lake/observations_clean/{sid}.parquet")) for sid in (PORTLAND, SEATTLE)],
                        how="diagonal_relaxed")
        arrays = {}
        for case, (stations, _loc, hp) in CASES.items():
            table, info = build_training_table(obs.lazy(), TrainingTableSpec(target="precip_mm", locations=tuple(stations)))
            t2, feats = prepare(table, info, RunSpec(model_type="xgboost", target="precip_mm", locations=tuple(stations)))
            lab = t2.filter(pl.col("target").is_not_null())
            split = time_split(lab["period_start"].to_numpy(), dt.date.fromisoformat(SPLIT))
            X, y = feature_matrix(lab, feats), lab["target"].to_numpy()
            arrays[case] = (X[split.train], y[split.train], X[split.test], {**DEFAULT_PARAMS["xgboost"], **hp})
            out[f"{case}_rows_train_test_features"] = [int(split.train.sum()), int(split.test.sum()), len(feats)]
            out[f"{case}_hyperparameters"] = hp

        def direct(case: str) -> float:
            Xtr, ytr, Xte, hp = arrays[case]
            t = time.perf_counter()
            m = xgb.XGBRegressor(**hp, random_state=0, n_jobs=1, tree_method="hist")
            m.fit(Xtr, ytr)
            m.predict(Xte)
            return time.perf_counter() - t

        def table(case: str) -> None:
            _materialize(["training_table"], {}, f"bench_{case}")

        def train(case: str) -> float:
            return _materialize(["trained_models"], _train_config(case), f"bench_{case}")

        def asset(case: str) -> float:
            # The table the asset reads is rebuilt for the case (its time is not counted).
            table(case)
            return train(case)

        for case in CASES:  # warm-up: imports, MLflow database creation, first run of each kind
            direct(case)
            asset(case)
        times: dict[str, dict[str, list[float]]] = {c: {"direct": [], "asset": []} for c in CASES}
        for _ in range(REPS):
            for case in CASES:
                times[case]["direct"].append(direct(case))
                times[case]["asset"].append(asset(case))
        for case in CASES:
            d, a = statistics.median(times[case]["direct"]), statistics.median(times[case]["asset"])
            out[f"{case}_direct_fit_predict_s"] = round(d, 3)
            out[f"{case}_asset_materialize_s"] = round(a, 3)
            out[f"{case}_fixed_cost_s"] = round(a - d, 3)
            out[f"{case}_overhead_pct"] = round(100 * (a - d) / d, 1)
            out[f"{case}_runs_s"] = {k: [round(v, 2) for v in vs] for k, vs in times[case].items()}
        print({k: v for k, v in out.items() if "overhead" in k or "fixed" in k or k.endswith("_s")}, flush=True)
        out["small_fixed_cost_breakdown_s"] = _fixed_cost_breakdown(direct, table, train, "small", REPS)
        print(out["small_fixed_cost_breakdown_s"], flush=True)

        # --- 2. sweep ----------------------------------------------------------------------
        _materialize(["training_table"], {}, "bench_small")
        base = {"cv_folds": 0, "model_types": ["xgboost"]}
        seq = sweep_run_configs(base, SWEEP_GRID, "bench-seq", parallel=1)
        par = sweep_run_configs(base, SWEEP_GRID, "bench-par", parallel=2)
        over = sweep_run_configs(base, SWEEP_GRID, "bench-par-oversub", parallel=1)
        out["sweep_runs"] = len(seq)
        out["sweep_threads_per_fit"] = {"sequential": seq[0]["ops"]["trained_models"]["config"]["n_jobs"],
                                        "parallel2": par[0]["ops"]["trained_models"]["config"]["n_jobs"],
                                        "parallel2_oversubscribed": over[0]["ops"]["trained_models"]["config"]["n_jobs"]}
        t = time.perf_counter()
        for c in seq:
            _materialize(["trained_models"], c, "bench_small")
        out["sweep_sequential_s"] = round(time.perf_counter() - t, 2)
        startup, runs = _sweep_parallel(home, par)
        out["sweep_parallel2_worker_startup_s"] = round(startup, 2)
        out["sweep_parallel2_s"] = round(runs, 2)
        out["sweep_speedup"] = round(out["sweep_sequential_s"] / runs, 2)
        out["sweep_speedup_incl_worker_startup"] = round(out["sweep_sequential_s"] / (runs + startup), 2)
        _startup2, runs2 = _sweep_parallel(home, over)
        out["sweep_parallel2_oversubscribed_s"] = round(runs2, 2)
        out["sweep_speedup_oversubscribed"] = round(out["sweep_sequential_s"] / runs2, 2)

        import duckdb

        from snoiq_assets.lib.models.experiments import refresh_table

        s = Settings.from_env()
        refresh_table(store_from_settings(s), s.duckdb_path)
        with duckdb.connect(str(s.duckdb_path), read_only=True) as con:
            counts = dict(con.execute("SELECT sweep_id, count(DISTINCT run_id) FROM experiments WHERE sweep_id IS NOT NULL GROUP BY 1").fetchall())
            total = con.execute("SELECT count(*), count(DISTINCT run_id) FROM experiments").fetchone()
        out["experiments_rows_by_sweep"] = counts
        out["experiments_rows_total_distinct"] = list(total)
        assert counts == {"bench-seq": 8, "bench-par": 8, "bench-par-oversub": 8} and total[0] == total[1]
    return out


if __name__ == "__main__":
    write_results("models", main())
