"""Test archives laid out like NOAA's HRRR archive.

``write_cycle`` writes one cycle's lead files with ecCodes on the real HRRR grid (clones of the
real message, step and values set), each with unselected messages interleaved like the real
wrfsfc files and a full ``.idx``. ``upload_cycle`` puts them into an S3 bucket under the NOAA
keys (``hrrr.YYYYMMDD/conus/hrrr.tHHz.wrfsfcfFF.grib2``). ``RangeHttpServer`` serves a folder
over real HTTP with Range support, plus faults scripted per path (a 503, a stalled response,
a short body), for the retry and timeout paths a healthy S3 server never takes.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from snoiq_assets.lib.hrrr import synth
from snoiq_assets.lib.hrrr.decode import idx_text, scan_grib
from snoiq_assets.lib.hrrr.fetch import hrrr_key
from snoiq_assets.lib.hrrr.synth import MessageSpec, demo_values
from snoiq_assets.lib.hrrr.variables import CATALOGUE, HOURLY_BUCKETS

COLUMNS = ("tmp_2m_k", "snod_m", "asnow_m", "apcp_kg_m2")


@functools.lru_cache(maxsize=64)
def _hour_amount(hour: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng((seed, hour))
    n = synth.HRRR_SHAPE[0] * synth.HRRR_SHAPE[1]
    return np.clip(rng.gamma(0.3, 2.0, n) - 0.4, 0.0, None)


def accumulation(column: str, forecast_hour: int) -> np.ndarray:
    """A cycle's accumulation from the cycle start at ``forecast_hour``: hourly gamma showers
    summed (APCP in kg m-2; ASNOW one thousandth of it, in m)."""
    scale, seed = {"apcp_kg_m2": (1.0, 7), "asnow_m": (1e-3, 11)}[column]
    total = np.zeros(synth.HRRR_SHAPE[0] * synth.HRRR_SHAPE[1])
    for hour in range(1, forecast_hour + 1):
        total += _hour_amount(hour, seed)
    return total * scale


def apcp_accumulation(forecast_hour: int) -> np.ndarray:
    return accumulation("apcp_kg_m2", forecast_hour)


def lead_specs(forecast_hour: int, columns=COLUMNS, bucket: bool = True) -> list[MessageSpec]:
    specs = []
    for col in columns:
        var = CATALOGUE[col]
        if var.step_type == "accum":
            values = accumulation(col, forecast_hour)
        else:
            values = demo_values(col, forecast_hour)
        specs.append(MessageSpec.for_variable(var, values))
        if col == "apcp_kg_m2" and bucket and forecast_hour >= 2:
            last = _hour_amount(forecast_hour, 7)
            specs.append(MessageSpec.for_variable(HOURLY_BUCKETS[col], last))
    return specs


def write_lead(folder: Path, run_time: dt.datetime, forecast_hour: int, columns=COLUMNS, bucket: bool = True) -> Path:
    """One lead file with an unselected POT 2 m message before TMP (like the real files)."""
    specs = lead_specs(forecast_hour, columns, bucket)
    pot = MessageSpec(0, 0, 2, 103, 2, "instant", demo_values("tmp_2m_k", forecast_hour) + 3.0)
    path = folder / Path(hrrr_key(run_time, forecast_hour)).name
    synth.write_grib(path, [pot, *specs], run_time, forecast_hour, packing="grid_ccsds")
    Path(str(path) + ".idx").write_text(idx_text(scan_grib(path)))
    return path


def write_cycle(folder: Path, run_time: dt.datetime, leads, columns=COLUMNS) -> dict[int, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {fh: write_lead(folder, run_time, fh, columns) for fh in leads}


def upload_cycle(client, bucket: str, run_time: dt.datetime, files: dict[int, Path]) -> None:
    for fh, path in files.items():
        key = hrrr_key(run_time, fh)
        client.upload_file(str(path), bucket, key)
        client.upload_file(str(path) + ".idx", bucket, key + ".idx")


class RangeHttpServer:
    """A real HTTP server over ``root`` (keys are paths under it) honouring ``Range: bytes=a-b``.

    ``faults[key]`` is a list consumed one per request of that key: ``"503"`` answers 503,
    ``"stall"`` sleeps ``stall_s`` before answering (past the client's timeout), ``"short"``
    sends a body one byte short of the range.
    """

    def __init__(self, root: Path, stall_s: float = 3.0):
        self.root, self.stall_s = Path(root), stall_s
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):   # keep the test output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                key = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((key, rng))
                fault = server.faults[key].pop(0) if server.faults.get(key) else None
                if fault == "503":
                    self.send_error(503, "slow down")
                    return
                if fault == "stall":
                    time.sleep(server.stall_s)
                path = server.root / key
                if not path.is_file():
                    self.send_error(404, "no such key")
                    return
                data = path.read_bytes()
                status = 200
                if rng:
                    start, _, end = rng.removeprefix("bytes=").partition("-")
                    stop = int(end) + 1 if end else len(data)
                    data, status = data[int(start):stop], 206
                if fault == "short":
                    data = data[:-1]
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):   # the client timed out and left
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "RangeHttpServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
