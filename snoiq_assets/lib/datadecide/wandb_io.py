"""W&B runs and history: export through the public API into the raw zone, and ingest what landed.

Export (``export_wandb``, see ``wandb_fetch``) writes one file per run:
``raw/wandb/runs/<project>/<run_id>.jsonl`` (one record: id, name, project, entity, state,
created_at, tags, group, config, summary) and ``raw/wandb/history/<project>/<run_id>.jsonl``
(every history row, scanned page by page, never sampled). The API key never appears in a message.

Ingest reads every landed file, whether fetched or copied in: JSONL through the streaming
converter (malformed lines -> rejects), CSV exports (OLMo's ``download_wandb_logs``) with Polars.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import polars as pl

from snoiq_assets.lib.datadecide.jsonl import flatten_structs, reject, rejects_frame, stream_jsonl_files
from snoiq_assets.lib.datadecide.names import PARSED_FIELDS, parse_run_name
from snoiq_assets.lib.datadecide.wandb_fetch import HISTORY_PREFIX, RUNS_PREFIX, FetchStats, WandbFetchError, export_projects
from snoiq_assets.lib.storage import ObjectStore

DEFAULT_BASE_URL = "https://api.wandb.ai"
STEP_COLUMNS = ("_step", "step")
TOKEN_COLUMNS = ("throughput/total_tokens", "tokens")
META_COLUMNS = ("_file", "_timestamp", "_runtime", "_wandb")
KEY_COLUMNS = ("project", "run_id", "run_name")


class WandbUnavailable(RuntimeError):
    """The W&B API cannot be used (no key, unreachable); the message never holds the key."""


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def check_reachable(base_url: str, timeout_s: float = 5.0) -> None:
    parsed = urlparse(base_url)
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host:
        raise WandbUnavailable(f"W&B base URL {base_url!r} has no host")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise WandbUnavailable(
            f"W&B API at {parsed.scheme}://{host}:{port} is unreachable ({type(exc).__name__}: {exc.strerror or exc})"
        ) from None


def export_wandb(
    store: ObjectStore,
    entity: str,
    projects: list[str],
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    max_runs: int | None = None,
    parallel: int = 4,
    requests_per_second: float = 10.0,
    max_retries: int = 6,
    backoff_s: float = 1.0,
    timeout_s: int = 30,
) -> FetchStats:
    """Fetch runs and their full (scanned) history from W&B into the raw zone, one file per run;
    projects in parallel within the rate limit, resuming what an interrupted export left."""
    api_key = api_key if api_key is not None else os.environ.get("WANDB_API_KEY")
    if not api_key:
        raise WandbUnavailable("WANDB_API_KEY is not set; skipping the W&B fetch")
    if not projects:
        raise WandbUnavailable("no W&B projects configured; skipping the W&B fetch")
    base_url = base_url or os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    check_reachable(base_url)
    try:
        return export_projects(store, entity, projects, base_url=base_url, api_key=api_key, parallel=parallel,
                               requests_per_second=requests_per_second, max_retries=max_retries, backoff_s=backoff_s,
                               max_runs=max_runs, timeout_s=timeout_s)
    except WandbFetchError as exc:
        raise WandbUnavailable(_redact(str(exc), api_key)) from None


# ----- ingest --------------------------------------------------------------------------
def _project_and_run(key: str, prefix: str) -> tuple[str, str]:
    rel = key[len(prefix) :] if key.startswith(prefix) else key
    parts = rel.split("/")
    stem = re.sub(r"\.(jsonl|json|csv)$", "", parts[-1])
    project = parts[-2] if len(parts) >= 2 else "unknown"
    return project, stem


def _jsonish_columns(df: pl.DataFrame) -> pl.DataFrame:
    """Expand string columns that hold JSON objects (W&B's ``oe_eval_metrics``) into structs."""
    for name, dtype in df.schema.items():
        if dtype != pl.String:
            continue
        sample = df[name].drop_nulls().head(50).to_list()
        if not sample or not all(isinstance(v, str) and v.lstrip().startswith("{") for v in sample):
            continue
        try:
            decoded = pl.Series(name, [json.loads(v) if v else None for v in df[name].to_list()], strict=False)
        except (ValueError, TypeError):
            continue
        if isinstance(decoded.dtype, pl.Struct):
            df = df.with_columns(decoded)
    return df


def split_mixed_columns(df: pl.DataFrame, protect: tuple[str, ...] = ()) -> pl.DataFrame:
    """A string column whose values are mostly numbers (a metric logged as text in one run) becomes
    a Float64 column plus ``<name>__text`` holding the values that are not numbers: nothing lost.

    The frame is assembled once at the end (a ``with_columns`` per column would copy the frame
    each time: quadratic in the number of columns)."""
    cols: list[pl.Series] = []
    for s in df.get_columns():
        if s.dtype != pl.String or s.name in protect:
            cols.append(s)
            continue
        nums = s.str.strip_chars().cast(pl.Float64, strict=False)
        present = s.len() - s.null_count()
        parsed = nums.len() - nums.null_count()
        if present == 0 or parsed == 0:
            cols.append(s)
            continue
        cols.append(nums.alias(s.name))
        if parsed < present:
            cols.append(s.zip_with(nums.is_null(), pl.Series([None] * s.len(), dtype=pl.String)).alias(f"{s.name}__text"))
    return pl.DataFrame(cols)


def drop_constant_columns(df: pl.DataFrame, protect: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Drop columns with a single value over every row (if more than one row); return what went."""
    if df.height < 2:
        return df, pl.DataFrame(schema={"column": pl.String, "value": pl.String})
    dropped = []
    for name in df.columns:
        if name in protect or df[name].dtype.is_nested():
            continue
        s = df[name]
        if s.null_count() == 0 and s.n_unique() == 1:
            dropped.append({"column": name, "value": str(s[0])})
        elif s.null_count() == df.height:
            dropped.append({"column": name, "value": None})
    out = df.drop([d["column"] for d in dropped])
    return out, pl.DataFrame(dropped, schema={"column": pl.String, "value": pl.String})


def parsed_name_columns(names: list[str | None], projects: list[str | None]) -> pl.DataFrame:
    rows = [parse_run_name(n, p) for n, p in zip(names, projects)]
    schema = {k: {str: pl.String, float: pl.Float64, int: pl.Int64}[t] for k, t in PARSED_FIELDS.items()}
    return pl.DataFrame(rows, schema=schema)


@dataclass
class HistoryResult:
    wide: pl.DataFrame
    long: pl.DataFrame
    rejects: pl.DataFrame
    files: int


def _same_value(a, b) -> bool:
    if a is None or b is None or a == b:
        return True
    fa, fb = _as_float(a), _as_float(b)
    return fa is not None and fa == fb


def _as_float(v) -> float | None:
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def merge_duplicate_columns(df: pl.DataFrame, header: list[str], key: str, rejects: list[dict]) -> pl.DataFrame:
    """One metric written as several columns (OLMo's exports repeat a name, once with a leading
    space): merge them into one column named without the padding. A row where the copies agree (or
    all but one are empty) keeps that value; where they differ the cell is left empty and a reject
    (file, line, metric, every copy's value) says why. ``df``'s columns are positional
    (``header[i]`` is column i), so Polars never invents ``<name>_duplicated_0``."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        groups.setdefault(name.strip(), []).append(i)
    cols = []
    for name, idx in groups.items():
        if len(idx) == 1:
            cols.append(df.to_series(idx[0]).alias(name))
            continue
        copies = [df.to_series(i).cast(pl.String) for i in idx]
        merged = []
        for row, values in enumerate(zip(*(c.to_list() for c in copies))):
            present = [v for v in values if v is not None]
            if all(_same_value(present[0], v) for v in present[1:]) if present else True:
                merged.append(present[0] if present else None)
            else:
                merged.append(None)
                shown = ", ".join(f"{header[i]!r}={v!r}" for i, v in zip(idx, values))
                rejects.append(reject(key, row + 2, f"metric {name!r} is written in {len(idx)} columns that "
                                                    f"disagree on this row ({shown}); left empty", shown))
        series = pl.Series(name, merged, pl.String)
        numbers = series.str.strip_chars().cast(pl.Float64, strict=False)
        cols.append(numbers if numbers.null_count() == series.null_count() else series)
    return pl.DataFrame(cols)


def _read_history_csv(path: Path, key: str, rejects: list[dict]) -> pl.DataFrame | None:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
        if not header:
            rejects.append(reject(key, 1, "CSV has no header line"))
            return None
        df = pl.read_csv(path, infer_schema_length=None, new_columns=[f"__col{i}" for i in range(len(header))])
    except Exception as exc:  # noqa: BLE001 - a broken CSV is rejected whole, the rest ingested
        rejects.append(reject(key, None, f"unreadable CSV: {type(exc).__name__}: {str(exc)[:300]}"))
        return None
    return merge_duplicate_columns(df, header, key, rejects)


def _read_history_file(store: ObjectStore, key: str, rejects: list[dict], chunk_bytes: int) -> pl.DataFrame | None:
    with store.local_path(key) as path:
        if key.endswith(".csv"):
            return _read_history_csv(path, key, rejects)
        with tempfile.TemporaryDirectory(prefix="snoiq-hist-") as tmp:
            out = Path(tmp) / "h.parquet"
            res = stream_jsonl_files([(key, path)], out, chunk_bytes=chunk_bytes, file_column=None)
            rejects.extend(res.rejects)
            return pl.read_parquet(out) if res.rows else None


def ingest_history(store: ObjectStore, prefix: str = HISTORY_PREFIX, chunk_bytes: int = 64 << 20) -> HistoryResult:
    """Every landed history file -> wide (one row per run step) and long (run, step, tokens, metric, value)."""
    rejects: list[dict] = []
    frames = []
    keys = [i.key for i in store.list(prefix) if i.key.endswith((".csv", ".jsonl", ".json"))]
    for key in keys:
        df = _read_history_file(store, key, rejects, chunk_bytes)
        if df is None or df.height == 0:
            continue
        project, run = _project_and_run(key, prefix)
        run_id = str(df["_run_id"][0]) if "_run_id" in df.columns else run
        run_name = str(df["_run_name"][0]) if "_run_name" in df.columns else run
        df = df.drop([c for c in ("_run_id", "_run_name") if c in df.columns])
        step = next((c for c in STEP_COLUMNS if c in df.columns), None)
        tokens = next((c for c in TOKEN_COLUMNS if c in df.columns), None)
        df = flatten_structs(df).with_columns(
            pl.lit(project).alias("project"),
            pl.lit(run_id).alias("run_id"),
            pl.lit(run_name).alias("run_name"),
            pl.lit(key).alias("source_file"),
            (pl.col(step).cast(pl.Int64, strict=False) if step else pl.lit(None, pl.Int64)).alias("step"),
            (pl.col(tokens).cast(pl.Float64, strict=False) if tokens else pl.lit(None, pl.Float64)).alias("tokens"),
        )
        df = df.drop([c for c in (step, tokens) if c and c not in ("step", "tokens")])
        frames.append(df)
    ids = ["project", "run_id", "run_name", "step", "tokens"]
    if not frames:
        empty_long = pl.DataFrame(
            schema={**{k: pl.String for k in ids[:3]}, "step": pl.Int64, "tokens": pl.Float64,
                    "metric": pl.String, "value": pl.Float64, "value_text": pl.String}
        )
        return HistoryResult(empty_long.select(ids), empty_long, rejects_frame(rejects), len(keys))
    wide = pl.concat(frames, how="diagonal_relaxed")
    meta = [c for c in wide.columns if c in META_COLUMNS or c.startswith("_")]
    wide = wide.drop(meta).unique(maintain_order=True)
    lead = ids + ["source_file"]
    wide = wide.select(lead + sorted(c for c in wide.columns if c not in lead))
    metrics = [c for c in wide.columns if c not in lead]
    long = (
        wide.select(ids + [pl.col(c).cast(pl.String) for c in metrics])
        .unpivot(index=ids, on=metrics, variable_name="metric", value_name="raw")
        .filter(pl.col("raw").is_not_null())
        .with_columns(pl.col("raw").str.strip_chars().cast(pl.Float64, strict=False).alias("value"))
        .with_columns(pl.when(pl.col("value").is_null()).then(pl.col("raw")).otherwise(None).alias("value_text"))
        .drop("raw")
        .unique(maintain_order=True)
        .sort(["project", "run_id", "metric", "step", "tokens"], nulls_last=True)
    )
    wide = split_mixed_columns(wide, protect=tuple(lead))
    return HistoryResult(wide, long, rejects_frame(rejects), len(keys))


@dataclass
class RunsResult:
    runs: pl.DataFrame
    dropped_constants: pl.DataFrame
    rejects: pl.DataFrame
    files: int


def summaries_from_history(long: pl.DataFrame) -> pl.DataFrame:
    """Per run: the last logged value of each metric (what W&B keeps as the summary)."""
    if long.height == 0:
        return pl.DataFrame(schema={"project": pl.String, "run_id": pl.String, "run_name": pl.String})
    order = long.filter(pl.col("value").is_not_null()).sort(["step", "tokens"], nulls_last=False)
    last = order.group_by(["project", "run_id", "run_name", "metric"], maintain_order=True).agg(pl.col("value").last())
    wide = last.pivot(on="metric", index=["project", "run_id", "run_name"], values="value")
    wide = wide.rename({c: f"summary.{c}" for c in wide.columns if c not in KEY_COLUMNS})
    stats = long.group_by(["project", "run_id", "run_name"]).agg(
        pl.col("step").max().alias("history_last_step"),
        pl.col("tokens").max().alias("history_max_tokens"),
        pl.struct("step", "tokens").n_unique().alias("history_rows"),
    )
    return wide.join(stats, on=list(KEY_COLUMNS), how="left")


def ingest_runs(
    store: ObjectStore, history_long: pl.DataFrame | None = None, prefix: str = RUNS_PREFIX, chunk_bytes: int = 64 << 20
) -> RunsResult:
    """Landed run records (+ runs known only from history exports) -> one typed, flat row per run."""
    keys = [i.key for i in store.list(prefix) if i.key.endswith((".jsonl", ".json"))]
    runs = pl.DataFrame(schema={k: pl.String for k in KEY_COLUMNS})
    res_rejects: list[dict] = []
    if keys:
        with tempfile.TemporaryDirectory(prefix="snoiq-runs-") as tmp:
            locals_ = []
            import contextlib

            with contextlib.ExitStack() as stack:
                for key in keys:
                    locals_.append((key, stack.enter_context(store.local_path(key))))
                out = Path(tmp) / "runs.parquet"
                res = stream_jsonl_files(locals_, out, chunk_bytes=chunk_bytes, file_column="source_file", flatten=True)
                res_rejects.extend(res.rejects)
            if res.rows:
                raw = pl.read_parquet(out)
                # summary.oe_eval_metrics arrives as a JSON string (or nested JSON text after a type
                # clash between files): decode and flatten until nothing is left to expand
                for _ in range(3):
                    raw = flatten_structs(_jsonish_columns(raw))
                rename = {"id": "run_id", "name": "run_name", "display_name": "run_name"}
                raw = raw.rename({k: v for k, v in rename.items() if k in raw.columns and v not in raw.columns})
                if "project" not in raw.columns:
                    raw = raw.with_columns(
                        pl.col("source_file").map_elements(lambda k: _project_and_run(k, prefix)[0], return_dtype=pl.String).alias("project")
                    )
                for k in KEY_COLUMNS:
                    if k not in raw.columns:
                        raw = raw.with_columns(pl.lit(None, pl.String).alias(k))
                raw = raw.with_columns([pl.col(k).cast(pl.String) for k in KEY_COLUMNS])
                bad = raw.filter(pl.col("run_id").is_null() & pl.col("run_name").is_null())
                for f in bad["source_file"].to_list():
                    res_rejects.append(reject(f, None, "run record has neither id nor name"))
                raw = raw.filter(pl.col("run_id").is_not_null() | pl.col("run_name").is_not_null())
                runs = raw.with_columns(pl.coalesce("run_id", "run_name").alias("run_id"),
                                        pl.coalesce("run_name", "run_id").alias("run_name"))
    if history_long is not None and history_long.height:
        summ = summaries_from_history(history_long)
        known = runs.select("project", "run_id").unique()
        extra = summ.join(known, on=["project", "run_id"], how="anti").with_columns(
            pl.lit("history_export").alias("record_source")
        )
        have = summ.join(known, on=["project", "run_id"], how="semi")
        if have.height:
            add = [c for c in have.columns if c not in runs.columns or c in ("project", "run_id")]
            runs = runs.join(have.select(add), on=["project", "run_id"], how="left")
        if runs.height and "record_source" not in runs.columns:
            runs = runs.with_columns(pl.lit("run_record").alias("record_source"))
        runs = pl.concat([runs, extra], how="diagonal_relaxed") if runs.height else extra
    runs = runs.unique(maintain_order=True)
    parsed = parsed_name_columns(runs["run_name"].to_list(), runs["project"].to_list())
    runs = pl.concat([runs.drop([c for c in parsed.columns if c in runs.columns]), parsed], how="horizontal")
    protect = tuple(KEY_COLUMNS) + tuple(parsed.columns) + ("source_file", "record_source")
    runs = split_mixed_columns(runs, protect=protect)
    runs, dropped = drop_constant_columns(runs, protect)
    lead = [c for c in protect if c in runs.columns]
    runs = runs.select(lead + [c for c in runs.columns if c not in lead]).sort(["project", "run_id"])
    return RunsResult(runs, dropped, rejects_frame(res_rejects), len(keys))
