"""HRRR decode benchmark: hrrr_fields' decode vs a bare ecCodes decode, same process, same messages.

Writes benchmarks/results/hrrr.json and prints the ratios. The file is ten default variables on
the real HRRR grid (1799x1059), written with ecCodes from the real APCP message.
Peak memory is measured in a child process that decodes one partition (ru_maxrss).
"""

import pyproj  # noqa: F401  isort: skip  (must load before eccodes)

import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import eccodes
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snoiq_assets.lib.hrrr.decode import decode_fields  # noqa: E402
from snoiq_assets.lib.hrrr.synth import write_hrrr_hour  # noqa: E402
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve  # noqa: E402

REPEATS = 5


def bare(path):
    """Read each message and decode its values to float32, NaN for missing (same output)."""
    out = []
    with open(path, "rb") as fh:
        while True:
            h = eccodes.codes_grib_new_from_file(fh)
            if h is None:
                break
            try:
                v = eccodes.codes_get_values(h).astype(np.float32)
                if eccodes.codes_get(h, "bitmapPresent"):
                    v[v == eccodes.codes_get(h, "missingValue")] = np.nan
                out.append(v)
            finally:
                eccodes.codes_release(h)
    return out


def ours(path):
    return decode_fields(path, resolve(DEFAULT_VARIABLES), 0)


def peak_child(path):
    code = (
        "import pyproj, resource, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from snoiq_assets.lib.hrrr.decode import decode_fields\n"
        "from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve\n"
        "import pyarrow.parquet as pq, tempfile, os\n"
        f"t, s = decode_fields({str(path)!r}, resolve(DEFAULT_VARIABLES), 0)\n"
        "d = tempfile.mkdtemp(); pq.write_table(t, os.path.join(d, 'p.parquet'), compression='zstd')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = write_hrrr_hour(Path(tmp) / "hrrr.t00z.wrfsfcf00.grib2",
                               dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc), 0)
        ours(path), bare(path)  # warm up (imports, page cache)
        t_ours, t_bare = [], []
        for _ in range(REPEATS):  # interleaved, so machine load hits both alike
            t = time.perf_counter(); bare(path); t_bare.append(time.perf_counter() - t)
            t = time.perf_counter(); ours(path); t_ours.append(time.perf_counter() - t)
        peak = peak_child(path)
    ratio = statistics.median(t_ours) / statistics.median(t_bare)
    result = {
        "what": "decode one partition, 10 default variables, real HRRR grid 1799x1059",
        "repeats": REPEATS,
        "hrrr_fields_decode_s_median": statistics.median(t_ours),
        "bare_eccodes_s_median": statistics.median(t_bare),
        "ratio_vs_bare_eccodes": ratio,
        "ratio_target": 1.3,
        "ratio_met": ratio <= 1.3,
        "peak_rss_bytes_one_partition": peak,
        "peak_rss_target_bytes": int(1.5 * 2**30),
        "peak_met": peak < 1.5 * 2**30,
        "self_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    out = ROOT / "benchmarks" / "results" / "hrrr.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"hrrr_fields decode {result['hrrr_fields_decode_s_median']:.3f}s vs bare ecCodes "
          f"{result['bare_eccodes_s_median']:.3f}s: ratio {ratio:.2f}x (target 1.3x)")
    print(f"peak RSS one partition: {peak / 2**20:.0f} MiB (target < 1536 MiB)")


if __name__ == "__main__":
    main()
