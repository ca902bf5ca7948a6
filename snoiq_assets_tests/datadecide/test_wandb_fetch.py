"""The W&B exporter against a real HTTP server on loopback that answers like W&B's GraphQL API:
full history scans, projects in parallel, real 429s retried, and an interrupted export resumed.
The runs and their history are the bundled real OLMo ladder exports."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from snoiq_assets.lib.datadecide.wandb_fetch import STATE_PREFIX, export_projects
from snoiq_assets.lib.datadecide.wandb_io import WandbUnavailable, export_wandb, ingest_history, ingest_runs
from snoiq_assets.lib.storage import LocalStore
from snoiq_assets_tests.s3server import stop_process_group

SERVER = Path(__file__).with_name("wandb_api_server.py")
KEY = "wandb-test-key-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ENTITY = "ai2-llm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_id(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:8]


@pytest.fixture(scope="module")
def api_data(sample_dir, tmp_path_factory) -> tuple[Path, dict]:
    """{project: {run name: history frame}} from the real CSVs, and the server's data file."""
    projects: dict[str, list] = {}
    frames: dict[str, dict[str, pl.DataFrame]] = {}
    for path in sorted((sample_dir / "wandb").glob("olmo_wandb_history_*.csv")):
        project, name = path.stem.removeprefix("olmo_wandb_history_").rsplit("_", 1)
        df = pl.read_csv(path, infer_schema_length=None)
        if "_step" not in df.columns:  # the token-indexed exports have no step: number the rows
            df = df.with_row_index("_step").with_columns(pl.col("_step").cast(pl.Int64))
        df = df.sort("_step")
        frames.setdefault(project, {})[name] = df
        projects.setdefault(project, []).append({
            "id": f"UnVuOnYx{_run_id(name)}", "name": _run_id(project + name), "displayName": name, "state": "finished",
            "group": None, "tags": ["ladder"], "createdAt": "2024-11-20T00:00:00",
            "config": json.dumps({"model_size": {"value": name.split("-")[0], "desc": None}}),
            "summaryMetrics": json.dumps({k: v for k, v in df.row(-1, named=True).items() if v is not None}),
            "lastHistoryStep": int(df["_step"].max()),
            "history": [{k: v for k, v in r.items() if v is not None} for r in df.iter_rows(named=True)],
        })
    data_file = tmp_path_factory.mktemp("wandb_api") / "data.json"
    data_file.write_text(json.dumps({ENTITY: projects}))
    return data_file, frames


class ApiServer:
    def __init__(self, tmp: Path, data_file: Path, *extra: str):
        self.port = _free_port()
        self.log = tmp / f"log-{self.port}.jsonl"
        # Its own process group, so stop() can SIGKILL it should SIGTERM not end it in time.
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(self.port), str(data_file), str(self.log),
                                      "--api-key", KEY, *extra], stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def stop(self) -> None:
        stop_process_group(self.proc, term_wait_s=10, kill_wait_s=10)
        self.proc.stdout.close()


@pytest.fixture
def start_server(tmp_path, api_data):
    started = []

    def start(*extra: str) -> ApiServer:
        started.append(ApiServer(tmp_path, api_data[0], *extra))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def _exported_history(store: LocalStore, project: str, run_id: str) -> list[dict]:
    return [json.loads(line) for line in store.get(f"raw/wandb/history/{project}/{run_id}.jsonl").decode().splitlines()]


def test_full_history_parallel_projects_and_429s(tmp_path, start_server, api_data):
    _, frames = api_data
    # 50 ms per answer: the smaller project's 3 requests take 150 ms or more, so the other's
    # first comes while they are in flight (without latency it once came after them, under load)
    server = start_server("--throttle-every", "4", "--max-page", "2", "--latency", "0.05")
    store = LocalStore(tmp_path / "home")
    stats = export_projects(store, ENTITY, sorted(frames), base_url=server.url, api_key=KEY, parallel=2,
                            requests_per_second=200, backoff_s=0.01, page_steps=2000)
    log = server.requests()
    assert stats.runs == 5 and stats.skipped_done == 0
    # real 429s came back and were retried: every throttled request was followed by a good one
    throttled = [r for r in log if r["status"] == 429]
    assert len(throttled) == stats.rate_limited == len(log) // 4 and stats.rate_limited > 0
    assert stats.requests == len(log)
    # both projects were in flight at once: one's first request comes before the other's last
    first = {p: min(r["n"] for r in log if r["project"] == p) for p in frames}
    last = {p: max(r["n"] for r in log if r["project"] == p) for p in frames}
    assert max(first.values()) < min(last.values())
    # every history row of every run, none sampled: page by page over the steps (2,000 per page)
    for project, runs in frames.items():
        for name, df in runs.items():
            rows = _exported_history(store, project, _run_id(project + name))
            assert [r["_step"] for r in rows] == df["_step"].to_list()
            for column in ("eval/c4_en-validation/CrossEntropyLoss", "eval/downstream/hellaswag_len_norm"):
                if column in df.columns:
                    assert [r.get(column) for r in rows] == df[column].to_list()
    pages = [r for r in log if r["op"] == "HistoryPage" and r["status"] == 200 and r["project"] == "peteish-moreeval"]
    assert len({(r["run"], r["minStep"]) for r in pages}) > 3
    # what landed is what the ingest reads: runs with their config and summary
    runs = ingest_runs(store).runs
    assert runs.height == 5 and set(runs["run_name"]) == {n for r in frames.values() for n in r}
    assert set(runs["config.model_size"].drop_nulls()) == {"190M", "370M", "760M", "7B"}
    hist = ingest_history(store)
    assert hist.long.select("project", "run_id").n_unique() == 5 and hist.rejects.height == 0


def test_interrupted_export_resumes(tmp_path, start_server, api_data):
    _, frames = api_data
    store = LocalStore(tmp_path / "home")
    outage = start_server("--fail-after", "9", "--max-page", "2")
    with pytest.raises(WandbUnavailable) as info:
        export_wandb(store, ENTITY, sorted(frames), api_key=KEY, base_url=outage.url, parallel=1,
                     requests_per_second=200, max_retries=2, backoff_s=0.01)
    message = str(info.value)
    assert "re-run to resume" in message and "HTTP 503 after 2 retries" in message and KEY not in message
    first_pass = {r["run"] for r in outage.requests() if r["op"] == "HistoryPage" and r["status"] == 200}
    done = {p: json.loads(store.get(f"{STATE_PREFIX}{ENTITY}/{p}.json"))["done"] for p in frames
            if store.exists(f"{STATE_PREFIX}{ENTITY}/{p}.json")}
    finished = {run for runs in done.values() for run in runs}
    assert 0 < len(finished) < 5
    outage.stop()

    server = start_server("--max-page", "2")
    stats = export_wandb(store, ENTITY, sorted(frames), api_key=KEY, base_url=server.url, parallel=2,
                         requests_per_second=200, backoff_s=0.01)
    assert stats.skipped_done == len(finished) and stats.runs == 5 - len(finished)
    second_pass = {r["run"] for r in server.requests() if r["op"] == "HistoryPage"}
    assert not second_pass & finished                   # nothing finished is fetched again
    assert first_pass - finished <= second_pass         # the run cut short is redone whole
    for project, runs in frames.items():
        for name, df in runs.items():
            assert [r["_step"] for r in _exported_history(store, project, _run_id(project + name))] == df["_step"].to_list()


def test_bad_key_fails_at_once_without_the_key(tmp_path, start_server):
    server = start_server()
    wrong = "wandb-wrong-key-00112233445566778899aabbccddeeff"
    with pytest.raises(WandbUnavailable) as info:
        export_wandb(LocalStore(tmp_path), ENTITY, ["peteish-moreeval"], api_key=wrong, base_url=server.url, backoff_s=0.01)
    assert "HTTP 401" in str(info.value) and wrong not in str(info.value)
    assert [r["status"] for r in server.requests()] == [401]
