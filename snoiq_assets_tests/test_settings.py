"""Settings and start-up checks: one clear message naming the setting, never a secret."""

import subprocess
import sys

import pytest

from snoiq_assets.lib.storage import S3Store, store_from_settings
from snoiq_assets.settings import Settings, SettingsError


def test_default_profile_is_local_folder(tmp_path):
    s = Settings.from_env({"SNOIQ_HOME": str(tmp_path / "h")})
    assert s.profile == "local" and s.home == (tmp_path / "h").resolve()
    assert s.duckdb_path == s.home / "snoiq.duckdb"
    assert s.polars_storage_options() is None


def test_unknown_profile_names_the_variable():
    with pytest.raises(SettingsError, match=r"SNOIQ_PROFILE='gcs' is not a known profile"):
        Settings.from_env({"SNOIQ_PROFILE": "gcs"})


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SNOIQ_S3_ENDPOINT": "127.0.0.1:9000"}, "SNOIQ_S3_ENDPOINT='127.0.0.1:9000' must be a URL"),
        ({"SNOIQ_BUCKET": "Bad_Bucket"}, "SNOIQ_BUCKET='Bad_Bucket' is not a valid S3 bucket name"),
        ({"AWS_ACCESS_KEY_ID": ""}, "AWS_ACCESS_KEY_ID is not set"),
        ({"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY is not set"),
    ],
)
def test_s3_profile_validation(env, message):
    base = {"SNOIQ_PROFILE": "s3", "SNOIQ_S3_ENDPOINT": "http://127.0.0.1:9000", "SNOIQ_BUCKET": "snoiq",
            "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-xyz"}
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**base, **env})


def test_secrets_not_in_repr():
    s = Settings.from_env({"SNOIQ_PROFILE": "s3", "SNOIQ_S3_ENDPOINT": "http://127.0.0.1:9", "SNOIQ_BUCKET": "snoiq",
                           "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret-value"})
    assert "very-secret-value" not in repr(s) and "AKIAEXAMPLE" not in repr(s)


def test_unreachable_endpoint_is_one_clear_message():
    from snoiq_assets_tests.s3server import free_port

    s = Settings.from_env({"SNOIQ_PROFILE": "s3", "SNOIQ_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
                           "SNOIQ_BUCKET": "snoiq", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "very-secret-value"})
    with pytest.raises(SettingsError, match=r"SNOIQ_S3_ENDPOINT=http://127.0.0.1:\d+ is unreachable") as err:
        S3Store(s, retries=0).check()
    assert "very-secret-value" not in str(err.value)


def test_missing_bucket_and_wrong_secret(seaweed):
    env = seaweed.env("no-such-bucket")
    with pytest.raises(SettingsError, match="SNOIQ_BUCKET='no-such-bucket' does not exist"):
        store_from_settings(Settings.from_env(env)).check()
    bucket = seaweed.create_bucket()
    wrong = {**seaweed.env(bucket), "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-123"}
    with pytest.raises(SettingsError, match="were rejected") as err:
        store_from_settings(Settings.from_env(wrong)).check()
    assert "wrong-secret-value-123" not in str(err.value)
    store_from_settings(Settings.from_env(seaweed.env(bucket))).check()  # the right secret passes


def test_local_home_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SettingsError, match="SNOIQ_HOME=.* is not a writable folder"):
        store_from_settings(Settings.from_env({"SNOIQ_HOME": str(blocker / "sub")})).check()


def test_cli_check_reports_bad_profile_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "snoiq_assets.check"], env={"SNOIQ_PROFILE": "nope", "PATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "SNOIQ_PROFILE='nope' is not a known profile" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mlflow_ui_url_for_run_links():
    """Dagster links MLflow runs to the UI people open: `mlflow ui`'s default locally, the
    compose stack's published port for its internal server name, else the tracking server."""
    assert Settings.from_env({}).mlflow_ui_url == "http://127.0.0.1:5000"
    assert Settings.from_env({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}).mlflow_ui_url == "http://127.0.0.1:5000"
    assert Settings.from_env({"MLFLOW_TRACKING_URI": "https://mlflow.example.org"}).mlflow_ui_url == "https://mlflow.example.org"
    assert Settings.from_env({"SNOIQ_MLFLOW_UI_URL": "http://10.0.0.5:5005"}).mlflow_ui_url == "http://10.0.0.5:5005"
