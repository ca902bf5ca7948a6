"""DataDecide evaluation results: Hugging Face hub fetch (cached in the storage folder) and typed ingest.

Typed schema (``EVAL_SCHEMA``): one row per (recipe, size, seed, step, task) with the metrics as a
``map<string, double>`` (non-numeric metric values in ``metrics_text``) and the per-task outputs as
``list<struct<doc_id, question, answers, gold, prediction, correct, scores>>``. Records are read in
batches (JSONL lines, Parquet record batches or CSV rows) and written batch by batch, so a large
file never has to fit in memory. Bad records go to the rejects with file and line (or row) number.

A CSV (or JSONL) record in long form, one ``metric`` and its ``value`` per row (the DataDecide grid
export: recipe, size, params_N, replicate, metric, value, split), becomes one row whose metrics map
holds that metric, with ``primary_score`` = the value and ``primary_metric`` = its name. Such a
source may number its runs (``replicate``) without naming their seeds: ``seed`` stays null then.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from snoiq_assets.lib.datadecide.jsonl import reject, rejects_frame
from snoiq_assets.lib.datadecide.names import parse_seed, recipe_key, size_to_params
from snoiq_assets.lib.storage import ObjectStore

EVAL_PREFIX = "raw/datadecide/eval_results/"
RECIPES_PREFIX = "raw/datadecide/recipes/"
DEFAULT_REPO = "allenai/DataDecide-eval-results"

OUTPUT_STRUCT = pa.struct(
    [
        ("doc_id", pa.int64()),
        ("question", pa.string()),
        ("answers", pa.list_(pa.string())),
        ("gold", pa.int64()),
        ("prediction", pa.int64()),
        ("correct", pa.bool_()),
        ("scores", pa.list_(pa.float64())),
    ]
)
EVAL_SCHEMA = pa.schema(
    [
        ("params", pa.string()),
        ("size_params", pa.float64()),
        ("data", pa.string()),
        ("recipe_key", pa.string()),
        ("seed", pa.int64()),
        ("seed_label", pa.string()),
        ("replicate", pa.int64()),
        ("step", pa.int64()),
        ("tokens", pa.float64()),
        ("compute", pa.float64()),
        ("task", pa.string()),
        ("primary_score", pa.float64()),
        ("primary_metric", pa.string()),
        ("metrics", pa.map_(pa.string(), pa.float64())),
        ("metrics_text", pa.map_(pa.string(), pa.string())),
        ("outputs", pa.list_(OUTPUT_STRUCT)),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
    ]
)

_ALIASES = {
    "params": ("params", "size", "model_size"),
    "data": ("data", "recipe", "data_recipe"),
    "task": ("task", "task_name"),
    "outputs": ("outputs", "instances", "task_outputs", "predictions"),
}
_Q_ALIASES = {
    "question": ("question", "query", "prompt", "context"),
    "answers": ("answers", "choices", "options"),
    "gold": ("gold", "label", "answer_idx", "correct_idx"),
    "prediction": ("prediction", "pred", "model_answer", "predicted_idx"),
    "correct": ("correct", "is_correct", "acc"),
    "scores": ("scores", "logits", "logprobs"),
}


class HubUnavailable(RuntimeError):
    """The hub cannot be used (offline mode, no network, missing repo); clear message, no token."""


class BadRecord(ValueError):
    pass


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def fetch_hf_eval_results(
    store: ObjectStore,
    cache_dir: Path,
    repo_id: str = DEFAULT_REPO,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    allow_patterns: tuple[str, ...] = ("*.parquet", "*.jsonl"),
    timeout_s: float = 10.0,
) -> list[str]:
    """Download the dataset into ``cache_dir`` (kept between runs) and land its files in the raw zone."""
    if hub_offline():
        raise HubUnavailable(f"HF_HUB_OFFLINE is set; not fetching {repo_id} (ingesting landed files only)")
    from huggingface_hub import snapshot_download

    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        local = snapshot_download(
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            cache_dir=str(cache_dir),
            allow_patterns=list(allow_patterns),
            endpoint=endpoint,
            etag_timeout=timeout_s,
        )
    except Exception as exc:  # noqa: BLE001 - network, auth, missing repo: one clear message
        where = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        raise HubUnavailable(
            f"could not fetch dataset {repo_id} from {where}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        ) from None
    landed = []
    root = Path(local)
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".parquet", ".jsonl"):
            rel = re.sub(r"[^A-Za-z0-9_.=+/-]", "_", path.relative_to(root).as_posix())
            key = f"{EVAL_PREFIX}hf/{repo_id.replace('/', '__')}/{rel}"
            store.put_file(key, path)
            landed.append(key)
    return landed


# ----- typed normalisation -------------------------------------------------------------
def _first(d: dict, names: tuple[str, ...]):
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    return None


def _int(v, what: str) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise BadRecord(f"{what} is a boolean")
    if isinstance(v, (int, float)):
        if v != v or int(v) != v:
            raise BadRecord(f"{what}={v!r} is not an integer")
        return int(v)
    text = str(v).strip()
    m = re.fullmatch(r"(?:step)?(\d+)", text)
    if not m:
        raise BadRecord(f"{what}={v!r} is not an integer")
    return int(m.group(1))


def _float(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _output(item) -> dict:
    if not isinstance(item, dict):
        raise BadRecord(f"a per-task output is a {type(item).__name__}, not an object")
    q = {k: _first(item, names) for k, names in _Q_ALIASES.items()}
    answers = q["answers"]
    if answers is not None and not isinstance(answers, list):
        answers = [answers]
    scores = q["scores"]
    correct = q["correct"]
    if isinstance(correct, (int, float)) and not isinstance(correct, bool):
        correct = bool(correct)
    pred = q["prediction"]
    return {
        "doc_id": _int(item.get("doc_id", item.get("id")), "doc_id"),
        "question": None if q["question"] is None else str(q["question"]),
        "answers": None if answers is None else [None if a is None else str(a) for a in answers],
        "gold": _int(q["gold"], "gold"),
        "prediction": _int(pred, "prediction") if not isinstance(pred, str) or pred.isdigit() else None,
        "correct": correct if isinstance(correct, bool) or correct is None else None,
        "scores": [_float(s) for s in scores] if isinstance(scores, list) else None,
    }


def normalise_record(rec: dict, file: str, line: int) -> dict:
    if not isinstance(rec, dict):
        raise BadRecord(f"a JSON {type(rec).__name__}, not an object")
    metrics = rec.get("metrics")
    if isinstance(metrics, str):
        try:
            metrics = json.loads(metrics)
        except ValueError:
            raise BadRecord("metrics is text that is not JSON") from None
    if metrics is not None and not isinstance(metrics, dict):
        raise BadRecord(f"metrics is a {type(metrics).__name__}, not an object")
    metrics = metrics or {}
    primary_metric = metrics.get("primary_metric") if isinstance(metrics.get("primary_metric"), str) else None
    long_metric = rec.get("metric")
    if long_metric is not None and "value" in rec:
        if metrics:
            raise BadRecord("record has both a metrics object and a metric/value pair")
        value = _float(rec.get("value"))
        if value is None or value != value:
            raise BadRecord(f"value={rec.get('value')!r} for metric {long_metric!r} is not a number")
        metrics = {str(long_metric): value}
        primary_metric = str(long_metric)
    extra_text = {k: str(rec[k]) for k in ("split",) if rec.get(k) not in (None, "")}
    num = {k: _float(v) for k, v in metrics.items() if _float(v) is not None}
    text = {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in metrics.items() if k not in num and v is not None}
    text.update(extra_text)
    outputs = _first(rec, _ALIASES["outputs"])
    if outputs is not None and not isinstance(outputs, list):
        raise BadRecord(f"outputs is a {type(outputs).__name__}, not a list")
    params = _first(rec, _ALIASES["params"])
    data = _first(rec, _ALIASES["data"])
    task = _first(rec, _ALIASES["task"])
    if task is None and data is None and params is None:
        raise BadRecord("record has none of params/data/task")
    seed, seed_label = parse_seed(rec.get("seed"))
    primary = _float(rec.get("primary_score", metrics.get("primary_score")))
    if primary is None and primary_metric is not None:
        primary = num.get(primary_metric)
    size_params = _float(rec.get("params_N"))
    return {
        "params": None if params is None else str(params),
        "size_params": size_params if size_params is not None else size_to_params(params),
        "data": None if data is None else str(data),
        "recipe_key": recipe_key(data),
        "seed": seed,
        "seed_label": seed_label,
        "replicate": _int(rec.get("replicate"), "replicate"),
        "step": _int(rec.get("step"), "step"),
        "tokens": _float(rec.get("tokens")),
        "compute": _float(rec.get("compute")),
        "task": None if task is None else str(task),
        "primary_score": primary,
        "primary_metric": primary_metric if primary is not None else None,
        "metrics": list(num.items()),
        "metrics_text": list(text.items()),
        "outputs": None if outputs is None else [_output(o) for o in outputs],
        "source_file": file,
        "source_line": line,
    }


def _iter_records(key: str, path: Path, rejects: list[dict]) -> Iterator[tuple[int, dict]]:
    if key.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for line_no, row in enumerate(reader, start=2):  # line 1 is the header
                if None in row:
                    rejects.append(reject(key, line_no, f"{len(row[None])} field(s) more than the header's {len(reader.fieldnames)}",
                                          json.dumps(row, default=str)))
                    continue
                yield line_no, {k: (None if v == "" else v) for k, v in row.items()}
        return
    if key.endswith(".parquet"):
        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=20_000):
            for rec in batch.to_pylist():
                row += 1
                yield row, rec
        return
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                yield line_no, json.loads(text)
            except ValueError as exc:
                rejects.append(reject(key, line_no, f"malformed JSON: {exc}", text))


@dataclass
class EvalResult:
    rows: int = 0
    files: int = 0
    rejects: list[dict] = field(default_factory=list)

    def rejects_frame(self) -> pl.DataFrame:
        return rejects_frame(self.rejects)


def ingest_eval_results(store: ObjectStore, dest: Path, prefix: str = EVAL_PREFIX, batch_rows: int = 20_000) -> EvalResult:
    """Every landed eval-results file -> one typed Parquet file at ``dest``, written batch by batch."""
    result = EvalResult()
    keys = [i.key for i in store.list(prefix) if i.key.endswith((".jsonl", ".parquet", ".csv"))]
    with pq.ParquetWriter(dest, EVAL_SCHEMA, compression="zstd") as writer:
        batch: list[dict] = []
        for key in keys:
            result.files += 1
            with store.local_path(key) as path:
                try:
                    for line, rec in _iter_records(key, path, result.rejects):
                        try:
                            batch.append(normalise_record(rec, key, line))
                        except BadRecord as exc:
                            result.rejects.append(reject(key, line, str(exc), json.dumps(rec, default=str)))
                            continue
                        if len(batch) >= batch_rows:
                            writer.write_table(pa.Table.from_pylist(batch, schema=EVAL_SCHEMA))
                            result.rows += len(batch)
                            batch = []
                except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
                    result.rejects.append(reject(key, None, f"unreadable file: {type(exc).__name__}: {str(exc)[:300]}"))
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=EVAL_SCHEMA))
            result.rows += len(batch)
    return result


def ingest_recipes(store: ObjectStore, prefix: str = RECIPES_PREFIX) -> tuple[pl.DataFrame, list[dict]]:
    """Recipe name lists ({name, s3_only}) -> (name, recipe_key, s3_only, source_file)."""
    rows, rejects = [], []
    for info in store.list(prefix):
        if not info.key.endswith(".jsonl"):
            continue
        for line_no, raw in enumerate(store.get(info.key).splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
                    raise ValueError("expected an object with a string 'name'")
            except ValueError as exc:
                rejects.append(reject(info.key, line_no, str(exc), raw))
                continue
            s3 = rec.get("s3_only")
            rows.append({"name": rec["name"], "recipe_key": recipe_key(rec["name"]),
                         "s3_only": s3 if isinstance(s3, bool) else None, "source_file": info.key})
    schema = {"name": pl.String, "recipe_key": pl.String, "s3_only": pl.Boolean, "source_file": pl.String}
    return pl.DataFrame(rows, schema=schema).unique(subset=["name"], keep="last", maintain_order=True), rejects


def eval_metrics_long(results: pl.DataFrame) -> pl.DataFrame:
    """Flattened view: one row per (result row, metric)."""
    keys = ["params", "data", "recipe_key", "seed", "seed_label", "step", "tokens", "task"]
    return (
        results.select(keys + ["metrics"])
        .explode("metrics")
        .filter(pl.col("metrics").is_not_null())
        .with_columns(pl.col("metrics").struct.field("key").alias("metric"), pl.col("metrics").struct.field("value").alias("value"))
        .drop("metrics")
    )


def eval_outputs_long(results: pl.DataFrame) -> pl.DataFrame:
    """Flattened view: one row per (result row, question)."""
    keys = ["params", "data", "recipe_key", "seed", "step", "task"]
    return (
        results.select(keys + ["outputs"])
        .explode("outputs")
        .filter(pl.col("outputs").is_not_null())
        .unnest("outputs")
    )
