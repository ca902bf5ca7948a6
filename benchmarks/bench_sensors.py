"""A landing-sensor tick over 10,000 keys (target: under 5 s), local folder and S3, against the
bare listing of the same prefix (the floor: a tick has to list the prefix at least once).

Run: .venv/bin/python benchmarks/bench_sensors.py   (results in benchmarks/results/sensors.json)
"""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import _common  # noqa: F401
import dagster as dg

from _common import on_both_backends, write_results
from snoiq_assets.defs.stations.sensors import station_sensors
from snoiq_assets.defs.store import ObjectStoreResource
from snoiq_assets.lib.storage import store_from_settings
from snoiq_assets.settings import Settings

N_KEYS = int(os.environ.get("BENCH_SENSOR_KEYS", "10000"))
station_file_landing_sensor = station_sensors(Settings())[0]


def land(settings: Settings) -> None:
    store = store_from_settings(settings)
    if settings.profile == "local":
        for i in range(N_KEYS):
            store.put(f"raw/observations/S{i:05d}.csv", b"a,b\n1,2\n")
        return
    client = store.client

    def put(i: int) -> None:
        client.put_object(settings.bucket, f"raw/observations/S{i:05d}.csv", io.BytesIO(b"a,b\n1,2\n"), 8)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(N_KEYS)))


def bench(settings: Settings, defs: dg.Definitions) -> dict:
    land(settings)
    store = store_from_settings(settings)
    resource = ObjectStoreResource(profile=settings.profile, home=str(settings.home), s3_endpoint=settings.s3_endpoint,
                                   bucket=settings.bucket, access_key_id=settings.access_key_id,
                                   secret_access_key=settings.secret_access_key)
    t0 = time.perf_counter()
    listed = sum(1 for _ in store.list("raw/observations/"))
    t_list = time.perf_counter() - t0
    with dg.instance_for_test() as instance:
        def tick(cursor):
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": resource},
                                          definitions=defs)
            t = time.perf_counter()
            result = station_file_landing_sensor(ctx)
            took = time.perf_counter() - t
            return result, took, (result.cursor if isinstance(result, dg.SensorResult) else ctx.cursor)

        first, t_first, cursor = tick(None)
        assert len(first.run_requests) == N_KEYS
        steady, t_steady, _ = tick(cursor)
        assert isinstance(steady, dg.SkipReason)
    return {"keys": listed, "bare_list_s": round(t_list, 3), "first_tick_s": round(t_first, 3),
            "steady_tick_s": round(t_steady, 3), "steady_over_list": round(t_steady / t_list, 2),
            "cursor_bytes": len(cursor)}


def main() -> None:
    from snoiq_assets.definitions import defs

    write_results("sensors", on_both_backends(bench, defs))


if __name__ == "__main__":
    main()
