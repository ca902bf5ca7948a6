"""Station parsing benchmarks (ratios against same-process baselines).

1. A year of USCRN hourly02 (8760 lines built by repeating the real CO Nunn lines with shifted
   UTC/LST timestamps) through ``parsers.parse_native`` vs ``polars.read_csv`` of a CSV with the
   same rows and 38 columns. Target: within 2x. The two are alternated (41 runs each): the
   machine is shared, so minima and the median of paired ratios are both recorded.
2. The real GSOD file: our parse + to_clean + validate vs the old pandas approach (format +
   validate + filter with per-column functions, as the Rhizome pipeline did).

Writes benchmarks/results/stations.json. Run: .venv/bin/python benchmarks/bench_stations.py
"""

import datetime as dt
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from snoiq_assets.lib.stations import parsers
from snoiq_assets.lib.stations.validate import validate

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


def best(fn, n=7):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def paired(fn_a, fn_b, n=41):
    """Alternate a and b (the machine is shared: load changes between runs); per-pair ratios.

    Returns (min a, min b, median a, median b, median of the paired ratios a/b)."""
    ta, tb = [], []
    for _ in range(n):
        for fn, ts in ((fn_a, ta), (fn_b, tb)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return min(ta), min(tb), statistics.median(ta), statistics.median(tb), statistics.median(a / b for a, b in zip(ta, tb))


def year_of_hourly02() -> bytes:
    lines = (SAMPLE / "uscrn/CRNH0203-2023-CO_Nunn_7_NNE.head48.txt").read_text().splitlines()
    start = dt.datetime(2023, 1, 1, 1)
    out = []
    for i in range(8760):
        src = lines[i % len(lines)]
        utc = start + dt.timedelta(hours=i)
        lst = utc - dt.timedelta(hours=7)
        out.append(src[:6] + utc.strftime("%Y%m%d %H%M") + " " + lst.strftime("%Y%m%d %H%M") + src[33:])
    return ("\n".join(out) + "\n").encode()


def same_shape_csv(data: bytes) -> bytes:
    fmt, native = parsers.parse_native(data, "year.txt")
    cols = [f.lower() for f, _, _ in parsers.USCRN_HOURLY02_FIELDS]
    return native.select(cols).write_csv().encode()


def old_pandas_gsod(path: Path) -> pd.DataFrame:
    """The Rhizome-style pipeline: pandas read, per-column format functions, validate, filter."""
    df = pd.read_csv(path, dtype=str)

    def to_float(col, missing):
        s = pd.to_numeric(df[col].str.strip(), errors="coerce")
        return s.where(s != missing)

    def f_to_c(s):
        return (s - 32) * 5 / 9

    out = pd.DataFrame({
        "date": pd.to_datetime(df["DATE"], utc=True),
        "air_temp_c": f_to_c(to_float("TEMP", 9999.9)),
        "air_temp_max_c": f_to_c(to_float("MAX", 9999.9)),
        "air_temp_min_c": f_to_c(to_float("MIN", 9999.9)),
        "dew_point_c": f_to_c(to_float("DEWP", 9999.9)),
        "precip_mm": to_float("PRCP", 99.99) * INCH_MM,
        "snow_depth_mm": to_float("SNDP", 999.9) * INCH_MM,
        "wind_speed_ms": to_float("WDSP", 999.9) * KNOT_MS,
        "pressure_hpa": to_float("SLP", 9999.9),
    })
    checks = {
        "air_temp_c": lambda s: s.between(-90, 60), "air_temp_max_c": lambda s: s.between(-90, 60),
        "air_temp_min_c": lambda s: s.between(-90, 60), "dew_point_c": lambda s: s.between(-90, 40),
        "precip_mm": lambda s: s.between(0, 2000), "snow_depth_mm": lambda s: s.between(0, 12000),
        "wind_speed_ms": lambda s: s.between(0, 115), "pressure_hpa": lambda s: s.between(850, 1090),
    }
    for col, fn in checks.items():
        ok = out[col].apply(lambda v, fn=fn: bool(np.isnan(v)) or bool(fn(pd.Series([v])).iloc[0]))
        out.loc[~ok, col] = np.nan
    return out[out["date"].notna()].drop_duplicates("date")


def ours_gsod(data: bytes):
    fmt, native = parsers.parse_native(data, "gsod.csv")
    return validate(parsers.to_clean(native, fmt, "72698024229"))


def main():
    year = year_of_hourly02()
    csv = same_shape_csv(year)
    t_ours, t_csv, med_ours, med_csv, med_ratio = paired(
        lambda: parsers.parse_native(year, "year.txt"), lambda: pl.read_csv(io.BytesIO(csv)))
    gsod_path = SAMPLE / "station_obs/gsod_72698024229_KPDX_2016-2024.csv"
    gsod = gsod_path.read_bytes()
    t_ours_g = best(lambda: ours_gsod(gsod))
    t_pd = best(lambda: old_pandas_gsod(gsod_path), n=3)
    res = {
        "uscrn_hourly02_year": {"rows": 8760, "columns": 38, "ours_s": t_ours, "polars_read_csv_s": t_csv,
                                "ratio_ours_over_read_csv": t_ours / t_csv, "target": "<= 2.0",
                                "timing": "41 alternated runs each; *_s are minima, median_* medians",
                                "median_ours_s": med_ours, "median_polars_read_csv_s": med_csv,
                                "median_paired_ratio": med_ratio},
        "gsod_kpdx": {"rows": 2923, "ours_parse_clean_validate_s": t_ours_g, "old_pandas_s": t_pd,
                      "speedup_vs_pandas": t_pd / t_ours_g},
    }
    print(f"USCRN hourly02, 8760 x 38: ours {t_ours*1e3:.1f} ms, polars.read_csv {t_csv*1e3:.1f} ms, "
          f"ratio {t_ours/t_csv:.2f}x of minima, {med_ratio:.2f}x median of paired runs (target <= 2x)")
    print(f"GSOD KPDX, 2923 rows: ours {t_ours_g*1e3:.1f} ms, old pandas {t_pd*1e3:.1f} ms, speedup {t_pd/t_ours_g:.1f}x")
    out = ROOT / "benchmarks" / "results" / "stations.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
