"""Benchmark: W&B run ingestion time against the number of summary keys (it must grow linearly).

Three run records with N summary keys each (a seventh of them text, as W&B metrics logged as
strings are), at N = 3,000, 6,000 and 12,000; ``ingest_runs`` timed best of two. A linear
ingest doubles its time when N doubles (ratio about 2); the quadratic one this replaced took
16 s at 6,000 keys and did not finish 50,000 in 10 minutes. Results: benchmarks/results/wandb_runs.json.

    .venv/bin/python benchmarks/bench_wandb_runs.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, write_results  # noqa: E402

from snoiq_assets.lib.datadecide.wandb_io import ingest_runs  # noqa: E402
from snoiq_assets.lib.storage import LocalStore  # noqa: E402

KEYS = (3_000, 6_000, 12_000)


def landed_store(root: Path, keys: int) -> LocalStore:
    store = LocalStore(root)
    records = [{"id": f"r{i}", "name": f"c4-4M-5xC-{i}", "project": "p", "config": {"lr": 0.1 * (i + 1)},
                "summary": {f"eval/task{k}/acc": (k * 0.001 + i) if k % 7 else f"text {k}" for k in range(keys)}}
               for i in range(3)]
    store.put("raw/wandb/runs/p/runs.jsonl", ("\n".join(json.dumps(r) for r in records) + "\n").encode())
    return store


def main() -> None:
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in KEYS:
            store = landed_store(Path(tmp) / str(n), n)
            seconds[n] = best_of(lambda: ingest_runs(store), repeat=2)
            print(f"{n:>6} summary keys: {seconds[n]:.2f} s")
    ratios = {f"{b}/{a}": round(seconds[b] / seconds[a], 2) for a, b in zip(KEYS, KEYS[1:])}
    print("time ratio per doubling of keys:", ratios, "(linear: about 2; quadratic: about 4)")
    write_results("wandb_runs", {"seconds": {str(k): round(v, 3) for k, v in seconds.items()}, "ratio_per_doubling": ratios})


if __name__ == "__main__":
    main()
