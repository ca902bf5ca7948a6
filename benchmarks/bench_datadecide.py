"""Benchmark: streamed JSONL -> Parquet (with rejects) vs pandas read_json + to_parquet.

The input is built by repeating the real OLMo W&B history rows (data/sample/wandb/*.csv) as JSON
lines, with a step offset per repeat, up to the target size (default 1 GB; ``--size-mb`` or
``BENCH_DATADECIDE_MB`` for quick runs). Each side runs in its own subprocess; peak memory is the
maximum RSS sampled with psutil. Results: stdout and benchmarks/results/datadecide.json.

    .venv/bin/python benchmarks/bench_datadecide.py --size-mb 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def build_input(path: Path, size_mb: float) -> int:
    import polars as pl

    rows = []
    for f in sorted((REPO / "data" / "sample" / "wandb").glob("*.csv")):
        project, run = f.stem.replace("olmo_wandb_history_", "").rsplit("_", 1)
        for rec in pl.read_csv(f, infer_schema_length=None).to_dicts():
            rows.append({"_project": project, "_run": run, **{k: v for k, v in rec.items() if v is not None}})
    target = int(size_mb * (1 << 20))
    written = lines = 0
    with open(path, "w") as fh:
        rep = 0
        while written < target:
            for rec in rows:
                rec = dict(rec, _repeat=rep)
                line = json.dumps(rec) + "\n"
                fh.write(line)
                written += len(line)
                lines += 1
                if written >= target:
                    break
            rep += 1
    return lines


OURS = """
import sys
from pathlib import Path
from snoiq_assets.lib.datadecide.jsonl import stream_jsonl_to_parquet
r = stream_jsonl_to_parquet(Path(sys.argv[1]), Path(sys.argv[2]))
print(r.rows, len(r.rejects))
"""
PANDAS = """
import sys
import pandas as pd
df = pd.read_json(sys.argv[1], lines=True)
df.to_parquet(sys.argv[2], compression="zstd")
print(len(df), 0)
"""


def run(code: str, src: Path, dest: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([PY, "-c", code, str(src), str(dest)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"ok": False, "error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}", "seconds": elapsed, "peak_rss_mb": peak / 2**20}
    rows, rejects = (int(x) for x in out.split())
    return {"ok": True, "rows": rows, "rejects": rejects, "seconds": round(elapsed, 2), "peak_rss_mb": round(peak / 2**20, 1),
            "parquet_mb": round(dest.stat().st_size / 2**20, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=float, default=float(os.environ.get("BENCH_DATADECIDE_MB", 1024)))
    ap.add_argument("--skip-pandas", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dd-") as tmp:
        src = Path(tmp) / "export.jsonl"
        lines = build_input(src, args.size_mb)
        size_mb = src.stat().st_size / 2**20
        print(f"input: {size_mb:.0f} MB, {lines} lines (real OLMo W&B history rows repeated)")
        ours = run(OURS, src, Path(tmp) / "ours.parquet")
        print(f"streamed (polars chunks): {ours}")
        base = None
        if not args.skip_pandas:
            base = run(PANDAS, src, Path(tmp) / "pandas.parquet")
            print(f"pandas read_json+to_parquet: {base}")
    result = {"input_mb": round(size_mb, 1), "lines": lines, "streamed": ours, "pandas": base}
    if base and base.get("ok") and ours.get("ok"):
        result["speedup"] = round(base["seconds"] / ours["seconds"], 2)
        result["memory_ratio"] = round(base["peak_rss_mb"] / ours["peak_rss_mb"], 2)
        print(f"speedup x{result['speedup']}, pandas uses x{result['memory_ratio']} the memory")
    result["target_peak_under_1gb"] = bool(ours.get("ok") and ours["peak_rss_mb"] < 1024)
    out = REPO / "benchmarks" / "results" / "datadecide.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
