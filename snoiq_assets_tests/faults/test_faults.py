"""Fault injection: the S3 server killed and the step worker SIGKILLed at named points
(mid-write, mid-quarantine), then a re-run. After it: nothing lost, nothing duplicated, nothing
half-written visible, a clear error, and lake and catalogue in agreement.

Modelled on Dagster's daemon crash-recovery tests; the points are in ``harness.py``. The
corrupt-GRIB corpus (truncations, a flipped byte in each section, empty and non-GRIB files) is
in ``hrrr/test_isolation.py``; unsafe names and links in ``stations/test_landing_names.py``.
"""

import pyproj  # noqa: F401  isort: skip

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

from snoiq_assets.defs.hrrr.assets import hrrr_grid
from snoiq_assets.defs.hrrr.demo import seed_synthetic_hours
from snoiq_assets.defs.resources import build_resources
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.lake import lead_object_key
from snoiq_assets.lib.storage import S3Store
from snoiq_assets.settings import Settings
from snoiq_assets_tests.faults import harness
from snoiq_assets_tests.faults.scenarios import PKS, VARIABLES, fields_range, run_of
from snoiq_assets_tests.helpers import failure_messages
from snoiq_assets_tests.hrrr.test_grid_decode import ec_values
from snoiq_assets_tests.s3server import SeaweedS3

FIELDS = dg.AssetKey("hrrr_fields")


@pytest.fixture
def outage(tmp_path, monkeypatch):
    """A SeaweedFS server of its own (killed by the test), the settings and resources on it."""
    server = SeaweedS3(tmp_path / "weed").start()
    env = {**server.env(server.create_bucket()), "SNOIQ_HOME": str(tmp_path / "home")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings.from_env(env)
    yield server, S3Store(settings, timeout_s=5, retries=0), build_resources(settings)
    harness.disarm()
    server.stop()


def _prepare(store, resources, instance, bad: str | None = None) -> dict[str, bytes]:
    seed_synthetic_hours(store, PKS, columns=VARIABLES)
    cfg = {"ops": {"hrrr_grid": {"config": {"source_key": landing_key(run_of(PKS[0]), 0)}}}}
    assert dg.materialize([hrrr_grid], resources=resources, instance=instance, run_config=cfg).success
    if bad:
        key = landing_key(run_of(bad), 0)
        store.put(key, store.get(key)[:5000])   # truncated inside its message
    return {pk: store.get(landing_key(run_of(pk), 0)) for pk in PKS}


def _lake(store) -> list[str]:
    """Partitions (cycles) visible in the lake (what any reader lists): each lead file is
    ``lake/hrrr_fields/<cycle>/fFF.parquet``."""
    return sorted({i.key.split("/")[2].removesuffix(".parquet") for i in store.list("lake/hrrr_fields/")})


def _assert_consistent(store, instance, raw: dict[str, bytes], expect_written: list[str], bad: str | None = None):
    """Lake = catalogue = expected; values exact; raw and quarantine hold every input once."""
    assert _lake(store) == sorted(instance.get_materialized_partitions(FIELDS)) == expect_written
    for pk in expect_written:
        with store.local_path(lead_object_key(FIELDS, pk, 0)) as p:
            got = pq.read_table(p).column("tmp_2m_k").to_numpy()
        with store.local_path(landing_key(run_of(pk), 0)) as p:
            assert np.array_equal(got, ec_values(p, 1).astype(np.float32)), pk
    for pk, data in raw.items():   # nothing lost: each input is in raw/ or (the bad one) in quarantine/
        key = landing_key(run_of(pk), 0)
        if pk == bad:
            assert not store.exists(key) and store.get("quarantine/" + key) == data
            assert "truncated" in store.get_json("quarantine/" + key + ".reason.json")["reason"]
        else:
            assert store.get(key) == data
    quarantined = [i.key for i in store.list("quarantine/") if not i.key.endswith(".reason.json")]
    assert quarantined == ([f"quarantine/{landing_key(run_of(bad), 0)}", f"quarantine/{landing_key(run_of(bad), 0)}.idx"]
                           if bad else [])


def _rerun(resources, instance, ok: bool = True):
    assets, kwargs = fields_range()
    res = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False, **kwargs)
    assert res.success is ok
    return res


def test_s3_outage_mid_write(outage, instance):
    """The S3 server dies after the first partition of a range is in the lake: the written one
    is recorded, the step fails naming the others; after the restart a re-run completes it."""
    server, store, resources = outage
    raw = _prepare(store, resources, instance)
    harness.arm("published:lake/hrrr_fields/", server.kill)
    assets, kwargs = fields_range()
    res = dg.materialize(assets, resources=harness.faulty_resources(resources), instance=instance,
                         raise_on_error=False, **kwargs)
    assert not res.success
    text = failure_messages(res)
    assert "hrrr_fields: " in text and "partitions could not be written" in text and "are recorded as materialised" in text
    server.start()
    written = _lake(store)
    assert 1 <= len(written) < 3
    assert sorted(instance.get_materialized_partitions(FIELDS)) == written   # lake and catalogue agree
    _assert_consistent(store, instance, raw, written)

    _rerun(resources, instance)
    _assert_consistent(store, instance, raw, PKS)


@pytest.mark.slow
def test_s3_server_frozen_mid_write(outage, instance):
    """The S3 server hangs (SIGSTOP) after the first partition of a range is in the lake: the
    writes still pending time out (a 3 s client timeout here; 20 s x 3 attempts by default) with
    a clear error naming the endpoint and saying the outcome is unknown, the confirmed partitions
    are recorded, nothing half-written is visible. After SIGCONT the server may complete a
    write whose client gave up (its request was already in the socket buffers): that partition
    is in the lake, complete, but not recorded (S3 cannot say; the error says to re-run). The
    re-run completes the range and lake and catalogue agree."""
    server, store, resources = outage
    raw = _prepare(store, resources, instance)
    harness.arm("published:lake/hrrr_fields/", server.freeze)
    assets, kwargs = fields_range()
    try:
        res = dg.materialize(assets, resources=harness.faulty_resources(resources, client_timeout_s=3),
                             instance=instance, raise_on_error=False, **kwargs)
    finally:
        server.thaw()
    assert not res.success
    text = failure_messages(res)
    assert "partitions could not be written" in text and "are recorded as materialised" in text
    assert f"at {server.endpoint} timed out: the server did not answer within 3 s (1 attempt(s)); a write may " \
           "still be applied if the server recovers, so re-run it" in text
    recorded = sorted(instance.get_materialized_partitions(FIELDS))
    assert 1 <= len(recorded) < 3 and set(recorded) <= set(_lake(store))
    for pk in _lake(store):      # whatever is visible is complete and exact, recorded or not
        with store.local_path(lead_object_key(FIELDS, pk, 0)) as p:
            got = pq.read_table(p).column("tmp_2m_k").to_numpy()
        with store.local_path(landing_key(run_of(pk), 0)) as p:
            assert np.array_equal(got, ec_values(p, 1).astype(np.float32)), pk
    assert all(store.get(landing_key(run_of(pk), 0)) == data for pk, data in raw.items())

    _rerun(resources, instance)
    _assert_consistent(store, instance, raw, PKS)


def test_s3_outage_mid_quarantine(outage, instance):
    """The server dies between a quarantine's reason file and the move of the bad file: the step
    fails with the storage error naming the file (nothing is quarantined twice or lost), and the
    re-run quarantines it and writes the good hours."""
    server, store, resources = outage
    raw = _prepare(store, resources, instance, bad=PKS[1])
    harness.arm("quarantine-move", server.kill)
    assets, kwargs = fields_range()
    res = dg.materialize(assets, resources=harness.faulty_resources(resources), instance=instance,
                         raise_on_error=False, **kwargs)
    assert not res.success
    bad_key = landing_key(run_of(PKS[1]), 0)
    assert f"copy {bad_key!r} at {server.endpoint} failed" in failure_messages(res)
    server.start()
    assert _lake(store) == [] and instance.get_materialized_partitions(FIELDS) == set()
    assert store.get(bad_key) == raw[PKS[1]]                      # still in raw/, with its reason already written
    assert store.exists("quarantine/" + bad_key + ".reason.json")

    _rerun(resources, instance, ok=False)                          # fails for the bad hour only
    _assert_consistent(store, instance, raw, [PKS[0], PKS[2]], bad=PKS[1])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local"], indirect=True)
@pytest.mark.parametrize("point, bad", [("write:lake/hrrr_fields/", None), ("quarantine-move", PKS[1])],
                         ids=["mid-write", "mid-quarantine"])
def test_step_worker_killed(store, resources, instance, settings_env, point, bad):
    """SIGKILL of the step worker: mid-write the partitions put in place before it are complete,
    the one being written is invisible, no materialisation is recorded;
    mid-quarantine the bad file is still in raw/ beside its reason. The re-run completes both."""
    raw = _prepare(store, resources, instance, bad=bad)
    env = {"DAGSTER_HOME": str(instance.root_directory)}
    killed = harness.run_killed("fields_range", point, 2 if bad is None else 1, env)
    assert killed.returncode == -9, killed.stdout + killed.stderr[-2000:]
    assert instance.get_materialized_partitions(FIELDS) == set()
    run = instance.get_runs(limit=1)[0]
    assert run.status == dg.DagsterRunStatus.STARTED   # no record of success; run monitoring would fail it
    visible = _lake(store)
    if bad is None:
        # partitions are encoded by parallel threads but go into the lake one at a time, in
        # order: killed as the second is about to be written, exactly the first is visible and
        # complete; anything a kill can leave mid-write is a hidden temp file no reader lists
        assert visible == [PKS[0]]
        hidden = [p.name for p in (store.root / "lake/hrrr_fields").rglob("*.tmp")]
        assert all(h.startswith(".") for h in hidden)
        for pk in visible:
            with store.local_path(lead_object_key(FIELDS, pk, 0)) as p:
                assert pq.read_table(p).num_rows == 1059 * 1799
    else:
        assert visible == []
        bad_key = landing_key(run_of(bad), 0)
        assert store.get(bad_key) == raw[bad] and store.exists("quarantine/" + bad_key + ".reason.json")

    _rerun(resources, instance, ok=bad is None)
    expect = PKS if bad is None else [PKS[0], PKS[2]]
    _assert_consistent(store, instance, raw, expect, bad=bad)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local"], indirect=True)
@pytest.mark.parametrize("crash_at", ["RUN_CREATED"])
def test_sensor_killed_between_tick_and_run_launch(store, settings_env, tmp_path, sample_dir, crash_at):
    """Dagster's daemon loop for station_file_landing_sensor, SIGKILLed after the tick was
    created (nothing submitted) or after the first run was created but not launched; the next
    iteration gives exactly one run per landed file, each partition registered once."""
    import multiprocessing

    from snoiq_assets_tests.faults.sensor_crash import at, iterate

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "telemetry:\n  enabled: false\n")
    for sid, sample in [("ORD", "iem_asos_ORD_2010-10.csv"), ("GRB", "iem_asos_GRB_2010-10.csv")]:
        store.put_file(f"raw/observations/{sid}.csv", sample_dir / "station_obs" / sample)
    child = multiprocessing.get_context("spawn").Process(target=iterate, args=(str(home), at(0), crash_at))
    child.start()
    child.join(300)
    assert child.exitcode == -9

    iterate(str(home), at(2))      # the daemon's next iteration (after the sensor's minimum interval)
    iterate(str(home), at(4))      # and another: nothing new
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        keys = sorted(r.tags["dagster/run_key"].split("@")[0] for r in runs)
        assert keys == ["raw/observations/GRB.csv", "raw/observations/ORD.csv"]
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["GRB", "ORD"]
        assert all(r.status == dg.DagsterRunStatus.QUEUED for r in runs)
        assert sorted(instance.get_dynamic_partitions("station_files")) == ["GRB", "ORD"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_step_worker_killed_during_model_save(store, resources, instance, settings_env):
    """SIGKILL of the trained_models step worker while it saves a model, after the model file
    and metadata.json, before manifest.json (written last: the worst point, ~2.5 min on a loaded
    machine, so the only one run). The folder it leaves has no manifest, so nothing can load it
    (a clear refusal); nothing is recorded. The re-run stores exactly one complete model whose
    manifest verifies and which loads."""
    from snoiq_assets.lib.models import ModelError
    from snoiq_assets.lib.models.store import load_bundle, read_manifest
    from snoiq_assets_tests.faults.scenarios import train_lightgbm
    from snoiq_assets_tests.models.conftest import PORTLAND_SPEC, land_spec, materialize_observations

    materialize_observations(instance, resources)
    land_spec(instance, store, PORTLAND_SPEC)
    assets, kwargs = train_lightgbm()
    assert dg.materialize(assets, selection=["training_table"], instance=instance, resources=resources,
                          partition_key=PORTLAND_SPEC).success
    env = {"DAGSTER_HOME": str(instance.root_directory)}
    killed = harness.run_killed("train_lightgbm", "write:models/", 3, env)   # model file, metadata, manifest
    assert killed.returncode == -9, killed.stdout + killed.stderr[-2000:]
    models = dg.AssetKey("trained_models")
    assert instance.get_materialized_partitions(models) == set()

    def folders() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for info in store.list("models/"):
            prefix, name = info.key.rsplit("/", 1)
            out.setdefault(prefix, []).append(name)
        return {p: sorted(n) for p, n in out.items()}

    (orphan, names), = folders().items()
    assert names == ["metadata.json", "model.txt"]     # what the kill left: no manifest
    with pytest.raises(ModelError, match="manifest"):
        load_bundle(store, orphan)

    res = dg.materialize(assets, instance=instance, resources=resources, **kwargs)
    assert res.success and instance.get_materialized_partitions(models) == {PORTLAND_SPEC}
    complete = {p: n for p, n in folders().items() if "manifest.json" in n}
    (prefix, names), = complete.items()            # exactly one model a reader can use
    assert names == ["manifest.json", "metadata.json", "model.txt"] and prefix != orphan
    manifest = read_manifest(store, prefix)
    assert set(manifest["files"]) == {"metadata.json", "model.txt"}
    model, meta = load_bundle(store, prefix)       # the manifest and the child load check pass
    assert meta["model_type"] == "lightgbm" and list(model.feature_names) == meta["features"]
    (stored,) = res.asset_materializations_for_node("trained_models")
    assert stored.partition == PORTLAND_SPEC
