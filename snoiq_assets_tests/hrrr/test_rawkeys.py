"""The HRRR raw-zone layout (lib/hrrr/rawkeys.py), without Dagster."""

import datetime as dt

import pytest

from snoiq_assets.lib.hrrr.rawkeys import landing_key, newest_landed_grib, partition_for_landed_key, partition_landing_key
from snoiq_assets.lib.keys import UnsafeNameError


def test_landing_keys():
    run = dt.datetime(2020, 12, 14, 0, tzinfo=dt.timezone.utc)
    assert landing_key(run, 12) == "raw/hrrr/20201214/hrrr.t00z.wrfsfcf12.grib2"
    assert partition_landing_key("2020-12-14T00", 12) == landing_key(run, 12)
    assert partition_for_landed_key(landing_key(run, 12)) == ("2020-12-14T00", 12)
    assert newest_landed_grib([landing_key(run, 12), landing_key(run, 12) + ".idx", "raw/hrrr/x.txt",
                               "raw/hrrr/20201213/hrrr.t23z.wrfsfcf00.grib2"]) == landing_key(run, 12)
    assert newest_landed_grib(["raw/hrrr/20201214/hrrr.t00z.wrfsfcf12.grib2.idx"]) is None


@pytest.mark.parametrize("key", ["raw/hrrr/2020121/hrrr.t00z.wrfsfcf12.grib2", "raw/hrrr/20201214/hrrr.t0z.wrfsfcf12.grib2",
                                 "raw/hrrr/20201214/../hrrr.t00z.wrfsfcf12.grib2",
                                 "raw/hrrr/20201399/hrrr.t00z.wrfsfcf12.grib2"])
def test_hrrr_key_parsing_refuses(key):
    with pytest.raises(UnsafeNameError):
        partition_for_landed_key(key)


def test_hrrr_key_parsing():
    assert partition_for_landed_key("raw/hrrr/20230101/hrrr.t23z.wrfsfcf00.grib2") == ("2023-01-01T23", 0)


def test_source_config_errors_name_the_source():
    from snoiq_assets.lib.hrrr.fetch import HttpSource, S3Source, SourceConfigError, source_from_config

    with pytest.raises(SourceConfigError, match="HRRR source 'mirror': kind 'http' needs base_url"):
        source_from_config("mirror", kind="http")
    with pytest.raises(SourceConfigError, match="HRRR source 'x': unknown kind 'ftp' \\(s3 or http\\)"):
        source_from_config("x", kind="ftp")
    assert isinstance(source_from_config("mirror", kind="http", base_url="http://127.0.0.1:1/"), HttpSource)
    s3 = source_from_config("minio", bucket="hrrr", endpoint_url="http://127.0.0.1:1", access_key_env="NO_SUCH_VAR")
    assert isinstance(s3, S3Source) and s3.bucket == "hrrr" and s3.name == "minio"
