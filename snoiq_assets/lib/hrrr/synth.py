"""GRIB2 files on the real HRRR grid, built with ecCodes from the real APCP message.

The bundled real subset (``subset_20201214_hrrr.t00z.wrfsfcf12.grib2``) carries only APCP. To
test and demo the other variables we clone its first message (keeping the real Lambert grid
section and packing), set the product keys (discipline/category/number, level, time, step)
and new values. Used by tests, the benchmark and the demo seeding.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snoiq_assets.lib.cpus import available_cpus
from snoiq_assets.lib.hrrr.variables import CATALOGUE, Variable
from snoiq_assets.lib.storage import LocalStore, StorageError

REPO = Path(__file__).resolve().parents[3]
REAL_SUBSET = REPO / "data" / "sample" / "hrrr" / "subset_20201214_hrrr.t00z.wrfsfcf12.grib2"
REAL_IDX = REPO / "data" / "sample" / "hrrr" / "hrrr.t00z.wrfsfcf00.grib2.idx"
HRRR_SHAPE = (1059, 1799)
# A folder where packed messages are kept across processes (the test suite sets it for its
# session: its workers, demos and CLI subprocesses packed the same fields again, ~100 CPU-s of a
# run). Unset: each process packs what it needs once (``_packed_message``'s memory cache).
CACHE_ENV = "SNOIQ_SYNTH_GRIB_CACHE"


@dataclass(frozen=True)
class MessageSpec:
    discipline: int
    category: int
    number: int
    level_type: int
    level: int
    step_type: str          # instant | accum
    values: np.ndarray      # (ny*nx,) float64
    window_hours: int | None = None   # accum: None from the cycle start (0-F), N the last N hours

    @classmethod
    def for_variable(cls, var: Variable, values: np.ndarray) -> "MessageSpec":
        return cls(var.discipline, var.category, var.number, var.level_type, var.level_value, var.step_type, values,
                   var.window_hours)


def _template_handle(template: Path = REAL_SUBSET):
    import eccodes

    with open(template, "rb") as fh:
        return eccodes.codes_grib_new_from_file(fh)


def _step_range(window_hours: int | None, forecast_hour: int) -> str:
    """An accumulation's GRIB step range: from the run (no window) or the last ``window_hours``."""
    start = 0 if window_hours is None else forecast_hour - window_hours
    return f"{start}-{forecast_hour}"


def encode_message(template_handle, spec: MessageSpec, run_time: dt.datetime, forecast_hour: int,
                   packing: str | None = None) -> bytes:
    """One GRIB2 message: the template's grid and packing with new product keys and values.

    ``packing`` (e.g. ``grid_ccsds``) replaces the template's packing: HRRR's complex packing
    with spatial differencing takes ~0.2 s per field to encode, CCSDS ~0.02 s, which matters
    when a test writes days of hours."""
    import eccodes

    h = eccodes.codes_clone(template_handle)
    try:
        if packing:
            eccodes.codes_set(h, "packingType", packing)
        pdt = 8 if spec.step_type == "accum" else 0
        eccodes.codes_set(h, "productDefinitionTemplateNumber", pdt)
        eccodes.codes_set(h, "discipline", spec.discipline)
        eccodes.codes_set(h, "parameterCategory", spec.category)
        eccodes.codes_set(h, "parameterNumber", spec.number)
        eccodes.codes_set(h, "typeOfFirstFixedSurface", spec.level_type)
        if spec.level_type == 1:
            eccodes.codes_set_missing(h, "scaleFactorOfFirstFixedSurface")
            eccodes.codes_set_missing(h, "scaledValueOfFirstFixedSurface")
        else:
            eccodes.codes_set(h, "scaleFactorOfFirstFixedSurface", 0)
            eccodes.codes_set(h, "scaledValueOfFirstFixedSurface", spec.level)
        eccodes.codes_set(h, "dataDate", int(run_time.strftime("%Y%m%d")))
        eccodes.codes_set(h, "dataTime", int(run_time.strftime("%H%M")))
        if pdt == 8:
            eccodes.codes_set(h, "stepRange", _step_range(spec.window_hours, forecast_hour))
        else:
            eccodes.codes_set(h, "forecastTime", forecast_hour)
        eccodes.codes_set_values(h, np.asarray(spec.values, dtype=np.float64))
        return eccodes.codes_get_message(h)
    finally:
        eccodes.codes_release(h)


def demo_values(column: str, hour: int = 0, shape: tuple[int, int] = HRRR_SHAPE) -> np.ndarray:
    """Smooth, plausible, deterministic values for a catalogue variable on the HRRR grid."""
    ny, nx = shape
    y = np.linspace(0.0, 1.0, ny)[:, None]
    x = np.linspace(0.0, 1.0, nx)[None, :]
    phase = hour / 24.0 * 2 * np.pi
    wave = np.sin(6 * x + phase) * np.cos(4 * y)
    north = y  # 0 south .. 1 north
    if column == "tmp_2m_k":
        v = 295.0 - 30.0 * north + 4.0 * wave
    elif column == "dpt_2m_k":
        v = 285.0 - 28.0 * north + 3.0 * wave
    elif column == "snod_m":
        v = np.clip(1.2 * (north - 0.45) + 0.2 * wave, 0.0, None)
    elif column == "weasd_kg_m2":
        v = np.clip(300.0 * (north - 0.45) + 50.0 * wave, 0.0, None)
    elif column == "asnow_m":
        v = np.clip(0.02 * (hour + 1) * (wave + 0.2), 0.0, None)
    elif column == "apcp_kg_m2":
        v = np.clip(2.0 * (hour + 1) * (wave + 0.1), 0.0, None)
    elif column == "prate_kg_m2_s":
        v = np.clip(5e-4 * (wave + 0.1), 0.0, None)
    elif column == "csnow":
        v = ((wave > 0.2) & (north > 0.5)).astype(np.float64)
    elif column == "ugrd_10m_m_s":
        v = 8.0 * wave + 2.0
    elif column == "vgrd_10m_m_s":
        v = -6.0 * np.cos(5 * x + phase) * np.sin(3 * y)
    else:
        raise ValueError(f"no demo values for {column!r}")
    return np.broadcast_to(v, shape).ravel().astype(np.float64)


def write_grib(path: str | Path, specs: list[MessageSpec], run_time: dt.datetime, forecast_hour: int,
               template: Path = REAL_SUBSET, extra_messages: list[bytes] = (), packing: str | None = None) -> Path:
    """Write ``specs`` (then ``extra_messages`` verbatim) as one GRIB2 file."""
    import eccodes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h = _template_handle(template)
    try:
        with open(path, "wb") as out:
            for spec in specs:
                out.write(encode_message(h, spec, run_time, forecast_hour, packing))
            for raw in extra_messages:
                out.write(raw)
    finally:
        eccodes.codes_release(h)
    return path


def write_hrrr_hour(path: str | Path, run_time: dt.datetime, forecast_hour: int = 0,
                    columns=None, template: Path = REAL_SUBSET, packing: str | None = None) -> Path:
    """A multi-variable HRRR-like file (default: the ten snow-work variables) on the real grid.

    Each field's values are packed once per process and re-dated for every run that shares them
    (``_hour_message``): tests and the demo write the same hours, and days of hours, again and
    again, and packing one field in the template's packing takes 0.03-0.25 s (46 demo hours of
    three fields: 6.4 s before, 3.9 s)."""
    # The message depends on the run time's wall-clock fields only (it is written as given):
    # keyed without the zone, as equal instants in other zones would otherwise share a message.
    wall_clock = run_time.replace(tzinfo=None)
    template = Path(template)
    version = (template.stat().st_size, template.stat().st_mtime_ns)   # a rewritten template is another key
    columns = list(columns or CATALOGUE)
    pack = functools.partial(_hour_message, run_time=wall_clock, forecast_hour=forecast_hour, template=template,
                             _version=version, packing=packing)
    # Fields not yet packed in this process are packed on threads (ecCodes' binding releases
    # the GIL while it packs; the bytes are the same): the demo's landing 7.5 s -> 4.6 s on two
    # cores. Fields already packed are only re-dated (~2 ms).
    workers = min(len(columns), available_cpus())
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grib-pack") as pool:
            messages = list(pool.map(pack, columns))
    else:
        messages = [pack(c) for c in columns]
    return write_grib(path, [], run_time, forecast_hour, template=template, extra_messages=messages)


def _hour_message(column: str, run_time: dt.datetime, forecast_hour: int, template: Path, _version: tuple,
                  packing: str | None) -> bytes:
    """The message of ``column`` for this run and lead: the packed message of its values
    (``_packed_message``: they depend on the valid hour of day only, so a day's hours share 24)
    with the run's date set. Setting the date keys leaves the packed values as they are; the
    bytes equal a fresh encode at this date (snoiq_assets_tests/hrrr/test_synth.py), in ~2 ms
    instead of 25-250 ms."""
    import eccodes

    var = CATALOGUE[column]
    packed = _packed_message(column, run_time.hour + forecast_hour, forecast_hour, template, _version, packing)
    h = eccodes.codes_new_from_message(packed)
    try:
        eccodes.codes_set(h, "dataDate", int(run_time.strftime("%Y%m%d")))
        eccodes.codes_set(h, "dataTime", int(run_time.strftime("%H%M")))
        if var.step_type == "accum":   # its end-of-interval keys follow the date: set the range again
            eccodes.codes_set(h, "stepRange", _step_range(var.window_hours, forecast_hour))
        return eccodes.codes_get_message(h)
    finally:
        eccodes.codes_release(h)


@functools.lru_cache(maxsize=128)   # bounded: a message on the CONUS grid is 0.2-0.9 MB
def _packed_message(column: str, valid_hour: int, forecast_hour: int, template: Path, _version: tuple,
                    packing: str | None) -> bytes:
    import eccodes

    cache, key = _disk_cache(column, valid_hour, forecast_hour, template, _version, packing)
    if cache is not None:
        data = _read_cached(cache, key)
        if data is not None:
            return data
    spec = MessageSpec.for_variable(CATALOGUE[column], demo_values(column, valid_hour))
    h = _template_handle(template)
    try:
        data = encode_message(h, spec, _PACKED_AT, forecast_hour, packing)
    finally:
        eccodes.codes_release(h)
    if cache is not None:
        try:
            cache.put(key, data)   # atomic: a reader sees the whole message or none
        except (OSError, StorageError):
            pass   # a folder that cannot be written only means packing again next time
    return data


def _disk_cache(column: str, valid_hour: int, forecast_hour: int, template: Path, _version: tuple,
                packing: str | None):
    """``CACHE_ENV``'s folder (a ``LocalStore``) and this message's key in it, or (None, None) when
    no folder is set. The key is a digest of everything the bytes depend on: the arguments, the
    template's bytes, this module's and the variable catalogue's source and ecCodes' version, so
    a change to any of them packs anew."""
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        return None, None
    digest = json.dumps([_code_digest(), _file_digest(str(template), _version), column, valid_hour, forecast_hour,
                         packing])
    return LocalStore(folder), f"{hashlib.sha256(digest.encode()).hexdigest()[:40]}.grib2"


def _read_cached(cache, key: str) -> bytes | None:
    """The cached message, or None when it is missing, unreadable or not exactly one whole GRIB2
    message (``scan_framing``'s checks: indicator, stated length, end marker)."""
    from snoiq_assets.lib.hrrr import HrrrDataError
    from snoiq_assets.lib.hrrr.decode import scan_framing

    try:
        data = cache.get(key)
        if scan_framing(data, key) == [(0, len(data))]:
            return data
    except (OSError, StorageError, HrrrDataError):
        pass
    return None


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    import eccodes

    from snoiq_assets.lib.hrrr import variables

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(Path(variables.__file__).read_bytes())
    digest.update(str(eccodes.codes_get_api_version()).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, _version: tuple) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_PACKED_AT = dt.datetime(2000, 1, 1)   # the date a packed message carries until it is re-dated


def real_messages(path: Path = REAL_SUBSET) -> list[bytes]:
    """The raw bytes of each message of a real GRIB file."""
    from snoiq_assets.lib.hrrr.decode import scan_framing

    data = Path(path).read_bytes()
    return [data[off:off + length] for off, length in scan_framing(data, str(path))]
