"""The Dagster UI in a real browser: `dg dev` (webserver + daemon) on the real code location,
driven by Debian's Chromium through Playwright.

One server for the module (about 15-60 s to start on two busy cores); its SNOIQ_HOME also holds
the synthetic HRRR hours 2023-01-01T00..T02 for the backfill test. Screenshots go to the
module's tmp dir and are copied to ``test-output/ui/browser/`` in the repo (gitignored).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.execution.backfill import BulkActionStatus

from snoiq_assets.defs.hrrr.demo import SYNTH_PARTITIONS
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets_tests.ui.conftest import REPO, STATION, Homes, keep_copy, make_homes
from snoiq_assets_tests.ui.dg_dev import ServerFailed, dg_dev, log_tail, ui_tab

pytestmark = pytest.mark.browser

RUN_LIMIT_MS = 300_000   # wait limits, not assertions on speed
BACKFILL_LIMIT_S = 600
HRRR_RANGE = SYNTH_PARTITIONS   # 2023-01-01T00..T02, landed before the server starts
BACKFILL_DONE = {BulkActionStatus.COMPLETED, BulkActionStatus.COMPLETED_SUCCESS,
                 BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILED, BulkActionStatus.CANCELED}


class Server:
    def __init__(self, homes: Homes, url: str, log: Path, shots: Path):
        self.homes, self.url, self.log, self.shots = homes, url, log, shots

    def screenshot(self, page, name: str) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        keep_copy(path, "browser")
        return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("ui_browser")
    homes = make_homes(base, hrrr_partitions=HRRR_RANGE)
    shots = base / "screenshots"
    shots.mkdir()
    log = base / "dagster_dev.log"
    try:
        with dg_dev(REPO, homes.env(), log) as url:   # `make dev` runs `dg dev`, as the README says
            yield Server(homes, url, log, shots)
    except ServerFailed as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def page(server, browser):
    with ui_tab(browser, server.url) as pg:
        yield pg


def expected_groups() -> set[str]:
    """Every asset group of the code location, read from the Definitions themselves."""
    from snoiq_assets.definitions import defs

    groups = {node.group_name for node in defs.resolve_asset_graph().asset_nodes}
    assert groups, "the Definitions have no assets"
    return groups


def test_asset_graph_shows_every_group(server, page):
    from playwright.sync_api import expect

    groups = expected_groups()
    page.goto(server.url + "/asset-groups")
    graph = page.locator("svg foreignObject")   # the graph's nodes (group boxes when collapsed)
    expect(graph.first).to_be_visible()
    for group in sorted(groups):
        expect(graph.get_by_text(group, exact=True).first).to_be_visible()
    expect(page.get_by_text("(fetching statuses)")).to_have_count(0)
    server.screenshot(page, "01_asset_graph")


def test_materialise_one_partition_from_the_ui(server, page):
    from playwright.sync_api import expect

    homes = server.homes
    with homes.instance() as instance:
        assert STATION in instance.get_dynamic_partitions("station_files")
        assert instance.get_runs_count() == 0

    page.goto(server.url + "/assets/observations_raw")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize observations_raw")
    expect(dialog).to_be_visible()
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill(STATION)
    page.get_by_text(STATION, exact=True).first.click()
    dialog.get_by_text("Launch runs to materialize observations_raw").click()   # close the picker
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    server.screenshot(page, "02_materialize_dialog")
    launch.click()

    # The UI's toast links to the run it launched.
    view = page.locator("a[href*='/runs/']").filter(has_text="View")
    expect(view).to_be_visible()
    run_id = view.get_attribute("href").rstrip("/").rsplit("/", 1)[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", run_id), run_id
    server.screenshot(page, "03_launched_toast")

    # Follow the run in the UI until it ends (the daemon dequeues it, a subprocess runs it).
    page.goto(f"{server.url}/runs/{run_id}")
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    status.wait_for(state="visible", timeout=RUN_LIMIT_MS)
    final = status.inner_text().strip()
    expect(page.get_by_text(f"partition: {STATION}", exact=True)).to_be_visible()
    server.screenshot(page, "04_run_finished")
    assert final == "Success", f"run {run_id} ended {final}:\n{log_tail(server.log)}"

    # The instance agrees, and the output is in the lake.
    with homes.instance() as instance:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags.get("dagster/partition") == STATION
        assert run.asset_selection == {dg.AssetKey("observations_raw")}
        assert instance.get_runs_count() == 1
        mats = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("observations_raw"), asset_partitions=[STATION]), limit=5
        ).records
        assert [m.run_id for m in mats] == [run_id]
    raw = pl.read_parquet(homes.snoiq_home / "lake" / "observations_raw" / f"{STATION}.parquet")
    source = (REPO / "data" / "sample" / "uscrn" / "CRNH0203-2023-CO_Nunn_7_NNE.head48.txt").read_text()
    assert raw.height == len(source.splitlines())
    assert raw["parse_error"].is_null().all()

    # The asset page now shows the materialised partition.
    page.goto(server.url + "/assets/observations_raw?view=partitions")
    n_missing = len(homes.instance_partitions()) - 1
    expect(page.get_by_text("Materialized (1)", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Missing ({n_missing})", exact=True)).to_be_visible()
    server.screenshot(page, "05_asset_partitions")


def _wait_for_backfill(server: Server) -> str:
    """Poll the instance until the one backfill ends and none of its runs is still going."""
    deadline = time.monotonic() + BACKFILL_LIMIT_S
    seen = "no backfill yet"
    while True:
        with server.homes.instance() as instance:
            backfills = instance.get_backfills()
            if len(backfills) > 1:
                pytest.fail(f"expected one backfill, found {[b.backfill_id for b in backfills]}")
            if backfills:
                bf = backfills[0]
                runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": bf.backfill_id}))
                seen = f"backfill {bf.backfill_id} {bf.status.value}, runs {[r.status.value for r in runs]}"
                if bf.status in BACKFILL_DONE and all(r.is_finished for r in runs):
                    return bf.backfill_id
        if time.monotonic() > deadline:
            pytest.fail(f"the backfill did not end in {BACKFILL_LIMIT_S} s ({seen}):\n{log_tail(server.log)}")
        time.sleep(2)


def test_backfill_hourly_range_from_the_ui(server, page):
    """Issue 7: a range of hourly partitions of hrrr_raw backfilled from the Materialize dialog
    runs as ONE run (single-run backfill policy), launched by the daemon, and lands exactly them."""
    from playwright.sync_api import expect

    homes = server.homes
    first, last = HRRR_RANGE[0], HRRR_RANGE[-1]
    hrrr_raw = dg.AssetKey("hrrr_raw")
    with homes.instance() as instance:
        assert instance.get_backfills() == []
        assert instance.get_materialized_partitions(hrrr_raw) == set()

    page.goto(server.url + "/assets/hrrr_raw")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize hrrr_raw")
    expect(dialog).to_be_visible()
    # The picker opens on the last 90 days of the hourly partitions; 2023 is older than that.
    dialog.get_by_text("Show all partitions").click()
    expect(dialog.get_by_text("All time", exact=True)).to_be_visible()
    keys = dialog.get_by_placeholder(re.compile(r"^ex: "))
    keys.fill(f"[{first}...{last}]")
    keys.press("Enter")
    expect(dialog.get_by_text(f"{len(HRRR_RANGE)} partitions", exact=True)).to_be_visible()
    expect(dialog.get_by_text("Backfills all partitions in a single run.")).to_be_visible()
    launch = dialog.get_by_role("button", name="Launch backfill")
    expect(launch).to_be_enabled()
    server.screenshot(page, "06_backfill_dialog")
    launch.click()
    expect(dialog).to_have_count(0)
    # The UI's toast names the backfill it created and links to it.
    toast = page.get_by_text(re.compile(r"^Created backfill \w+")).first
    expect(toast).to_be_visible()
    toast_text = toast.inner_text()
    server.screenshot(page, "07_backfill_launched")

    backfill_id = _wait_for_backfill(server)
    assert backfill_id in toast_text, f"the toast said {toast_text!r}, the instance has backfill {backfill_id}"

    with homes.instance() as instance:
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        run_report = [(r.run_id, r.status.value, r.tags.get("dagster/asset_partition_range_start"),
                       r.tags.get("dagster/asset_partition_range_end")) for r in runs]
        assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, (
            f"backfill {backfill_id} ended {backfill.status.value} (error: {backfill.error}); runs {run_report}:\n"
            f"{log_tail(server.log)}")
        assert backfill.is_asset_backfill and backfill.asset_selection == [hrrr_raw]
        assert len(runs) == 1, f"single-run backfill policy, but the backfill launched {run_report}"
        run = runs[0]
        assert run.status == dg.DagsterRunStatus.SUCCESS, f"{run_report}:\n{log_tail(server.log)}"
        assert run.asset_selection == {hrrr_raw}
        assert run.tags["dagster/asset_partition_range_start"] == first
        assert run.tags["dagster/asset_partition_range_end"] == last
        assert "dagster/partition" not in run.tags
        assert instance.get_materialized_partitions(hrrr_raw) == set(HRRR_RANGE)
        mats = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=hrrr_raw), limit=10).records
        assert sorted(m.partition_key for m in mats) == sorted(HRRR_RANGE)
        assert {m.run_id for m in mats} == {run.run_id}
    for pk in HRRR_RANGE:
        key = landing_key(dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=dt.timezone.utc), 0)
        assert homes.store.exists(key) and homes.store.exists(key + ".idx"), key
        assert homes.store.stat(key).size > 0, key

    # The UI shows the finished backfill and the three materialised partitions.
    page.goto(f"{server.url}/runs/b/{backfill_id}")
    expect(page.get_by_text(backfill_id).first).to_be_visible()
    expect(page.get_by_text(f"{first}...{last}", exact=True)).to_be_visible()   # partition selection
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    expect(page.get_by_text("100% completed", exact=True)).to_be_visible()
    server.screenshot(page, "08_backfill_page")
    page.goto(server.url + "/assets/hrrr_raw?view=partitions")
    expect(page.get_by_text(f"Materialized ({len(HRRR_RANGE)})", exact=True)).to_be_visible()
    page.get_by_placeholder("Filter by name").fill(first[:-1])   # the ten hours 2023-01-01T00..T09
    for pk in HRRR_RANGE:
        expect(page.get_by_text(pk, exact=True).first).to_be_visible()
    server.screenshot(page, "09_hrrr_raw_partitions")


def test_predictions_description_shows_its_path(server, page):
    """Issue 17: the description's `predictions/<start>_to_<end>/...` renders as written (it
    used to render as an empty italic: the Markdown renderer ate `<start>` as an HTML tag)."""
    from playwright.sync_api import expect

    page.goto(server.url + "/assets/predictions")
    path = page.locator("code").filter(has_text="predictions/<start>_to_<end>/predictions.parquet")
    expect(path.first).to_be_visible()
    server.screenshot(page, "10_predictions_description")


def test_two_leads_of_one_cycle_coexist(server, page):
    """Issue 13: f00 and f01 of one cycle decoded by the CLI with a lead subset (run config) are
    two stored units; the UI's partition view lists both lead files of the cycle."""
    from playwright.sync_api import expect

    from snoiq_assets.lib.hrrr.decode import idx_text, scan_grib
    from snoiq_assets.lib.hrrr.synth import write_hrrr_hour
    from snoiq_assets.lib.lake import lead_object_key

    homes = server.homes
    pk = HRRR_RANGE[0]
    run = dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=dt.timezone.utc)
    f01 = write_hrrr_hour(homes.snoiq_home / "f01.grib2", run, 1, packing="grid_ccsds")
    homes.store.put_file(landing_key(run, 1), f01)
    homes.store.put(landing_key(run, 1) + ".idx", idx_text(scan_grib(f01)).encode())
    dagster = Path(sys.executable).parent / "dagster"
    config = ('{"ops": {"hrrr_raw": {"config": {"leads": [0, 1]}}, '
              '"hrrr_fields": {"config": {"leads": [0, 1], "engine": "eccodes"}}}}')
    for select, extra in (("hrrr_grid", []), ("hrrr_raw,hrrr_fields", ["--partition", pk, "--config-json", config])):
        done = subprocess.run([str(dagster), "asset", "materialize", "-m", "snoiq_assets.definitions", "--select", select, *extra],
                              cwd=REPO, env=homes.env(), capture_output=True, text=True, timeout=RUN_LIMIT_MS / 1000)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for fh in (0, 1):
        assert homes.store.exists(lead_object_key("hrrr_fields", pk, fh)), fh
    with homes.instance() as instance:
        mat = instance.get_latest_materialization_event(dg.AssetKey("hrrr_fields")).asset_materialization
        assert mat.partition == pk and mat.metadata["lead_count"].value == 2

    page.goto(f"{server.url}/assets/hrrr_fields?view=partitions&partition={pk}")
    for fh in (0, 1):
        expect(page.get_by_text(f"lead f{fh:02d}", exact=True).first).to_be_visible()
        expect(page.get_by_text(re.compile(rf"hrrr_fields/{pk}/f{fh:02d}\.parquet$")).first).to_be_visible()
    server.screenshot(page, "11_two_leads_of_one_cycle")
