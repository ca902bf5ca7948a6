"""`make demo`'s runner, end to end on the bundled samples, as a user runs it (a subprocess on a
fresh local folder): every domain materialises and the outputs are where the README says."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl

REPO = Path(__file__).resolve().parent.parent


def test_demo_materialises_everything(tmp_path):
    home, dagster_home = tmp_path / "snoiq", tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNOIQ_", "AWS_", "DAGSTER_", "MLFLOW_", "WANDB_"))}
    env.update({"SNOIQ_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "SNOIQ_DEMO_FAST": "1",
                "HF_HUB_OFFLINE": "1"})
    proc = subprocess.run([sys.executable, "-m", "snoiq_assets.demo"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    (REPO / "test-output").mkdir(exist_ok=True)
    (REPO / "test-output" / "demo.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"outputs in local folder {home.resolve()}" in out
    assert f"{home.resolve()}/lake/" in out and f"{home.resolve()}/models/" in out
    # It says how to reproduce each champion from its snapshot.
    for ref in ("champion:72698024229/precip_mm", "champion:94074/air_temp_c"):
        assert f"make reproduce RUN={ref}" in out

    lake = home / "lake"
    for hour in ("2020-12-14T00", "2023-01-01T00", "2023-01-01T01", "2023-01-01T02"):
        assert (lake / "hrrr_fields" / f"{hour}.parquet").is_file()
        assert (lake / "grid_join_features" / f"{hour}.parquet").is_file()
    joined = pl.read_parquet(lake / "grid_join_features" / "2023-01-01T01.parquet")
    nunn = joined.filter(pl.col("station_id") == "94074")
    assert nunn.height == 1 and nunn["obs_timestamp_utc"].is_not_null().all()  # CO Nunn observed at 01 UTC
    for station in ("94074", "72698024229", "USW00024233", "CLE"):
        assert pl.read_parquet(lake / "observations_clean" / f"{station}.parquet").height > 0
    daily = list((home / "models" / "72698024229").rglob("predictions.parquet"))
    assert len(daily) == 1 and "/predictions/2023-01-01_to_2023-12-31/" in str(daily[0])
    assert pl.read_parquet(daily[0]).height == 365
    # The hourly model on grid-join features: one prediction file per feature partition.
    hourly = sorted((home / "models" / "94074").rglob("predictions.parquet"))
    assert len(hourly) == 48 and "/predictions/2023-01-01T01_to_2023-01-01T01/" in str(hourly[0])
    assert len(list((lake / "hourly_predictions").glob("*.parquet"))) == 48

    with duckdb.connect(str(home / "snoiq.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert {"experiments", "wandb_runs", "wandb_history", "matched_runs"} <= tables
        statuses = con.execute("select location, model_type, status from experiments order by all").fetchall()
        # the DataDecide group on the bundled real files: no empty table
        counts = {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in (
            "wandb_history", "wandb_runs", "hf_eval_results", "matched_runs", "finetune_pretrain", "datadecide_checkpoints",
            "early_window_features", "final_metric_model", "final_metric_predictions", "decision_accuracy_by_size")}
        assert all(counts.values()), counts
        assert counts["hf_eval_results"] == 420 and counts["datadecide_checkpoints"] == 353 and counts["decision_accuracy_by_size"] == 13
        assert con.execute("select count(primary_score) from finetune_pretrain").fetchone()[0] == 436
    assert [(loc, t) for loc, t, s in statuses if s == "success"] == [
        (loc, t) for loc in ("72698024229", "94074") for t in ("lightgbm", "random_forest", "xgboost")]

    # Every asset of the code location has a materialisation in the demo's instance (what
    # `make dev` shows afterwards).
    check = subprocess.run([sys.executable, "-c", EVERY_ASSET], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and "never materialised: []" in check.stdout, check.stdout[-2000:] + check.stderr[-2000:]


EVERY_ASSET = """
import dagster as dg
from snoiq_assets.definitions import defs
instance = dg.DagsterInstance.get()
keys = defs.resolve_asset_graph().get_all_asset_keys()
print("never materialised:", sorted(k.to_user_string() for k in keys if instance.get_latest_materialization_event(k) is None))
"""
