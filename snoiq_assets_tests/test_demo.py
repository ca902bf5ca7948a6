"""`make demo`'s runner, end to end on the bundled samples, as a user runs it (a subprocess on a
fresh local folder), once for the module: every domain materialises and the outputs are where
the README says; the DuckDB CLI users install reads its database; switching the sensors on
afterwards starts nothing the demo already did; a second `make demo` finds everything up to date.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from dagster._core.instance.ref import InstanceRef

from snoiq_assets_tests.helpers import keep_synth_cache

REPO = Path(__file__).resolve().parent.parent
DUCKDB_CLI = Path(sys.executable).parent / "duckdb"   # PyPI duckdb-cli, what `pip install duckdb-cli` gives
# Dagster's notices about beta/preview/superseded APIs: filtered in snoiq_assets/defs/__init__.py.
NOISE = re.compile(r"(Beta|Preview|Supersession|Deprecation)Warning")

# Two demos for the module (the second finds everything up to date): the first takes ~5 min on a
# quiet 2-core machine, several times that on a busy one (over 25 min at load 18).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(4200)]
# The demo's model specs (data/model_specs/), sorted.
SPECS = ["nunn_air_temp_hourly", "portland_precip_daily", "rwis_air_temp", "rwis_pavement_temp"]
# The model types each spec trains in the fast demo (the road-weather specs: LightGBM only).
TYPES = {spec: ("lightgbm",) if spec.startswith("rwis") else ("lightgbm", "random_forest", "xgboost") for spec in SPECS}


@dataclass
class DemoRun:
    home: Path
    dagster_home: Path
    env: dict
    proc: subprocess.CompletedProcess

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.dagster_home)))


def run_demo(env: dict, log_name: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "snoiq_assets.demo"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=3000)
    (REPO / "test-output").mkdir(exist_ok=True)
    (REPO / "test-output" / log_name).write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoRun:
    base = tmp_path_factory.mktemp("demo")
    home, dagster_home = base / "snoiq", base / "dagster_home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNOIQ_", "AWS_", "DAGSTER_", "MLFLOW_", "WANDB_"))}
    env.update({"SNOIQ_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "SNOIQ_DEMO_FAST": "1",
                "HF_HUB_OFFLINE": "1"})
    keep_synth_cache(env)
    return DemoRun(home, dagster_home, env, run_demo(env, "demo.log"))


def test_demo_materialises_everything(demo):
    home, out = demo.home, demo.proc.stdout
    assert f"outputs in local folder {home.resolve()}" in out
    assert f"{home.resolve()}/lake/" in out and f"{home.resolve()}/models/" in out
    # It says how to reproduce each champion from its snapshot.
    for ref in ("champion:72698024229/precip_mm", "champion:indot_rwis/air_temp_c", "champion:indot_rwis/surface_temp_c"):
        assert f"make reproduce RUN={ref}" in out
    # No Dagster beta/preview/supersession notices (they were 12 lines per demo).
    assert [line for line in demo.proc.stderr.splitlines() if NOISE.search(line)] == []

    lake = home / "lake"
    # one file per (cycle, lead): the real 2020 subset is f12, the synthetic hours f00
    for hour, lead in (("2020-12-14T00", 12), ("2023-01-01T00", 0), ("2023-01-01T01", 0), ("2023-01-01T02", 0)):
        assert (lake / "hrrr_fields" / hour / f"f{lead:02d}.parquet").is_file()
        # the station index comes first, so each lead's station windows are taken as it is decoded
        assert (lake / "hrrr_station_windows" / hour / f"f{lead:02d}.parquet").is_file()
        assert (lake / "grid_join_features" / hour / f"f{lead:02d}.parquet").is_file()
    joined = pl.read_parquet(lake / "grid_join_features" / "2023-01-01T01" / "f00.parquet")
    nunn = joined.filter(pl.col("station_id") == "94074")
    assert nunn.height == 1 and nunn["obs_timestamp_utc"].is_not_null().all()  # CO Nunn observed at 01 UTC
    for station in ("94074", "72698024229", "USW00024233", "CLE"):
        assert pl.read_parquet(lake / "observations_clean" / f"{station}.parquet").height > 0
    # Each spec's champion predicts its held-out period under its own model folder.
    daily = list((home / "models" / "72698024229").rglob("predictions.parquet"))
    assert len(daily) == 1 and "/predictions/2022-06-01_to_2024-01-01/" in str(daily[0])
    assert pl.read_parquet(daily[0]).height == 580   # every day of the test period
    for target in ("air_temp_c", "surface_temp_c"):
        champ = json.loads((home / "models" / "indot_rwis" / f"champion-{target}.json").read_text())
        # its test period (March) and, from hourly_predictions, the three March cycles' hours
        files = sorted(str(p.relative_to(home / champ["model_prefix"]))
                       for p in (home / champ["model_prefix"]).rglob("predictions.parquet"))
        assert files == ["predictions/2019-03-01_to_2019-04-01/predictions.parquet",
                         *(f"predictions/2019-03-15T{h:02d}_to_2019-03-15T{h:02d}/predictions.parquet" for h in (0, 1, 2))], files
        assert pl.read_parquet(home / champ["model_prefix"] / files[0]).height > 20000
    # The hourly model on synthetic grid-join features beats no baseline: it is not promoted.
    assert not (home / "models" / "94074" / "champion-air_temp_c.json").exists()
    # The road-weather specs on real data (air and pavement temperature) each earn their own
    # champion: it beats raw HRRR, persistence and climatology at every lead 1-18 on March 2019.
    for spec_id, target in (("rwis_air_temp", "air_temp_c"), ("rwis_pavement_temp", "surface_temp_c")):
        champ = json.loads((home / "models" / "indot_rwis" / f"champion-{target}.json").read_text())
        meta = json.loads((home / champ["model_prefix"] / "metadata.json").read_text())
        assert champ["spec"] == meta["spec_key"] == spec_id and meta["target"] == target
        assert meta["metrics"]["baseline_failures"] == [] and meta["metrics"]["leads"] == list(range(1, 19))
        assert meta["stations"] == ["fort_wayne", "gas_city", "jeffersonville", "scottsburg"]
        assert meta["training_window"]["test_cycles_from"] == "2019-03-01"
    # hourly_predictions: both road-weather champions on three March cycles, every station and lead.
    hourly = pl.read_parquet(lake / "hourly_predictions" / "2019-03-15T01.parquet")
    assert sorted(hourly["spec"].unique()) == ["rwis_air_temp", "rwis_pavement_temp"]
    assert hourly["cycle_time"].dt.strftime("%Y-%m-%dT%H").unique().to_list() == ["2019-03-15T01"]
    assert hourly.group_by("spec").agg(pl.col("lead_hours").n_unique())["lead_hours"].to_list() == [18, 18]
    assert hourly["location"].n_unique() == 4 and hourly["model_version"].null_count() == 0
    assert hourly.height == 2 * 4 * 18 and hourly["prediction"].is_between(-30, 40).all()   # degC
    # Each spec's outputs side by side: its own table, models and champion decision in the lake.
    for table in ("training_table", "trained_models", "champion_model"):
        assert sorted(p.stem for p in (lake / table).glob("*.parquet")) == SPECS, table

    with duckdb.connect(str(home / "snoiq.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert {"experiments", "wandb_runs", "wandb_history", "matched_runs"} <= tables
        statuses = con.execute("select spec_key, model_type, status from experiments order by all").fetchall()
        # the DataDecide group on the bundled real files: no empty table
        counts = {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in (
            "wandb_history", "wandb_runs", "hf_eval_results", "matched_runs", "finetune_pretrain", "datadecide_checkpoints",
            "early_window_features", "final_metric_model", "final_metric_predictions", "decision_accuracy_by_size")}
        assert all(counts.values()), counts
        assert counts["hf_eval_results"] == 420 and counts["datadecide_checkpoints"] == 353 and counts["decision_accuracy_by_size"] == 13
        assert con.execute("select count(primary_score) from finetune_pretrain").fetchone()[0] == 436
    assert [(spec, t) for spec, t, s in statuses if s == "success"] == [
        (spec, t) for spec in SPECS for t in TYPES[spec]]

    # Every asset of the code location has a materialisation in the demo's instance (what
    # `make dev` shows afterwards). Every run says which demo step it was.
    check = subprocess.run([sys.executable, "-c", EVERY_ASSET], cwd=REPO, env=demo.env, capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0 and "never materialised: []" in check.stdout, \
        check.stdout[-2000:] + check.stderr[-2000:]
    with demo.instance() as instance:
        runs = instance.get_runs()
        assert runs and all(r.tags.get("snoiq/demo_step") for r in runs)
        # Run through the code location's asset job: the UI's run list shows such a run by the
        # assets it materialised (jobs named `__ASSET_JOB...` are hidden there), not as
        # `__ephemeral_asset_job__`.
        assert {r.job_name for r in runs} == {"__ASSET_JOB"}
        assert all(r.asset_selection for r in runs)
        assert {f"trained_models [{spec}]" for spec in SPECS} <= {r.tags["snoiq/demo_step"] for r in runs}
        assert sorted(instance.get_dynamic_partitions("model_specs")) == SPECS


def test_hour_spans_run_consecutive_hours_with_one_config_as_a_range():
    """The demo's HRRR steps: consecutive hours sharing a run config become one range run (the
    three synthetic hours), others one run each; a gap or another config starts a new run."""
    from snoiq_assets.defs.hrrr.demo import DEMO_RUN_CONFIG, REAL_PARTITION, SYNTH_PARTITIONS
    from snoiq_assets.demo import hour_spans

    spans = hour_spans([*SYNTH_PARTITIONS, REAL_PARTITION], DEMO_RUN_CONFIG)
    assert spans == [
        {"partition_key": REAL_PARTITION, "run_config": DEMO_RUN_CONFIG[REAL_PARTITION]},
        {"run_config": DEMO_RUN_CONFIG[SYNTH_PARTITIONS[0]],
         "tags": {"dagster/asset_partition_range_start": "2023-01-01T00",
                  "dagster/asset_partition_range_end": "2023-01-01T02"}},
    ]
    a, b = {"ops": {"hrrr_raw": {"config": {"leads": [0]}}}}, {"ops": {"hrrr_raw": {"config": {"leads": [1]}}}}
    configs = {"2023-01-01T00": a, "2023-01-01T01": a, "2023-01-01T03": a, "2023-01-01T04": b}
    assert [s.get("partition_key") or s["tags"]["dagster/asset_partition_range_start"] for s in hour_spans(list(configs), configs)] == [
        "2023-01-01T00", "2023-01-01T03", "2023-01-01T04"]
    assert hour_spans(list(configs), configs)[0]["tags"]["dagster/asset_partition_range_end"] == "2023-01-01T01"


def test_every_table_describes_its_columns(demo):
    """The column schema the UI shows: every column of every table an asset writes (SnoIQ and
    DataDecide) says what it holds (with the unit its name carries), as recorded by the demo's
    materialisations; every asset that wrote a lake file has a column schema."""
    from snoiq_assets.definitions import defs
    from snoiq_assets.lib.columns import unit_for

    graph = defs.resolve_asset_graph()
    undescribed, checked = {}, 0
    with demo.instance() as instance:
        for node in graph.asset_nodes:
            records = instance.fetch_materializations(node.key, limit=1).records
            metadata = records[0].asset_materialization.metadata if records else {}
            schema = metadata.get("dagster/column_schema")
            if schema is None:
                assert "/lake/" not in str(getattr(metadata.get("uri"), "value", "")), node.key
                continue
            for col in schema.value.columns:
                checked += 1
                unit = unit_for(node.key.to_user_string(), col.name)
                if not col.description or (unit and unit not in col.description):
                    undescribed.setdefault(node.key.to_user_string(), []).append(col.name)
    assert undescribed == {} and checked > 300, (undescribed, checked)


def test_every_float_in_metadata_is_rounded(demo):
    """Metrics, statistics and shares in the UI read 1.039 or 0.01235, not 17 digits: every float
    of every materialisation and check result of the demo is as defs/metadata.py rounds it."""
    from snoiq_assets.defs.metadata import round_float

    def floats(value):
        if isinstance(value, float):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from floats(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from floats(v)

    unrounded, seen = [], 0
    with demo.instance() as instance:
        kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id, of_type=kinds):
                data = entry.dagster_event.event_specific_data
                metadata = data.materialization.metadata if hasattr(data, "materialization") else data.metadata
                for key, value in metadata.items():
                    raw = (value.value if isinstance(value, dg.FloatMetadataValue) else value.data
                           if isinstance(value, dg.JsonMetadataValue) else
                           [dict(r.data) for r in value.records] if isinstance(value, dg.TableMetadataValue) else None)
                    for x in floats(raw):
                        seen += 1
                        if x == x and x != round_float(x):
                            unrounded.append((key, x))
    assert unrounded == [] and seen > 50, (unrounded[:20], seen)


def test_lake_glob_keeps_every_column(demo):
    """An asset's files read as one table with DuckDB (README): hours decoded with fewer
    variables (the hourly model's 46 hours have 3 of 10) read as nulls for the others."""
    lake = demo.home / "lake"
    with duckdb.connect() as con:
        every = {r[0] for r in con.execute(f"describe select * from read_parquet('{lake}/hrrr_fields/*/*.parquet', "
                                           "union_by_name = true)").fetchall()}
        assert every >= {"tmp_2m_k", "snod_m", "weasd_kg_m2", "csnow"}
        nulls = con.execute(f"select count(*) filter (where snod_m is null), count(*) from read_parquet("
                            f"'{lake}/hrrr_fields/*/*.parquet', union_by_name = true, filename = true) "
                            "where filename like '%/2023-01-02T%'").fetchone()
        assert nulls[0] == nulls[1] > 0   # those hours lack snow depth
        joined = {r[0] for r in con.execute(f"describe select * from read_parquet('{lake}/grid_join_features/*/*.parquet', "
                                            "union_by_name = true)").fetchall()}
        assert {"tmp_2m_k__mean", "snod_m__mean", "station_id", "valid_time"} <= joined


EVERY_ASSET = """
import dagster as dg
from snoiq_assets.definitions import defs
instance = dg.DagsterInstance.get()
keys = defs.resolve_asset_graph().get_all_asset_keys()
print("never materialised:", sorted(k.to_user_string() for k in keys if instance.get_latest_materialization_event(k) is None))
"""


def test_duckdb_cli_reads_the_demo_database(demo):
    """The CLI from `pip install duckdb-cli` (1.5.x) opens the file the Python duckdb 2.x wrote,
    read-only as the README shows, and sees what Python sees."""
    db = demo.home / "snoiq.duckdb"
    version = subprocess.run([str(DUCKDB_CLI), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("v1.5."), version.stdout + version.stderr
    sql = "select spec_key, model_type, round(rmse, 6) from experiments where status = 'success' order by all"
    proc = subprocess.run([str(DUCKDB_CLI), "-readonly", "-csv", "-noheader", str(db), sql],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        expected = con.execute(sql).fetchall()
        n_runs = con.execute("select count(*) from wandb_runs").fetchone()[0]
    assert [tuple(line.split(",")) for line in proc.stdout.splitlines()] == [
        (loc, mt, str(rmse)) for loc, mt, rmse in expected]
    assert len(expected) == sum(map(len, TYPES.values())) == 8
    runs = subprocess.run([str(DUCKDB_CLI), "-readonly", "-csv", "-noheader", str(db), "select count(*) from wandb_runs"],
                          capture_output=True, text=True, timeout=120)
    assert runs.returncode == 0 and int(runs.stdout.strip()) == n_runs > 0, runs.stderr


def test_second_demo_finds_everything_up_to_date(demo):
    """A second `make demo` runs nothing and says so: no experiments rows, MLflow runs or model
    folders pile up (it lands only files whose bytes differ, so the raw zone is unchanged too)."""
    def counts():
        with duckdb.connect(str(demo.home / "snoiq.duckdb"), read_only=True) as con:
            experiments = con.execute("select count(*) from experiments").fetchone()[0]
        with sqlite3.connect(demo.home / "mlflow.db") as con:
            mlflow_runs = con.execute("select count(*) from runs").fetchone()[0]
        folders = sorted(str(p.relative_to(demo.home)) for p in (demo.home / "models").glob("*/*/model_type=*"))
        with demo.instance() as instance:
            runs = instance.get_runs_count()
        return experiments, mlflow_runs, folders, runs

    before = counts()
    first_steps = demo.proc.stdout.count("\n  ok  ")
    proc = run_demo(demo.env, "demo_second.log")
    out = proc.stdout
    assert "\n  ok  " not in out, out
    assert out.count("\n  up to date  ") == first_steps
    assert f"0 steps materialised, {first_steps} up to date" in out
    assert counts() == before


def _evaluate(sensor, instance, resources, defs, cursor=None):
    # As the daemon and the UI's preview evaluate it: with the instance backing dynamic
    # partitions (run requests are validated against them) and the context entered, so the
    # resources it builds are torn down (generator resources need it).
    with dg.partition_loading_context(dynamic_partitions_store=instance), \
            dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor,
                                    repository_def=defs.get_repository_def()) as context:
        return sensor.evaluate_tick(context)


def test_sensors_switched_on_after_the_demo_start_nothing(demo):
    """What the UI's sensor preview shows: no run for any file, feature hour or table the demo
    already processed, after two demos. Then a rewritten station file is picked up (the sensors
    still work)."""
    from snoiq_assets.definitions import defs
    from snoiq_assets.defs.resources import build_resources
    from snoiq_assets.settings import Settings

    resources = build_resources(Settings.from_env({"SNOIQ_HOME": str(demo.home)}))
    processing = ["station_file_landing_sensor", "outcome_landing_sensor", "hrrr_landing_sensor", "model_spec_sensor",
                  "retraining_sensor", "feature_predictions_sensor", "sweep_sensor"]
    with demo.instance() as instance:
        cursors = {}
        for name in processing:
            data = _evaluate(defs.get_sensor_def(name), instance, resources, defs)
            assert data.run_requests == [], (name, [r.run_key for r in data.run_requests])
            cursors[name] = data.cursor
        for name in ("station_file_landing_sensor", "hrrr_landing_sensor"):
            assert cursors[name], name   # the first tick moved the cursor past the demo's files

        # A file rewritten after the demo is new work: exactly its partition is requested.
        raw = demo.home / "raw" / "observations" / "CLE.csv"
        raw.write_bytes(raw.read_bytes())
        data = _evaluate(defs.get_sensor_def("station_file_landing_sensor"), instance, resources, defs,
                         cursor=cursors["station_file_landing_sensor"])
        assert [r.partition_key for r in data.run_requests] == ["CLE"]


def _latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return record.asset_materialization.metadata


@pytest.mark.browser
def test_ui_shows_each_specs_table_models_and_champion(demo, tmp_path):
    """Issue 20, in the UI a user opens after `make demo` (`make dev` on its folder): each of the
    four specs is a partition of training_table, trained_models and champion_model, and its
    partition pages show its own table, its models side by side with a link to its own MLflow
    experiment, and its own registered champion."""
    from playwright.sync_api import expect

    from snoiq_assets_tests.ui.dg_dev import ServerFailed, chromium, dg_dev, ui_tab

    with demo.instance() as instance:
        expected = {spec: {"rows": _latest_metadata(instance, "training_table", spec)["dagster/row_count"].value,
                           "experiment": _latest_metadata(instance, "trained_models", spec)["mlflow_experiment"].value,
                           "best": _latest_metadata(instance, "trained_models", spec)["best_model_type"].value,
                           "registered": _latest_metadata(instance, "champion_model", spec)["registered_model"].value}
                    for spec in SPECS}
    # four specs, four MLflow experiments, four registered models: none shares another's
    assert len({e["experiment"] for e in expected.values()}) == len({e["registered"] for e in expected.values()}) == 4
    shots = REPO / "test-output" / "ui" / "specs"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with dg_dev(REPO, {**demo.env, "PYTHONUNBUFFERED": "1"}, tmp_path / "dg_dev.log") as url, \
                chromium() as browser, ui_tab(browser, url) as page:
            page.goto(f"{url}/assets/trained_models?view=partitions")
            for spec in SPECS:
                expect(page.get_by_text(spec, exact=True).first).to_be_visible()
            for spec, want in expected.items():
                page.goto(f"{url}/assets/training_table?view=partitions&partition={spec}")
                rows = want["rows"]   # the row count, as the UI formats it
                expect(page.get_by_text(re.compile(rf"^({rows:,}|{rows})$")).first).to_be_visible()
                page.goto(f"{url}/assets/trained_models?view=partitions&partition={spec}")
                expect(page.get_by_text("best_model_type", exact=True).first).to_be_visible()
                expect(page.locator(f'a[href="{want["experiment"]}"]').first).to_be_visible()
                expect(page.get_by_text(want["best"], exact=True).first).to_be_visible()
                page.screenshot(path=str(shots / f"trained_models_{spec}.png"))
                page.goto(f"{url}/assets/champion_model?view=partitions&partition={spec}")
                expect(page.get_by_text(want["registered"], exact=True).first).to_be_visible()
                expect(page.locator(f'a[href="{want["experiment"]}"]').first).to_be_visible()
    except ServerFailed as err:
        pytest.fail(str(err))
