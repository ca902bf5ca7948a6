"""The compose stack validates with the real Compose v2 binary and matches the README."""

import os
import re
import subprocess
from pathlib import Path

import compose
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_BIN = Path(os.path.dirname(compose.__file__)) / "docker-compose"


def compose_config(*args: str, env_file: Path) -> subprocess.CompletedProcess:
    # The package's console-script wrapper always exits 0: call the binary itself.
    return subprocess.run(
        [str(COMPOSE_BIN), "-f", str(REPO / "docker-compose.yml"), "--env-file", str(env_file), "config", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )


def test_compose_file_validates():
    proc = compose_config("-q", env_file=REPO / ".env.example")
    assert proc.returncode == 0, proc.stderr


def test_compose_rejects_missing_credentials(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = compose_config("-q", env_file=empty)
    assert proc.returncode != 0
    assert re.search(r"required variable \w+ is missing a value: set \w+ in \.env", proc.stderr), proc.stderr


@pytest.fixture(scope="module")
def rendered():
    proc = compose_config("--format", "json", env_file=REPO / ".env.example")
    assert proc.returncode == 0, proc.stderr
    import json

    return json.loads(proc.stdout)


def test_services_and_ports_match_readme(rendered):
    services = rendered["services"]
    assert set(services) == {"minio", "minio_init", "postgres", "mlflow", "snoiq_code", "dagster_webserver", "dagster_daemon"}
    published = {
        name: sorted(int(p["published"]) for p in svc.get("ports", []))
        for name, svc in services.items() if svc.get("ports")
    }
    assert published == {"minio": [9000, 9001], "postgres": [5432], "mlflow": [5000], "dagster_webserver": [3000]}
    for svc in services.values():  # nothing listens beyond loopback unless told
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1"
    readme = (REPO / "README.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| ([\d,]+|-) \|", readme, flags=re.M))
    for name in services:
        expected = ",".join(str(p) for p in published.get(name, [])) or "-"
        assert table.get(name) == expected, f"README table row for {name}"


def test_secrets_only_from_env_file(rendered):
    text = (REPO / "docker-compose.yml").read_text()
    assert "change-me" not in text  # values live in .env, never in the compose file
    mlflow = rendered["services"]["mlflow"]
    assert "postgresql://" not in " ".join(mlflow["command"])  # password not on the command line


def test_dagster_yaml_uses_postgres_queue_and_docker_launcher():
    cfg = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert "postgres" in cfg["storage"]
    assert cfg["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert cfg["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert cfg["concurrency"]["pools"]["default_limit"] >= 1
    assert cfg["run_launcher"]["class"] == "DockerRunLauncher"
    ws = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert ws["load_from"][0]["grpc_server"]["host"] == "snoiq_code"
    assert ws["load_from"][0]["grpc_server"]["port"] == 4000


def test_dagster_yaml_is_a_valid_instance_config():
    from dagster._core.instance.config import dagster_instance_config

    for name in ("dagster.yaml", "dagster.local.yaml"):
        # Raises DagsterInvalidConfigError on an unknown key or a wrong type.
        dagster_instance_config(str(REPO), config_filename=name)


# ----- the compose stack's Postgres users, against a real PostgreSQL ------------------------

@pytest.fixture(scope="module")
def postgres(tmp_path_factory, rendered):
    """A real PostgreSQL 16 (``postgres_server.RealPostgres``), set up as the compose stack's
    ``postgres`` image sets itself up from .env: the POSTGRES_USER superuser with its password,
    the POSTGRES_DB database, then deploy/postgres-init.sql run as that user; then password
    authentication on every connection, as in the image. Yields the socket folder (libpq's
    ``host``)."""
    from snoiq_assets_tests.postgres_server import RealPostgres

    env = rendered["services"]["postgres"]["environment"]
    user, password, db = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    with RealPostgres(tmp_path_factory.mktemp("postgres") / "data") as server:
        server.psql(f"CREATE ROLE {user} SUPERUSER LOGIN PASSWORD '{password}';\n"
                    f"CREATE DATABASE {db} OWNER {user};\n")
        server.require_passwords()
        wrong = server.psql_as(user, "not-it", db, "-c", "SELECT 1")
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr, wrong.stderr
        init = server.psql_as(user, password, db, "-f", str(REPO / "deploy" / "postgres-init.sql"))
        assert init.returncode == 0, init.stderr
        yield server.socket_dir


def test_dagster_yaml_instance_runs_on_postgres(postgres, rendered, tmp_path, monkeypatch):
    """dagster.yaml as the webserver, daemon and runs load it, with the environment the compose
    file gives them (credentials, DAGSTER_EVENT_BATCH_SIZE), against a real Postgres: two
    single-run backfills of three hourly partitions through the project's IO manager, one with
    a failed partition, one whose materialisations Dagster writes as one batch, store both runs,
    a materialisation (naming its own file) for each good partition, and the failed one as
    failed. With a bare ``postgresql`` scheme SQLAlchemy 2.1 asks for psycopg 3, which is not
    installed: no Dagster process of the stack could start."""
    import dagster as dg
    import polars as pl

    from snoiq_assets.defs.failures import StoreGoodThenFail, partial_failure
    from snoiq_assets.defs.resources import build_resources
    from snoiq_assets.lib.failures import PartialFailures
    from snoiq_assets.settings import Settings

    cfg = yaml.safe_load((REPO / "dagster.yaml").read_text())
    run_env = cfg.pop("run_launcher")["config"]["env_vars"]   # Docker is not on this machine
    # The compose network's host "postgres" is this server's socket here: libpq takes the
    # `host` parameter over the URL's host.
    cfg["storage"]["postgres"]["postgres_db"]["params"] = {"host": postgres}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg))
    compose_env = rendered["services"]["dagster_daemon"]["environment"]
    for name in [n for n in run_env if n.startswith("DAGSTER_")]:   # what a run's container gets
        monkeypatch.setenv(name, compose_env[name])
    assert int(os.environ["DAGSTER_EVENT_BATCH_SIZE"]) > 1

    hours = dg.HourlyPartitionsDefinition(start_date="2024-01-01T00", fmt="%Y-%m-%dT%H")
    keys = [f"2024-01-01T{h:02d}" for h in range(6)]
    bad = keys[1]

    @dg.asset(partitions_def=hours, backfill_policy=dg.BackfillPolicy.single_run())
    def hourly_counts(context: dg.AssetExecutionContext):
        frames = {pk: pl.DataFrame({"hour": [pk], "count": [i]}) for i, pk in enumerate(context.partition_keys)}
        if bad not in frames:
            return frames
        failures = PartialFailures("hourly_counts", list(context.partition_keys))
        failures.add(bad, "the source file is truncated")
        del frames[bad]
        return StoreGoodThenFail(frames, partial_failure(failures, "the good partitions are stored"))

    def backfill(instance, first: str, last: str) -> dg.ExecuteInProcessResult:
        return dg.materialize([hourly_counts], instance=instance, resources=resources, raise_on_error=False,
                              tags={"dagster/asset_partition_range_start": first,
                                    "dagster/asset_partition_range_end": last})

    resources = build_resources(Settings.from_env({"SNOIQ_HOME": str(tmp_path / "lake")}))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        failed_run = backfill(instance, keys[0], keys[2])   # the good partitions' events one by one
        good_run = backfill(instance, keys[3], keys[5])     # the partitions' events in one batch
        assert (failed_run.success, good_run.success) == (False, True)
        statuses = {r.dagster_run.run_id: r.dagster_run.status for r in instance.get_run_records()}
        assert statuses == {failed_run.run_id: dg.DagsterRunStatus.FAILURE, good_run.run_id: dg.DagsterRunStatus.SUCCESS}
    with dg.DagsterInstance.from_config(str(home)) as instance:   # as another process sees it
        key = dg.AssetKey("hourly_counts")
        good = [k for k in keys if k != bad]
        assert instance.get_materialized_partitions(key) == set(good)
        records = instance.fetch_materializations(key, limit=10).records
        uris = {r.partition_key: r.asset_materialization.metadata["uri"].value for r in records}
        assert sorted(uris) == good
        for pk, uri in uris.items():   # each partition's event names its own file
            assert pl.read_parquet(uri)["hour"].to_list() == [pk]
        status = instance.get_status_by_partition(key, keys, hours)
        assert status == {k: dg.AssetPartitionStatus.FAILED if k == bad else dg.AssetPartitionStatus.MATERIALIZED
                          for k in keys}, status


def test_mlflow_backend_store_uri_opens_on_postgres(postgres, rendered, tmp_path):
    """The compose file's MLFLOW_BACKEND_STORE_URI, pointed at this server, opens MLflow's
    tracking store (its migrations run in the ``mlflow`` database deploy/postgres-init.sql
    creates) and keeps a run's metric."""
    from urllib.parse import urlparse

    from mlflow.entities import Metric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = urlparse(rendered["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"])
    assert (uri.hostname, uri.port, uri.path) == ("postgres", 5432, "/mlflow")
    store = SqlAlchemyStore(uri._replace(query=f"host={postgres}").geturl(), str(tmp_path / "artifacts"))
    try:
        experiment_id = store.create_experiment("compose-check")
        run = store.create_run(experiment_id, user_id="ci", start_time=0, tags=[], run_name="check")
        store.log_metric(run.info.run_id, Metric("rmse", 1.25, 0, 0))
        assert store.get_run(run.info.run_id).data.metrics == {"rmse": 1.25}
    finally:
        store.engine.dispose()


def test_process_that_decodes_grib_and_uses_postgres_exits_cleanly(postgres, rendered):
    """A run on the compose stack's instance decodes GRIB (ecCodes) and talks to Postgres
    (psycopg2) in one process. The two wheels bundle different OpenLDAP libraries: with
    ecCodes loaded first, such a process died of SIGSEGV at exit (exit 139) after its work was
    done; the package loads libpq first (snoiq_assets/__init__.py), unless ecCodes is loaded
    already."""
    env = rendered["services"]["postgres"]["environment"]
    code = (   # ecCodes before Dagster's Postgres storage, as in a process whose asset code runs first
        "import snoiq_assets\n"
        "from snoiq_assets.lib.hrrr.decode import scan_grib\n"
        f"messages = scan_grib({str(REPO / 'data/sample/hrrr/radarcheck_hrrr_20260228_00z_f01_t2m.grib2')!r})\n"
        "import psycopg2\n"
        f"conn = psycopg2.connect(host={postgres!r}, user={env['POSTGRES_USER']!r}, "
        f"password={env['POSTGRES_PASSWORD']!r}, dbname={env['POSTGRES_DB']!r})\n"
        "with conn.cursor() as cur:\n"
        "    cur.execute('SELECT 1')\n"
        "    assert cur.fetchone() == (1,)\n"
        "conn.close()\n"
        "print(len(messages), 'message(s)')\n"
    )
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip() == "1 message(s)"
    # A script that imports ecCodes before the package (bench_hrrr.py does): the package must
    # not load libpq then, which would crash it at exit on the import alone.
    first = subprocess.run([sys.executable, "-c", "import eccodes, snoiq_assets.definitions"],
                           capture_output=True, text=True, timeout=120, cwd=REPO)
    assert first.returncode == 0, (first.returncode, first.stderr[-2000:])
