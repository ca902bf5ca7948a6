"""Files follow the umask; a moved SNOIQ_HOME takes its MLflow artifacts with it (issue 14, item 12)."""

import os
import shutil
import stat

import pytest

from snoiq_assets.defs.models.resources import _EXPERIMENT_IDS, MlflowResource
from snoiq_assets.lib.storage import LocalStore


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_local_files_follow_the_umask(tmp_path, umask):
    store = LocalStore(tmp_path / "home")
    old = os.umask(umask)
    try:
        store.put("raw/observations/A.csv", b"x")
        store.put_file("lake/x/p.parquet", __file__)
        with store.atomic_local_file("models/L/1/model_type=xgboost/model.json") as path:
            path.write_text("{}")
        store.put_json("models/L/1/model_type=xgboost/metadata.json", {})
    finally:
        os.umask(old)
    for key in ("raw/observations/A.csv", "lake/x/p.parquet", "models/L/1/model_type=xgboost/model.json",
                "models/L/1/model_type=xgboost/metadata.json"):
        assert stat.S_IMODE((store.root / key).stat().st_mode) == 0o666 & ~umask, key


def test_moved_home_keeps_writing_mlflow_artifacts_in_the_new_home(tmp_path):
    def resource(home):
        return MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}", artifact_root=str(home / "mlflow"))

    old_home, new_home = tmp_path / "old", tmp_path / "new"
    old_home.mkdir()
    first = resource(old_home)
    client = first.client()
    run = client.create_run(first.experiment_id())
    (tmp_path / "a.txt").write_text("before the move")
    client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"))
    shutil.move(old_home, new_home)
    _EXPERIMENT_IDS.clear()   # a new process after the move

    moved = resource(new_home)
    client = moved.client()
    exp = client.get_experiment(moved.experiment_id())
    assert exp.artifact_location == str(new_home / "mlflow" / "snoiq")
    later = client.create_run(exp.experiment_id)
    (tmp_path / "b.txt").write_text("after the move")
    client.log_artifact(later.info.run_id, str(tmp_path / "b.txt"))
    assert later.info.artifact_uri.startswith(str(new_home / "mlflow" / "snoiq") + "/")
    assert (new_home / "mlflow/snoiq" / later.info.run_id / "artifacts/b.txt").read_text() == "after the move"
    assert not old_home.exists()
    # the run from before the move is found in the new home too
    before = client.get_run(run.info.run_id)
    assert before.info.artifact_uri.startswith(str(new_home) + "/")
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["a.txt"]
