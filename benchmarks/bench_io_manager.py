"""Parquet write and read of a 1-million-row frame through the IO manager, against writing and
reading the same frame directly with Polars, on the local folder and on a real S3 server.

Run: .venv/bin/python benchmarks/bench_io_manager.py   (results in benchmarks/results/io_manager.json)
"""

from __future__ import annotations

import io

import _common  # noqa: F401  (puts the repo on sys.path)
import dagster as dg
import numpy as np
import polars as pl

from _common import best_of, on_both_backends, write_results
from snoiq_assets.defs.io_manager import PartitionedParquetIOManager
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.storage import store_from_settings
from snoiq_assets.settings import Settings

N = 1_000_000


def frame() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame({
        "station_id": rng.choice(["USW00024233", "72698024229", "94074", "CLE"], N),
        "timestamp_utc": pl.datetime_range(pl.datetime(2020, 1, 1), pl.datetime(2020, 1, 1) + pl.duration(hours=N - 1),
                                           "1h", eager=True, time_zone="UTC"),
        "air_temp_c": rng.normal(0, 10, N).astype(np.float32),
        "precip_mm": rng.gamma(0.3, 2, N).astype(np.float32),
        "snow_depth_mm": rng.gamma(0.5, 50, N),
    })


def bench_backend(settings: Settings, df: pl.DataFrame) -> dict:
    resource = ObjectStoreResource(
        profile=settings.profile, home=str(settings.home), s3_endpoint=settings.s3_endpoint,
        bucket=settings.bucket, access_key_id=settings.access_key_id, secret_access_key=settings.secret_access_key,
    )
    manager = PartitionedParquetIOManager(store=resource)
    store = store_from_settings(settings)
    key = dg.AssetKey("bench_frame")
    out_ctx = dg.build_output_context(asset_key=key, resources={})
    in_ctx = dg.build_input_context(asset_key=key, upstream_output=out_ctx, dagster_type=dg.DagsterType(
        type_check_fn=lambda _c, _v: True, name="DataFrame", typing_type=pl.DataFrame))

    # Baseline: Polars itself, zstd like the IO manager, to the same place.
    if settings.profile == "local":
        target = settings.home / "direct" / "frame.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        direct_write = lambda: df.write_parquet(target, compression="zstd")  # noqa: E731
        direct_read = lambda: pl.read_parquet(target)  # noqa: E731
    else:
        uri = f"s3://{settings.bucket}/direct/frame.parquet"
        opts = settings.polars_storage_options()
        direct_write = lambda: df.write_parquet(uri, compression="zstd", storage_options=opts)  # noqa: E731
        direct_read = lambda: pl.read_parquet(uri, storage_options=opts)  # noqa: E731

    t_direct_w = best_of(direct_write)
    t_direct_r = best_of(direct_read)
    # One fresh output context per write (metadata is added once per context), built untimed.
    contexts = iter([dg.build_output_context(asset_key=key) for _ in range(3)])
    t_io_w = best_of(lambda: manager.handle_output(next(contexts), df))
    t_io_r = best_of(lambda: manager.load_input(in_ctx))
    assert manager.load_input(in_ctx).shape == df.shape
    size = store.stat("lake/bench_frame.parquet").size
    return {
        "direct_write_s": round(t_direct_w, 4), "io_manager_write_s": round(t_io_w, 4),
        "write_ratio": round(t_io_w / t_direct_w, 3),
        "direct_read_s": round(t_direct_r, 4), "io_manager_read_s": round(t_io_r, 4),
        "read_ratio": round(t_io_r / t_direct_r, 3),
        "file_mb": round(size / 1e6, 2),
    }


def main() -> None:
    df = frame()
    results = {"rows": N}
    results.update(on_both_backends(bench_backend, df))
    write_results("io_manager", results)


if __name__ == "__main__":
    main()
