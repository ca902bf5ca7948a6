"""A local HTTP server answering the two W&B GraphQL calls the exporter makes (``Runs``,
``HistoryPage``), for tests: the real W&B service cannot run offline.

Run as a process: ``python wandb_api_server.py PORT DATA.json LOG.jsonl [options]``. It answers
on 127.0.0.1 over real HTTP: basic auth (``api:<key>``, else 401), cursor pagination capped at
``--max-page`` runs, history rows by step range, real ``429 Too Many Requests`` with a
``Retry-After`` header on every ``--throttle-every``-th request, and ``503`` for everything after
``--fail-after`` answered requests (an outage). Every request is logged as one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    # A pytest worker that ran Dagster code maps SIGTERM onto SIGINT's handler, which is "ignore"
    # when the suite runs from a non-interactive shell; this process would inherit that.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("data")
    ap.add_argument("log")
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--max-page", type=int, default=2)
    ap.add_argument("--throttle-every", type=int, default=0)
    ap.add_argument("--retry-after", default="0.02")
    ap.add_argument("--fail-after", type=int, default=0)
    # Seconds each answer takes (outside the lock, as the network and W&B's servers would): a
    # test that needs two clients in flight at once does not then depend on thread start-up
    # beating a few loopback round trips of ~1 ms on a loaded machine.
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    with open(args.data) as fh:
        data = json.load(fh)  # {entity: {project: [{node fields..., "history": [rows]}]}}
    expected_auth = "Basic " + base64.b64encode(f"api:{args.api_key}".encode()).decode()
    lock = threading.Lock()
    counters = {"requests": 0, "answered": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # the JSON log below is the record
            pass

        def _send(self, status: int, body: dict | None, headers: dict | None = None) -> None:
            raw = json.dumps(body or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self):  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            op, var = body.get("operationName"), body.get("variables") or {}
            with lock:
                counters["requests"] += 1
                n = counters["requests"]
                outage = args.fail_after and counters["answered"] >= args.fail_after
                throttled = not outage and args.throttle_every and n % args.throttle_every == 0
                if self.path != "/graphql":
                    status = 404
                elif self.headers.get("Authorization") != expected_auth:
                    status = 401
                elif outage:
                    status = 503
                elif throttled:
                    status = 429
                else:
                    status = 200
                    counters["answered"] += 1
                with open(args.log, "a") as log:
                    log.write(json.dumps({"n": n, "op": op, "project": var.get("project"), "run": var.get("run"),
                                          "minStep": var.get("minStep"), "status": status}) + "\n")
            if args.latency:
                time.sleep(args.latency)
            if status == 429:
                return self._send(429, {"errors": [{"message": "rate limit exceeded"}]}, {"Retry-After": args.retry_after})
            if status != 200:
                return self._send(status, {"errors": [{"message": f"HTTP {status}"}]})
            project = data.get(var.get("entity"), {}).get(var.get("project"))
            if project is None:
                return self._send(200, {"data": {"project": None}})
            if op == "Runs":
                start = int(var["cursor"]) if var.get("cursor") else 0
                page = project[start: start + min(int(var["perPage"]), args.max_page)]
                end = start + len(page)
                nodes = [{k: v for k, v in run.items() if k != "history"} for run in page]
                return self._send(200, {"data": {"project": {"runs": {
                    "edges": [{"node": node} for node in nodes],
                    "pageInfo": {"endCursor": str(end), "hasNextPage": end < len(project)}}}}})
            if op == "HistoryPage":
                run = next((r for r in project if r["name"] == var["run"]), None)
                if run is None:
                    return self._send(200, {"data": {"project": {"run": None}}})
                rows = [r for r in run["history"] if var["minStep"] <= r["_step"] < var["maxStep"]]
                if len(rows) > var["pageSize"]:  # what sampled history would do
                    stride = len(rows) / var["pageSize"]
                    rows = [rows[int(i * stride)] for i in range(var["pageSize"])]
                return self._send(200, {"data": {"project": {"run": {"history": [json.dumps(r) for r in rows]}}}})
            return self._send(200, {"errors": [{"message": f"unknown operation {op!r}"}]})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
