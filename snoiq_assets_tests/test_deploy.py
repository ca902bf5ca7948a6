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
