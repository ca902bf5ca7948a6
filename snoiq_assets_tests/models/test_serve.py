"""The champion the pipeline registers, served by the real `mlflow models serve` CLI (as the
README shows it: the registered alias, `--env-manager local`, on 127.0.0.1 and a free port),
answers a real HTTP /invocations request with what the model store's loader predicts.

Both backends: on s3 the served model's artifacts are read from the bucket, with the
credentials given to the server through its environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from snoiq_assets.defs.features.assets import training_table
from snoiq_assets.defs.models.champion import champion_model
from snoiq_assets.defs.models.training import trained_models
from snoiq_assets.lib.models.evaluate import feature_matrix
from snoiq_assets.lib.models.store import champion_key, load_bundle
from snoiq_assets_tests.models.conftest import (
    PORTLAND_SPEC as SPEC, STATION, STATION_ASSETS, TABLE_UPSTREAM, land_spec, train_run_config,
)

ASSETS = [*STATION_ASSETS, *TABLE_UPSTREAM, training_table, trained_models, champion_model]
MLFLOW = Path(sys.executable).parent / "mlflow"
# Server start-up (imports, gunicorn/uvicorn workers) on a loaded 2-core machine; not a
# timing assert, only how long to wait before calling it a failure.
READY_DEADLINE_S = 300
# Trains a model and starts a server: about a minute and a half per backend on a quiet machine.
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow models serve exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError(f"mlflow models serve not ready after {READY_DEADLINE_S} s:\n{log.read_text()[-4000:]}")


def test_mlflow_models_serve_answers_like_the_model_store(settings_env, instance, model_resources, mlflow_res,
                                                          gsod_observations, store, tmp_path):
    land_spec(instance, store, SPEC)     # the demo's Portland daily precipitation spec
    res = dg.materialize(ASSETS, selection=["training_table", "trained_models", "champion_model"],
                         instance=instance, resources=model_resources, partition_key=SPEC,
                         run_config=train_run_config(model_types=["xgboost"]))
    assert res.success
    md = res.asset_materializations_for_node("champion_model")[0].metadata
    assert md["promoted"].value is True
    registered = md["registered_model"].value

    champ = store.get_json(champion_key(STATION, "precip_mm"))
    stored_model, meta = load_bundle(store, champ["model_prefix"])
    features = meta["features"]
    with store.local_path(f"lake/training_table/{SPEC}.parquet") as path:
        rows = pl.read_parquet(path).filter(pl.col("location") == STATION).tail(40)
    X = feature_matrix(rows, features)
    expected = stored_model.predict(X)

    port = free_port()
    # As the README runs it: the venv's bin first on PATH (the server execs `uvicorn` from PATH;
    # `.venv/bin/mlflow` alone fails with "exec: uvicorn: not found").
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_res.tracking_uri,
           "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if settings_env.profile == "s3":
        env.update(MLFLOW_S3_ENDPOINT_URL=settings_env.s3_endpoint, AWS_ACCESS_KEY_ID=settings_env.access_key_id,
                   AWS_SECRET_ACCESS_KEY=settings_env.secret_access_key)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["mlflow", "models", "serve", "-m", f"models:/{registered}@champion", "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}/ping", log)
        body = json.dumps({"dataframe_split": {"columns": features, "data": X.tolist()}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as resp:
            answer = json.loads(resp.read())
        served = np.asarray(answer["predictions"], dtype=float)
        assert served.shape == (len(rows),)
        assert np.allclose(served, expected, rtol=1e-6, atol=1e-9), (served[:5], expected[:5])
        assert np.ptp(expected) > 0   # real, varying predictions, not a constant

        # A request without the model's features is refused with its reason, not answered.
        bad = json.dumps({"dataframe_split": {"columns": ["nope"], "data": [[1.0]]}}).encode()
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=bad,
                                                          headers={"Content-Type": "application/json"}), timeout=120)
            raise AssertionError("a request without the features was answered")
        except urllib.error.HTTPError as err:
            text = err.read().decode()
            assert err.code == 400 and "missing inputs" in text and features[0] in text, text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
