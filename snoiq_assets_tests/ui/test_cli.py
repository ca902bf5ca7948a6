"""What a user's CI would run: `dagster asset materialize` on the real code location, as a
subprocess, on the bundled data (local profile, temp homes), then checks of what it wrote.

The deeper hrrr range test (hrrr_fields decoded over three hours) is in
snoiq_assets_tests/hrrr/test_backfill.py; here the range case lands hrrr_raw only.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.hrrr.demo import SYNTH_PARTITIONS
from snoiq_assets.defs.hrrr.demo import seed_demo as seed_hrrr
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.stations import schema
from snoiq_assets_tests.helpers import keep_synth_cache
from snoiq_assets_tests.ui.conftest import REPO, STATION, Homes, keep_copy, make_homes

CODE_MODULE = "snoiq_assets.definitions"
USCRN_FILE = REPO / "data" / "sample" / "uscrn" / "CRNH0203-2023-CO_Nunn_7_NNE.head48.txt"
UTC = dt.timezone.utc


def materialize(homes: Homes, *args: str, log_name: str) -> subprocess.CompletedProcess:
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run([str(dagster), "asset", "materialize", "-m", CODE_MODULE, *args],
                          cwd=REPO, env=homes.env(), capture_output=True, text=True, timeout=900)
    log = homes.dagster_home.parent / f"{log_name}.log"
    log.write_text(f"$ dagster asset materialize {' '.join(args)}\nexit {proc.returncode}\n"
                   f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    keep_copy(log, "cli")
    return proc


@pytest.fixture(scope="module")
def homes(tmp_path_factory) -> Homes:
    return make_homes(tmp_path_factory.mktemp("ui_cli"))


def uscrn_rows() -> list[dict]:
    """The CO Nunn file read independently of our parser (USCRN hourly02 column order)."""
    rows = []
    for line in USCRN_FILE.read_text().splitlines():
        f = line.split()
        end = dt.datetime.strptime(f[1] + f[2], "%Y%m%d%H%M").replace(tzinfo=UTC)
        t_hr_avg, p_calc = float(f[9]), float(f[12])
        rows.append({"station": f[0], "timestamp_utc": end,
                     "air_temp_c": None if t_hr_avg == -9999.0 else t_hr_avg,
                     "precip_mm": None if p_calc == -9999.0 else p_calc})
    return rows


def test_materialize_station_partition(homes):
    select = "observations_raw,observations_clean,observations_rejects"
    proc = materialize(homes, "--select", select, "--partition", STATION, log_name="station_94074")
    assert proc.returncode == 0, proc.stderr[-4000:]

    clean_path = homes.snoiq_home / "lake" / "observations_clean" / f"{STATION}.parquet"
    assert clean_path.is_file()
    clean = pl.read_parquet(clean_path)
    rejects = pl.read_parquet(homes.snoiq_home / "lake" / "observations_rejects" / f"{STATION}.parquet")
    assert list(clean.columns) == list(schema.CLEAN)
    assert dict(clean.schema) == schema.CLEAN

    src = uscrn_rows()
    assert {r["station"] for r in src} == {STATION}
    dropped = rejects.filter(pl.col("action") == "dropped")["line_no"].n_unique()
    assert clean.height == len(src) - dropped
    assert dropped == 0   # the bundled 48 hours are all readable and in order
    assert clean["station_id"].unique().to_list() == [STATION]
    assert clean["resolution"].unique().to_list() == ["hourly"]
    assert clean["timestamp_utc"].to_list() == [r["timestamp_utc"] for r in src]
    assert clean["timestamp_utc"][0] == dt.datetime(2023, 1, 1, 1, tzinfo=UTC)
    # Values as in the file wherever validation did not null them.
    nulled = {(c, n) for c, n in rejects.filter(pl.col("action") == "nulled").select("column", "line_no").rows()}
    for col in ("air_temp_c", "precip_mm"):
        for got, want, line_no in zip(clean[col].to_list(), [r[col] for r in src], clean["line_no"].to_list()):
            assert got == (None if (col, line_no) in nulled else want), (col, line_no)
    assert clean["air_temp_c"][0] == 4.5

    with homes.instance() as instance:
        for asset in ("observations_raw", "observations_clean", "observations_rejects"):
            key = dg.AssetKey(asset)
            assert instance.get_materialized_partitions(key) == {STATION}, asset
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("observations_clean"), asset_partitions=[STATION]), limit=1
        ).records[0]
        meta = record.asset_materialization.metadata
        assert meta["rows_clean"].value == clean.height
        assert meta["rejects"].value == rejects.height
        run = instance.get_run_by_id(record.run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == STATION
        # the blocking reject-share check ran on the partition and passed
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("observations_clean"), "observations_reject_share"), limit=5)
        assert [c.status.value for c in checks] == ["SUCCEEDED"]


def test_materialize_unknown_partition_fails(homes):
    """A partition nobody registered is refused with its name, and nothing is written."""
    proc = materialize(homes, "--select", "observations_raw", "--partition", "99999", log_name="unknown_partition")
    assert proc.returncode != 0
    assert "partition key `99999`" in proc.stderr
    assert not (homes.snoiq_home / "lake" / "observations_raw" / "99999.parquet").exists()


def test_materialize_hourly_partition_range(homes):
    """`--partition-range` over three hourly partitions of hrrr_raw (single-run backfill policy)."""
    seed_hrrr(homes.store, synth_partitions=SYNTH_PARTITIONS)
    first, last = SYNTH_PARTITIONS[0], SYNTH_PARTITIONS[-1]
    proc = materialize(homes, "--select", "hrrr_raw", "--partition-range", f"{first}...{last}",
                       log_name="hrrr_raw_range")
    assert proc.returncode == 0, proc.stderr[-4000:]
    with homes.instance() as instance:
        assert instance.get_materialized_partitions(dg.AssetKey("hrrr_raw")) == set(SYNTH_PARTITIONS)
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/asset_partition_range_start": first}))
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].tags["dagster/asset_partition_range_end"] == last
    for pk in SYNTH_PARTITIONS:
        key = landing_key(dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=UTC), 0)
        assert homes.store.exists(key) and homes.store.exists(key + ".idx"), key


def readme_block(heading: str) -> str:
    """The first ```bash block under ``## <heading>`` in the README, as a user copies it."""
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"## {heading}\n", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_readme_ci_commands_verbatim_on_a_fresh_home(tmp_path):
    """The README's "From CI" block, run as written with bash in the repo, on a SNOIQ_HOME that
    does not exist yet and no DAGSTER_HOME: it creates the instance, lands the samples,
    registers the partition it names and materialises; no Dagster beta/preview/supersession
    warning and no dg venv warning is printed."""
    block = readme_block("From CI")
    assert "make land" in block and "dg launch" in block
    home = tmp_path / "fresh_home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNOIQ_", "AWS_", "DAGSTER_", "MLFLOW_", "VIRTUAL_ENV", "MAKE"))}
    env["SNOIQ_HOME"] = str(home)
    keep_synth_cache(env)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    log = tmp_path / "readme_ci.log"
    log.write_text(f"$ bash -c <README From CI>\nexit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    keep_copy(log, "cli")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    noise = [line for line in output.splitlines()
             if re.search(r"(Beta|Preview|Supersession|Deprecation)Warning|virtual environment does not match", line)]
    assert noise == []
    assert "All definitions loaded successfully" in output

    clean = pl.read_parquet(home / "lake" / "observations_clean" / f"{STATION}.parquet")
    assert clean.height == len(uscrn_rows()) and clean["air_temp_c"][0] == 4.5
    for pk in SYNTH_PARTITIONS:
        fields = pl.read_parquet(home / "lake" / "hrrr_fields" / pk / "f00.parquet")   # the default lead
        assert fields.height == 1059 * 1799   # every cell of the CONUS grid
    homes = Homes(home / "dagster_home", home)
    with homes.instance() as instance:
        assert STATION in instance.get_dynamic_partitions("station_files")
        assert instance.get_materialized_partitions(dg.AssetKey("observations_clean")) == {STATION}
        assert instance.get_materialized_partitions(dg.AssetKey("hrrr_fields")) == set(SYNTH_PARTITIONS)
        runs = instance.get_runs()
        assert len(runs) == 3 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
