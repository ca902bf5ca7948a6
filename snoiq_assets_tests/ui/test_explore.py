"""The analysis app (`make explore`) in a real browser: `marimo run` on a free loopback port over a
SNOIQ_HOME this module writes, driven by Debian's Chromium through Playwright.

DataDecide tables come from the bundled real files through the same library functions the assets
use; the SnoIQ tables (`skill_by_lead`, hourly predictions, station coordinates, experiments) are
a small fixture written here, in the columns the model-spec assets write them.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest

from snoiq_assets.defs.datadecide.demo import history_key
from snoiq_assets.lib.analysis import views
from snoiq_assets.lib.analysis.catalog import Catalog
from snoiq_assets.lib.datadecide import duck
from snoiq_assets.lib.datadecide.decision import decision_accuracy_by_size, eval_values
from snoiq_assets.lib.datadecide.features import early_window_features
from snoiq_assets.lib.datadecide.forecast import grouped_cv
from snoiq_assets.lib.datadecide.hf import EVAL_PREFIX, ingest_eval_results
from snoiq_assets.lib.datadecide.names import recipe_key
from snoiq_assets.lib.datadecide.wandb_io import ingest_history, ingest_runs
from snoiq_assets.lib.models.experiments import SCHEMA as EXPERIMENTS_SCHEMA
from snoiq_assets.lib.storage import LocalStore
from snoiq_assets.settings import Settings
from snoiq_assets_tests.ui.conftest import REPO, keep_copy

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
APP = REPO / "snoiq_assets" / "apps" / "explore.py"
START_LIMIT_S = 120  # wait limits, not assertions on speed
UI_LIMIT_MS = 60_000
SPECS = ("spec_daily_temp", "spec_hourly_snow")
STATIONS = {"94074": (40.8103, -104.7547, "Nunn 7 NNE, CO"), "72698024229": (45.5958, -122.6093, "Portland Intl, OR")}
MODELS = ("xgboost", "lightgbm", "persistence", "climatology", "raw_forecast")


def write_home(home: Path, sample_dir: Path) -> None:
    store = LocalStore(home)
    # DataDecide: the real grid CSV and W&B exports through the assets' own functions
    store.put_file(f"{EVAL_PREFIX}datadecide_grid_olmes10_dev10.csv", sample_dir / "datadecide" / "datadecide_grid_olmes10_dev10.csv")
    ingest_eval_results(store, home / "eval.parquet")
    evals = pl.read_parquet(home / "eval.parquet")
    for path in sorted((sample_dir / "wandb").glob("olmo_wandb_history_*.csv")):
        store.put_file(history_key(path.name), path)
    history = ingest_history(store).long
    runs = ingest_runs(store, history).runs
    features = early_window_features(history, runs, fractions=(0.1, 0.2, 0.3))
    _, predictions = grouped_cv(features, 0.2, models=("elasticnet",))
    predictions = predictions.with_columns(pl.col("recipe").map_elements(recipe_key, return_dtype=pl.String).alias("recipe_key"))
    decision = decision_accuracy_by_size(eval_values(evals), predictions, "elasticnet")
    # SnoIQ: per-lead skill of two specs against their baselines, hourly predictions, stations, runs
    skill = pl.DataFrame([
        {"spec_id": spec, "model": model, "lead_hour": lead, "rmse": (1 + s) * (1 + 0.1 * lead) * (1.4 if model in views.BASELINES else 1.0) + 0.05 * m,
         "mae": 0.8 * (1 + s) * (1 + 0.1 * lead), "bias": 0.1 * (m - 2), "n_rows": 100 + lead}
        for s, spec in enumerate(SPECS) for m, model in enumerate(MODELS) for lead in range(1, 7)
    ])
    t0 = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
    for hour in range(12):
        start = t0 + dt.timedelta(hours=hour)
        frame = pl.DataFrame([
            {"location": sid, "period_start": start, "observed": -5.0 + hour * (1 + i), "prediction": -4.0 + hour * (1 + i) + (i + 1) * 0.5,
             "target": "air_temp_c", "model_type": "xgboost", "model_version": "v1", "mlflow_run_id": "r", "model_prefix": f"models/{sid}/x"}
            for i, sid in enumerate(STATIONS)
        ])
        frame.write_parquet(home / "lake" / "hourly_predictions" / f"{start:%Y-%m-%dT%H}.parquet", mkdir=True)
    pl.DataFrame([{"station_id": sid, "latitude": lat, "longitude": lon, "name": name}
                  for sid, (lat, lon, name) in STATIONS.items()]).write_parquet(home / "lake" / "station_metadata.parquet")
    experiments = pa.Table.from_pylist([
        {"run_id": f"run{i}", "started_at": t0 + dt.timedelta(days=i), "status": "failed" if i == 3 else "success",
         "model_type": ("xgboost", "lightgbm", "random_forest")[i % 3], "location": list(STATIONS)[i % 2],
         "target": "air_temp_c", "rmse": None if i == 3 else 1.0 + 0.1 * i, "error": "ValueError: too few rows" if i == 3 else None}
        for i in range(6)
    ], schema=EXPERIMENTS_SCHEMA)
    with duckdb.connect(str(home / "snoiq.duckdb")) as con:
        duck.write_tables(con, {"hf_eval_results": evals, "wandb_history": history, "early_window_features": features,
                                "final_metric_predictions": predictions, "decision_accuracy_by_size": decision,
                                "skill_by_lead": skill, "experiments": experiments})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    def __init__(self, home: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOIQ_", "AWS_"))}
        env.update(SNOIQ_PROFILE="local", SNOIQ_HOME=str(home), PYTHONUNBUFFERED="1")
        marimo = Path(sys.executable).with_name("marimo")
        self.proc = subprocess.Popen(
            [str(marimo), "run", str(APP), "--host", "127.0.0.1", "--port", str(self.port), "--headless", "--no-token"],
            cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_LIMIT_S
        while True:
            assert self.proc.poll() is None, f"marimo exited:\n{log.read_text()[-3000:]}"
            try:
                urllib.request.urlopen(self.url, timeout=2)
                break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, f"marimo did not answer:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def app_home(tmp_path_factory, sample_dir):
    home = tmp_path_factory.mktemp("explore") / "snoiq_home"
    home.mkdir()
    write_home(home, sample_dir)
    return home


@pytest.fixture(scope="module")
def app(app_home, tmp_path_factory):
    server = App(app_home, tmp_path_factory.mktemp("explore_log") / "marimo.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url: str, charts: int):
    """A new session (marimo runs the notebook afresh for each), once its ``charts`` charts are there."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_LIMIT_MS)
    page.goto(url)
    page.get_by_role("heading", name="Experiments").wait_for()
    from playwright.sync_api import expect

    expect(page.locator(".vega-embed")).to_have_count(charts, timeout=UI_LIMIT_MS)
    return page


def _charts(page) -> list[str]:
    """Every chart's SVG markup, each scrolled into view first (vega draws what is on screen)."""
    charts = page.locator(".vega-embed")
    out = []
    for i in range(charts.count()):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        chart.locator("svg.marks").first.wait_for()
        out.append(chart.locator("svg.marks").first.evaluate("e => e.outerHTML"))
    return out


def _chart_with(page, text: str) -> str:
    charts = page.locator(".vega-embed").filter(has_text=text)
    charts.first.scroll_into_view_if_needed()
    return charts.first.locator("svg.marks").first.evaluate("e => e.outerHTML")


def _select(page, label: str, option: str) -> None:
    select = page.get_by_label(label, exact=True)
    select.scroll_into_view_if_needed()
    select.select_option(label=option)


def _no_error(app: App) -> None:
    """marimo run hides a failing cell's traceback from the page but logs it: none may be there."""
    assert "Traceback" not in app.log.read_text(), app.log.read_text()[-4000:]


def test_views_render_and_selections_update_them(app, browser, tmp_path):
    page = _open(browser, app.url, 8)
    try:
        svgs = _charts(page)
        # decision accuracy, recipe ranks, early curves, forecast error, skill, series, map, experiments
        assert len(svgs) == 8 and all("<path" in s or "<circle" in s or "<rect" in s for s in svgs)
        assert page.locator("marimo-callout-output").count() == 0  # every table was found
        _no_error(app)

        before = _chart_with(page, "spec_daily_temp: rmse by lead time")
        _select(page, "model spec", "spec_hourly_snow")
        page.locator(".vega-embed").filter(has_text="spec_hourly_snow: rmse by lead time").first.wait_for()
        assert _chart_with(page, "spec_hourly_snow: rmse by lead time") != before

        before_series = _chart_with(page, "station 72698024229: forecast vs observed")
        before_map = _chart_with(page, "stations coloured by mean absolute error")
        _select(page, "station", "94074")
        page.locator(".vega-embed").filter(has_text="station 94074: forecast vs observed").first.wait_for()
        assert _chart_with(page, "station 94074: forecast vs observed") != before_series
        assert _chart_with(page, "stations coloured by mean absolute error") != before_map

        before_ranks = _chart_with(page, "DCLM-Baseline: rank at each size")
        _select(page, "highlight recipe", "FineWeb-Pro")
        page.locator(".vega-embed").filter(has_text="FineWeb-Pro: rank at each size").first.wait_for()
        assert _chart_with(page, "FineWeb-Pro: rank at each size") != before_ranks
        _no_error(app)
        shot = tmp_path / "explore.png"
        page.screenshot(path=str(shot), full_page=True)
        keep_copy(shot, "explore")
    finally:
        page.close()


def test_missing_table_is_said_plainly(app, app_home, browser):
    with duckdb.connect(str(app_home / "snoiq.duckdb")) as con:
        con.execute("DROP TABLE skill_by_lead")
    page = _open(browser, app.url, 7)
    try:
        note = page.locator("marimo-callout-output").get_by_text(
            f"is not available yet: table skill_by_lead does not exist yet in {app_home / 'snoiq.duckdb'}")
        note.wait_for()
        assert "skill_by_lead" in note.inner_text()
        assert page.locator("marimo-callout-output").count() == 1
        assert len(_charts(page)) == 7
        _no_error(app)
    finally:
        page.close()


def test_catalog_reads_duckdb_then_lake(app_home):
    catalog = Catalog(Settings.from_env({"SNOIQ_HOME": str(app_home)}))
    assert catalog.table("decision_accuracy_by_size").source.startswith("DuckDB ")
    predictions = catalog.table("hourly_predictions")
    assert predictions.frame.height == 24 and predictions.source.startswith("12 file(s) under ")
    missing = catalog.table("no_such_table")
    assert not missing.found and "table no_such_table does not exist yet" in missing.source and "lake/no_such_table" in missing.source
    errors = views.station_error_frame(predictions.frame, catalog.table("station_metadata").frame)
    assert dict(errors.select("location", "mae").iter_rows()) == pytest.approx({"94074": 1.5, "72698024229": 2.0})
