"""W&B export at scale: projects in parallel, within the API's rate limits, resumable.

It speaks W&B's public GraphQL API (``POST <base>/graphql``, HTTP basic auth ``api:<key>``) with
the two queries an export needs:

- ``Runs``: a project's runs, 50 per page, cursor-paginated, oldest first (config, summary);
- ``HistoryPage``: one run's full history rows for a step range: the query ``wandb``'s
  ``Run.scan_history()`` pages through (``history(minStep, maxStep, samples)`` with ``samples`` at
  least the range, so nothing is sampled), not the sampled ``Run.history()``.

The ``wandb`` client is not used for this: since 0.2x its ``scan_history`` goes through the local
``wandb-core`` service, which hides the HTTP status, so neither a 429 nor a resume point is visible
to the caller.

Rate limits: one shared limiter spaces requests (``requests_per_second`` over all workers);
HTTP 429 and 5xx are retried after ``Retry-After`` when the server sends it, else after an
exponential backoff with jitter, up to ``max_retries``; other 4xx fail at once.

Resume: per project, ``raw/wandb/_state/<entity>/<project>.json`` holds the cursor of the runs page
being worked on and the ids of the runs already written (run record and history, each written
atomically). A run is marked done only after both files are in place, so an interrupted export,
started again, skips what it finished and redoes at most the run it was in.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from snoiq_assets.lib.keys import check_key
from snoiq_assets.lib.storage import ObjectStore

RUNS_PREFIX = "raw/wandb/runs/"
HISTORY_PREFIX = "raw/wandb/history/"
STATE_PREFIX = "raw/wandb/_state/"

RUNS_QUERY = """query Runs($entity: String!, $project: String!, $cursor: String, $perPage: Int!) {
  project(name: $project, entityName: $entity) {
    runs(first: $perPage, after: $cursor, order: "+created_at") {
      edges { node { id name displayName state group tags createdAt config summaryMetrics lastHistoryStep } }
      pageInfo { endCursor hasNextPage }
    }
  }
}"""

HISTORY_QUERY = """query HistoryPage($entity: String!, $project: String!, $run: String!, $minStep: Int64!, $maxStep: Int64!, $pageSize: Int!) {
  project(name: $project, entityName: $entity) {
    run(name: $run) { history(minStep: $minStep, maxStep: $maxStep, samples: $pageSize) }
  }
}"""


class WandbFetchError(RuntimeError):
    """The export cannot go on (auth, rate limit past the retries, bad response); never holds the key."""


@dataclass
class FetchStats:
    runs: int = 0
    skipped_done: int = 0
    history_rows: int = 0
    requests: int = 0
    rate_limited: int = 0
    retried: int = 0
    keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


class RateLimiter:
    """At most ``per_second`` request starts per second across threads (evenly spaced)."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if start > now:
            time.sleep(start - now)


class WandbGraphQL:
    def __init__(self, base_url: str, api_key: str, *, requests_per_second: float = 10.0, max_retries: int = 6,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0, timeout_s: float = 30.0, stats: FetchStats | None = None):
        self.url = base_url.rstrip("/") + "/graphql"
        self.api_key = api_key
        self.auth = "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode()
        self.limiter = RateLimiter(requests_per_second)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.stats = stats or FetchStats()
        self.local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def query(self, query: str, variables: dict) -> dict:
        name = query.split("(", 1)[0].replace("query", "").strip()
        body = {"query": query, "variables": variables, "operationName": name}
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            self.stats.add(requests=1)
            try:
                resp = self._session().post(self.url, json=body, timeout=self.timeout_s,
                                            headers={"Authorization": self.auth, "User-Agent": "snoiq-assets"})
            except requests.RequestException as exc:
                status, reason, retry_after = None, f"{type(exc).__name__}", None
            else:
                if resp.status_code == 200:
                    payload = resp.json()
                    if payload.get("errors"):
                        raise WandbFetchError(self._redact(f"W&B {name} {variables}: {payload['errors'][0].get('message')}"[:500]))
                    return payload["data"]
                status, reason = resp.status_code, resp.reason
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                if status == 429:
                    self.stats.add(rate_limited=1)
                elif status < 500:
                    raise WandbFetchError(self._redact(f"W&B {name} for {variables.get('project')}: HTTP {status} {reason}"))
            if attempt == self.max_retries:
                break
            delay = retry_after if retry_after is not None else min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
            self.stats.add(retried=1)
            time.sleep(delay * (1.0 if retry_after is not None else random.uniform(0.5, 1.0)))
        raise WandbFetchError(self._redact(
            f"W&B {name} for {variables.get('project')}: still {'HTTP ' + str(status) if status else reason} "
            f"after {self.max_retries} retries ({'rate limited' if status == 429 else 'server or network error'})"))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _segment(text: str) -> str:
    import re

    return (re.sub(r"[^A-Za-z0-9_.=+-]", "_", str(text)).strip(".") or "_")[:200]


def _load_state(store: ObjectStore, key: str) -> dict:
    if not store.exists(key):
        return {"cursor": None, "done": []}
    return json.loads(store.get(key))


def _json_field(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _config_values(config) -> dict:
    """W&B stores config as ``{key: {"value": v, "desc": ...}}``; keep the values."""
    config = _json_field(config) or {}
    return {k: (v.get("value") if isinstance(v, dict) and "value" in v else v) for k, v in config.items()}


def export_project(client: WandbGraphQL, store: ObjectStore, entity: str, project: str, *,
                   page_steps: int = 1000, max_runs: int | None = None) -> None:
    stats = client.stats
    pseg = _segment(project)
    state_key = check_key(f"{STATE_PREFIX}{_segment(entity)}/{pseg}.json")
    state = _load_state(store, state_key)
    done = set(state["done"])
    seen = len(done)
    while True:
        data = client.query(RUNS_QUERY, {"entity": entity, "project": project, "cursor": state["cursor"], "perPage": 50})
        runs = ((data.get("project") or {}).get("runs")) or {}
        if not data.get("project"):
            raise WandbFetchError(f"W&B project {entity}/{project} not found")
        for edge in runs.get("edges", []):
            node = edge["node"]
            if node["name"] in done:
                stats.add(skipped_done=1)
                continue
            if max_runs is not None and seen >= max_runs:
                return
            _export_run(client, store, entity, project, node, page_steps)
            done.add(node["name"])
            seen += 1
            state["done"] = sorted(done)
            store.put(state_key, json.dumps(state).encode())
        info = runs.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            return
        state["cursor"] = info.get("endCursor")
        store.put(state_key, json.dumps(state).encode())


def _export_run(client: WandbGraphQL, store: ObjectStore, entity: str, project: str, node: dict, page_steps: int) -> None:
    run_id = node["name"]  # W&B's run "name" is the id; displayName is what people call it
    rid, pseg = _segment(run_id), _segment(project)
    hkey = check_key(f"{HISTORY_PREFIX}{pseg}/{rid}.jsonl")
    last = node.get("lastHistoryStep")
    rows = 0
    with store.atomic_local_file(hkey) as path, open(path, "w") as fh:
        lo = 0
        while last is not None and lo <= last:
            hi = lo + page_steps
            data = client.query(HISTORY_QUERY, {"entity": entity, "project": project, "run": run_id,
                                                "minStep": lo, "maxStep": hi, "pageSize": page_steps})
            for raw in (((data.get("project") or {}).get("run") or {}).get("history")) or []:
                row = _json_field(raw)
                fh.write(json.dumps({"_run_id": run_id, "_run_name": node.get("displayName"), **row}, default=str) + "\n")
                rows += 1
            lo = hi
    record = {
        "id": run_id, "name": node.get("displayName") or run_id, "project": project, "entity": entity,
        "state": node.get("state"), "group": node.get("group"), "tags": node.get("tags") or [],
        "created_at": node.get("createdAt"), "config": _config_values(node.get("config")),
        "summary": _json_field(node.get("summaryMetrics")) or {},
    }
    key = check_key(f"{RUNS_PREFIX}{pseg}/{rid}.jsonl")
    store.put(key, (json.dumps(record, default=str) + "\n").encode())
    client.stats.add(runs=1, history_rows=rows)
    with client.stats.lock:
        client.stats.keys.extend([key, hkey])


def export_projects(store: ObjectStore, entity: str, projects: list[str], *, base_url: str, api_key: str,
                    parallel: int = 4, requests_per_second: float = 10.0, max_retries: int = 6, backoff_s: float = 1.0,
                    page_steps: int = 1000, max_runs: int | None = None, timeout_s: float = 30.0) -> FetchStats:
    """Export every project (``parallel`` at a time, one shared rate limit); resumable."""
    client = WandbGraphQL(base_url, api_key, requests_per_second=requests_per_second, max_retries=max_retries,
                          backoff_s=backoff_s, timeout_s=timeout_s)
    errors = []
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="wandb-export") as pool:
        futures = {p: pool.submit(export_project, client, store, entity, p, page_steps=page_steps, max_runs=max_runs)
                   for p in projects}
        for project, fut in futures.items():
            try:
                fut.result()
            except WandbFetchError as exc:
                errors.append(f"{project}: {exc}")
    if errors:
        raise WandbFetchError(client._redact(
            f"{len(errors)} of {len(projects)} project(s) stopped (re-run to resume; {client.stats.runs} run(s) written "
            f"this time): " + "; ".join(errors))[:1500])
    return client.stats
