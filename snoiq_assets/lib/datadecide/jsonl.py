"""Streaming JSONL -> Parquet with a rejects list and union-by-name across chunks and files.

Pass 1 reads each file in byte blocks cut at line ends (``chunk_bytes``, default 64 MiB), parses a
block with Polars' NDJSON reader and writes it as one Parquet part. A block that fails to parse is
re-read line by line: every malformed line goes to the rejects with its file and line number and
the good lines are parsed. Pass 2 computes one schema over all parts (union of column names;
int+float -> float, number/bool vs string -> string, other clashes -> JSON text) and streams the
parts into a single Parquet file. Only one block is in memory at a time, so the size of the export
does not bound memory.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_CHUNK_BYTES = 64 << 20
REJECT_TEXT_LIMIT = 2000

REJECTS_SCHEMA = {"file": pl.String, "line": pl.Int64, "error": pl.String, "text": pl.String}


@dataclass
class StreamResult:
    rows: int = 0
    files: int = 0
    columns: list[str] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)

    def rejects_frame(self) -> pl.DataFrame:
        return rejects_frame(self.rejects)


def rejects_frame(rejects: Iterable[dict]) -> pl.DataFrame:
    return pl.DataFrame(list(rejects), schema=REJECTS_SCHEMA)


def reject(file: str, line: int | None, error: str, text: bytes | str | None = None) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return {"file": file, "line": line, "error": error, "text": (text or "")[:REJECT_TEXT_LIMIT]}


def iter_line_blocks(fh, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, block)`` with every block ending at a line end (1-based)."""
    carry = b""
    line_no = 1
    while True:
        block = fh.read(chunk_bytes)
        if not block:
            if carry:
                yield line_no, carry
            return
        data = carry + block if carry else block
        cut = data.rfind(b"\n")
        if cut == -1:
            carry = data
            continue
        chunk, carry = data[: cut + 1], data[cut + 1 :]
        yield line_no, chunk
        line_no += chunk.count(b"\n")


def flatten_structs(df: pl.DataFrame, sep: str = ".") -> pl.DataFrame:
    """Unnest struct columns recursively into ``parent.child`` columns (lists are kept).

    Works on Series, not expressions: one ``select`` over thousands of ``struct.field``
    expressions (a W&B summary with 6,000 keys) costs quadratic planning time."""
    while any(isinstance(t, pl.Struct) for t in df.schema.values()):
        cols: list[pl.Series] = []
        taken = set(df.columns)
        for series in df.get_columns():
            if not isinstance(series.dtype, pl.Struct):
                cols.append(series)
                continue
            if not series.dtype.fields:
                cols.append(pl.Series(series.name, [None] * len(series), pl.String))
                continue
            for field_series in series.struct.unnest().get_columns():
                new = f"{series.name}{sep}{field_series.name}"
                while new in taken:  # a flat column already has this dotted name
                    new += "_"
                taken.add(new)
                cols.append(field_series.alias(new))
        df = pl.DataFrame(cols)
    return df


def parse_block(block: bytes, first_line: int, file: str, rejects: list[dict]) -> pl.DataFrame | None:
    """Parse one block of JSON lines; malformed lines go to ``rejects``."""
    try:
        return pl.read_ndjson(io.BytesIO(block), infer_schema_length=None)
    except Exception:  # noqa: BLE001 - fall back to finding the bad lines
        pass
    good: list[bytes] = []
    for i, raw in enumerate(block.split(b"\n")):
        text = raw.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            rejects.append(reject(file, first_line + i, f"malformed JSON: {exc}", text))
            continue
        if not isinstance(obj, dict):
            rejects.append(reject(file, first_line + i, f"a JSON {type(obj).__name__}, not an object", text))
            continue
        good.append(text)
    if not good:
        return None
    try:
        return pl.read_ndjson(io.BytesIO(b"\n".join(good)), infer_schema_length=None)
    except Exception:  # noqa: BLE001 - clashing nested shapes: keep them as JSON text
        rows = [
            {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in json.loads(g).items()}
            for g in good
        ]
        return pl.DataFrame(rows, infer_schema_length=None, strict=False)


# ----- schema union ------------------------------------------------------------------
def supertype(a: pl.DataType, b: pl.DataType) -> pl.DataType:
    if a == b:
        return a
    if a == pl.Null:
        return b
    if b == pl.Null:
        return a
    num = lambda t: t.is_numeric() or t == pl.Boolean  # noqa: E731
    if num(a) and num(b):
        if a.is_integer() and b.is_integer():
            return pl.Int64
        return pl.Float64
    return pl.String


def _to_json_text(s: pl.Series) -> pl.Series:
    return pl.Series(s.name, [None if v is None else json.dumps(v, default=str) for v in s.to_list()], pl.String)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Give ``df`` exactly ``schema`` (missing columns null, types cast, nested -> JSON text)."""
    cols = []
    present = set(df.columns)  # DataFrame.columns builds a new list on each call
    for name, dtype in schema.items():
        if name not in present:
            cols.append(pl.Series(name, [None] * df.height, dtype))
            continue
        s = df[name]
        if s.dtype == dtype:
            cols.append(s)
        elif dtype == pl.String and s.dtype.is_nested():
            cols.append(_to_json_text(s))
        else:
            cols.append(s.cast(dtype, strict=False))
    return pl.DataFrame(cols)


def union_schema(schemas: Iterable[dict[str, pl.DataType]]) -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {}
    for schema in schemas:
        for name, dtype in schema.items():
            out[name] = supertype(out[name], dtype) if name in out else dtype
    return out


def concat_parts(parts: list[Path], dest: Path, compression: str = "zstd") -> list[str]:
    """Stream Parquet parts into one file under the union schema; return its columns."""
    schemas = [dict(pl.read_parquet_schema(p)) for p in parts]
    schema = union_schema(schemas)
    writer = None
    try:
        for part in parts:
            df = conform(pl.read_parquet(part), schema)
            table = df.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(dest, table.schema, compression=compression)
            writer.write_table(table.cast(writer.schema))
        if writer is None:
            pq.write_table(pa.table({}), dest)
    finally:
        if writer is not None:
            writer.close()
    return list(schema)


def stream_jsonl_files(
    files: Iterable[tuple[str, Path]],
    dest: Path,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    flatten: bool = True,
    file_column: str | None = "_file",
    compression: str = "zstd",
) -> StreamResult:
    """Convert JSONL files (``(name, local path)`` pairs) into one Parquet file at ``dest``.

    ``name`` is what the rejects and ``file_column`` record (the object key, not a temp path).
    """
    result = StreamResult()
    with tempfile.TemporaryDirectory(prefix="snoiq-jsonl-") as tmp:
        parts: list[Path] = []
        for name, path in files:
            result.files += 1
            with open(path, "rb") as fh:
                for first_line, block in iter_line_blocks(fh, chunk_bytes):
                    df = parse_block(block, first_line, name, result.rejects)
                    del block
                    if df is None or df.height == 0:
                        continue
                    if flatten:
                        df = flatten_structs(df)
                    if file_column:
                        df = df.with_columns(pl.lit(name, pl.String).alias(file_column))
                    part = Path(tmp) / f"part-{len(parts):06d}.parquet"
                    df.write_parquet(part, compression="lz4")
                    result.rows += df.height
                    parts.append(part)
                    del df
        result.columns = concat_parts(parts, dest, compression=compression)
    return result


def stream_jsonl_to_parquet(src: Path, dest: Path, *, name: str | None = None, **kwargs) -> StreamResult:
    return stream_jsonl_files([(name or Path(src).name, Path(src))], dest, **kwargs)
