"""A year of HRRR on paper: hours, bytes, files and partition keys for one year of the HRRR
schedule (f00-f18 every hour, f00-f48 at 00/06/12/18Z) on this machine and on N Kubernetes pods,
computed from measurements, not guessed:

- time per cycle-lead: ``results/leadtimes.json`` (``bench_leadtimes.py``: fetch from an S3
  server laid out like NOAA's, decode, check, write, join 250 stations; end to end, one
  Dagster run per 19-lead cycle on this 2-core machine);
- raw bytes per lead: the real HRRR inventory in ``data/real`` (``hrrr.t00z.wrfsfcf01.grib2.idx``
  of 2026-02-28 00Z: the byte size of each default variable's message, what hrrr_raw fetches);
- ``hrrr_fields`` bytes per lead: the four real CONUS fields in ``data/real/hrrr`` (TMP 2 m,
  APCP, ASNOW, SNOD) decoded and written with the lake's own Parquet writer; the other six
  default variables counted at the size of the real field they resemble (``LIKE``), and the
  synthetic benchmark fields' size reported beside it;
- ``hrrr_station_windows`` and ``grid_join_features`` bytes and files per lead:
  ``results/leadtimes.json`` (250 stations).

Pods: each pod is taken to be a machine like this one running one cycle at a time (the
Celery/Kubernetes executors place one run's steps per pod), scaling linearly; what that needs
from the shared store (write bandwidth) is stated, not assumed free.

Usage: ``.venv/bin/python benchmarks/year_on_paper.py [--pods 1 8 32]``. Writes
``benchmarks/results/year.json`` and prints the table the README quotes.
"""

import pyproj  # noqa: F401  isort: skip  (must load before eccodes/cfgrib)

import argparse
import datetime as dt
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import RESULTS, write_results  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real" / "hrrr"
REAL_IDX = REAL / "radarcheck_hrrr_20260228_00z_f01.idx"
REAL_FIELDS = {"tmp_2m_k": "radarcheck_hrrr_20260228_00z_f01_t2m.grib2",
               "apcp_kg_m2": "radarcheck_hrrr_20260228_00z_f01_apcp.grib2",
               "asnow_m": "radarcheck_hrrr_20260228_00z_f01_asnow.grib2",
               "snod_m": "radarcheck_hrrr_20260228_00z_f01_snod.grib2"}
# The default variables without a real sample here, sized as the real field they resemble most
# (continuous smooth fields like temperature; sparse precipitation-like fields like APCP/ASNOW).
LIKE = {"dpt_2m_k": "tmp_2m_k", "ugrd_10m_m_s": "tmp_2m_k", "vgrd_10m_m_s": "tmp_2m_k",
        "weasd_kg_m2": "snod_m", "prate_kg_m2_s": "apcp_kg_m2", "csnow": "asnow_m",
        # the stored hourly amounts (apcp_1h_kg_m2, asnow_1h_m) as their accumulations
        "apcp_1h_kg_m2": "apcp_kg_m2", "asnow_1h_m": "asnow_m"}


def real_raw_bytes_per_lead() -> dict:
    """Bytes of the ten default variables' messages in a real HRRR wrfsfc file (its .idx)."""
    from snoiq_assets.lib.hrrr.inventory import parse_idx, select
    from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve

    entries = parse_idx(REAL_IDX.read_text(), source=REAL_IDX.name)
    sizes = {}
    for var in resolve(DEFAULT_VARIABLES):
        chosen = select(entries, var.idx_pattern(1))
        sizes[var.column] = sum(e.end - e.start + 1 for e in chosen if e.end is not None)
    return {"per_variable": sizes, "total": sum(sizes.values()), "idx": REAL_IDX.name,
            "file_total": entries[-1].start}


def real_parquet_bytes_per_lead() -> dict:
    """Each real field decoded (float32, as hrrr_fields stores it) and written alone with the
    lake's Parquet writer; the per-lead total counts every stored column of hrrr_fields."""
    import eccodes
    import numpy as np
    import pyarrow as pa

    from snoiq_assets.lib.parquet import write_parquet

    measured = {}
    for column, name in REAL_FIELDS.items():
        with open(REAL / name, "rb") as fh:
            h = eccodes.codes_grib_new_from_file(fh)
            try:
                values = eccodes.codes_get_values(h).astype(np.float32)
            finally:
                eccodes.codes_release(h)
        sink = io.BytesIO()
        write_parquet(pa.table({column: values}), sink, "zstd")
        measured[column] = len(sink.getvalue())
    stored = {c: measured[c] if c in measured else measured[LIKE[c]]
              for c in [*REAL_FIELDS, *LIKE]}
    return {"measured_real_fields": measured, "per_stored_column": stored, "total": sum(stored.values()),
            "cells": int(values.size)}


def cycle_leads_per_year(year: int = 2023) -> dict:
    from snoiq_assets.lib.hrrr.leads import HRRR_SCHEDULE

    start = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)
    hours = [start + dt.timedelta(hours=h) for h in range(365 * 24)]
    return {"cycles": len(hours), "cycle_leads_19": 19 * len(hours),
            "cycle_leads_schedule": sum(len(HRRR_SCHEDULE.leads_for(t)) for t in hours)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()

    lead = json.loads((RESULTS / "leadtimes.json").read_text())
    s_per_cycle_lead = lead["wall_s"] / lead["cycle_leads"]
    per_cycle = lead["bytes_per_cycle"]
    leads_per_cycle = lead["leads_per_cycle"]
    year = cycle_leads_per_year()
    raw = real_raw_bytes_per_lead()
    fields = real_parquet_bytes_per_lead()
    join_per_lead = per_cycle["lake/grid_join_features"] / leads_per_cycle
    windows_per_lead = per_cycle.get("lake/hrrr_station_windows", 0) / leads_per_cycle
    synthetic_fields_per_lead = per_cycle["lake/hrrr_fields"] / leads_per_cycle

    def plan(n: int) -> dict:
        """Hours, bytes and files for ``n`` cycle-leads a year."""
        hours_one = n * s_per_cycle_lead / 3600
        return {
            "cycle_leads": n,
            "files": {"raw/hrrr (GRIB + .idx)": 2 * n, "lake/hrrr_fields": n, "lake/hrrr_station_windows": n,
                      "lake/grid_join_features": n},
            "bytes": {
                "raw/hrrr (GRIB subsets, real sizes)": n * raw["total"],
                "lake/hrrr_fields (real fields' Parquet)": n * fields["total"],
                "lake/hrrr_fields (synthetic benchmark fields)": n * synthetic_fields_per_lead,
                "lake/hrrr_station_windows (250 stations)": n * windows_per_lead,
                "lake/grid_join_features (250 stations)": n * join_per_lead,
            },
            "hours_on_this_machine": hours_one,
            # every pod writes what its cycle-leads produce: the shared store must take it
            "pods": {p: {"hours": hours_one / p, "days": hours_one / p / 24,
                         "store_write_mb_s": p * (raw["total"] + fields["total"] + windows_per_lead + join_per_lead)
                         / s_per_cycle_lead / 1e6} for p in args.pods},
        }

    results = {
        "year_cycles": year["cycles"],
        "partition_keys_per_hourly_asset": year["cycles"],
        "seconds_per_cycle_lead_measured": s_per_cycle_lead,
        "measured_in": f"bench_leadtimes.py: {lead['cycles']} cycles x {leads_per_cycle} leads, "
                       f"{lead['cycle_leads_per_minute']:.1f} cycle-leads/min",
        "raw_bytes_per_lead_real": raw,
        "hrrr_fields_bytes_per_lead_real": fields,
        "hrrr_fields_bytes_per_lead_synthetic": synthetic_fields_per_lead,
        "hrrr_station_windows_bytes_per_lead": windows_per_lead,
        "grid_join_features_bytes_per_lead": join_per_lead,
        "plans": {"19 leads every cycle (f00-f18)": plan(year["cycle_leads_19"]),
                  "HRRR schedule (f00-f18; f00-f48 at 00/06/12/18Z)": plan(year["cycle_leads_schedule"])},
    }
    write_results("year", results)
    print(f"\none year: {year['cycles']:,} partition keys per hourly asset; {s_per_cycle_lead:.3f} s per cycle-lead")
    for name, p in results["plans"].items():
        print(f"{name}: {p['cycle_leads']:,} cycle-leads, {p['hours_on_this_machine']:,.0f} h on this machine; "
              + "; ".join(f"{k} pods {v['hours']:,.1f} h (store writes {v['store_write_mb_s']:.0f} MB/s)"
                          for k, v in p["pods"].items()))
        for k, v in p["bytes"].items():
            print(f"  {k}: {v / 1e12:.2f} TB")
        print("  files: " + ", ".join(f"{k} {v:,}" for k, v in p["files"].items()))

if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
