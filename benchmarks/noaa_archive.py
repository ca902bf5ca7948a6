"""A NOAA-like HRRR archive for the benchmarks: ``hrrr.YYYYMMDD/conus/hrrr.tHHz.wrfsfcfFF.grib2``
(+ ``.idx``) in an S3 bucket, many cycles x leads, written fast.

Each lead is encoded once with ecCodes on the real grid (the ten default variables, APCP's
1-hour bucket from f02, an unselected POT message first, HRRR's own complex packing); every
other cycle is a copy with the reference time patched in section 1 of each message (octets
13-17: year, month, day, hour), which is what ecCodes' ``dataDate``/``dataTime`` set, and the
``d=`` of each ``.idx`` line rewritten to match.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from snoiq_assets.lib.hrrr import synth
from snoiq_assets.lib.hrrr.decode import idx_text, scan_framing, scan_grib
from snoiq_assets.lib.hrrr.fetch import hrrr_key
from snoiq_assets.lib.hrrr.synth import MessageSpec, demo_values
from snoiq_assets.lib.hrrr.variables import CATALOGUE, DEFAULT_VARIABLES, HOURLY_BUCKETS


def lead_template(folder: Path, run_time: dt.datetime, forecast_hour: int) -> tuple[bytes, str]:
    specs = [MessageSpec(0, 0, 2, 103, 2, "instant", demo_values("tmp_2m_k", forecast_hour) + 3.0)]
    for col in DEFAULT_VARIABLES:
        var = CATALOGUE[col]
        scale = (forecast_hour / 6.0) if var.step_type == "accum" else 1.0
        specs.append(MessageSpec.for_variable(var, demo_values(col, forecast_hour) * scale))
        if col in HOURLY_BUCKETS and col == "apcp_kg_m2" and forecast_hour >= 2:
            specs.append(MessageSpec.for_variable(HOURLY_BUCKETS[col], demo_values(col, forecast_hour) / 6.0))
    path = synth.write_grib(folder / f"f{forecast_hour:02d}.grib2", specs, run_time, forecast_hour)
    return path.read_bytes(), idx_text(scan_grib(path))


def redate(data: bytes, idx: str, old: dt.datetime, new: dt.datetime) -> tuple[bytes, str]:
    out = bytearray(data)
    for offset, _ in scan_framing(data, "template"):
        s1 = offset + 16                  # section 1 follows the 16-byte indicator section
        out[s1 + 12:s1 + 14] = new.year.to_bytes(2, "big")
        out[s1 + 14], out[s1 + 15], out[s1 + 16] = new.month, new.day, new.hour
    return bytes(out), idx.replace(f"d={old:%Y%m%d%H}", f"d={new:%Y%m%d%H}")


def build_archive(client, bucket: str, folder: Path, cycles: list[dt.datetime], leads: list[int]) -> dict:
    """Upload every (cycle, lead) to ``bucket`` under the NOAA keys; returns sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    templates = {fh: lead_template(folder, cycles[0], fh) for fh in leads}

    def upload(item):
        run, fh = item
        data, idx = templates[fh] if run == cycles[0] else redate(*templates[fh], cycles[0], run)
        key = hrrr_key(run, fh)
        client.put_object(Bucket=bucket, Key=key, Body=data)
        client.put_object(Bucket=bucket, Key=key + ".idx", Body=idx.encode())
        return len(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        sizes = list(pool.map(upload, [(run, fh) for run in cycles for fh in leads]))
    return {"objects": 2 * len(sizes), "grib_bytes_total": sum(sizes),
            "grib_bytes_per_lead": sum(sizes) / len(sizes),
            "messages_per_lead": {fh: templates[fh][1].count("\n") for fh in leads}}


def land_locally(home: Path, folder: Path, cycles: list[dt.datetime], leads: list[int]) -> dict:
    """Every (cycle, lead) landed in a local SNOIQ_HOME where hrrr_raw would put it (GRIB + .idx
    under ``raw/hrrr/``), for benchmarks that start after the fetch; returns sizes."""
    from snoiq_assets.lib.hrrr.rawkeys import landing_key

    folder.mkdir(parents=True, exist_ok=True)
    templates = {fh: lead_template(folder, cycles[0], fh) for fh in leads}
    sizes = []
    for run in cycles:
        for fh in leads:
            data, idx = templates[fh] if run == cycles[0] else redate(*templates[fh], cycles[0], run)
            dest = home / landing_key(run, fh)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            dest.with_name(dest.name + ".idx").write_text(idx)
            sizes.append(len(data))
    return {"files": len(sizes), "grib_bytes_total": sum(sizes)}
