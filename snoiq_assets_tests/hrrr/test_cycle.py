"""A whole cycle: leads landed together (fetched or already landed), completeness, decode in lead order."""

import datetime as dt
import shutil

import boto3
import numpy as np
import pytest

from snoiq_assets.lib.hrrr.cycle import cycle_completeness, decode_cycle, land_cycle
from snoiq_assets.lib.hrrr.fetch import S3Source, hrrr_key
from snoiq_assets.lib.hrrr.isolation import DecoderProcess
from snoiq_assets.lib.hrrr.rawkeys import landing_key
from snoiq_assets.lib.hrrr.multifetch import RetryPolicy
from snoiq_assets.lib.hrrr.variables import resolve
from snoiq_assets_tests.hrrr.archive import COLUMNS, upload_cycle, write_cycle

UTC = dt.timezone.utc
RUN = dt.datetime(2023, 1, 1, 6, tzinfo=UTC)
VARS = resolve(COLUMNS)


@pytest.fixture(scope="module")
def cycle_files(tmp_path_factory):
    return write_cycle(tmp_path_factory.mktemp("cyc"), RUN, [0, 1, 2, 3, 4])


def test_land_cycle_then_decode(store, seaweed, cycle_files, tmp_path):
    bucket = seaweed.create_bucket()
    client = boto3.client("s3", endpoint_url=seaweed.endpoint, aws_access_key_id=seaweed.access_key,
                          aws_secret_access_key=seaweed.secret_key, region_name="us-east-1")
    upload_cycle(client, bucket, RUN, {fh: p for fh, p in cycle_files.items() if fh != 3})   # f03 not published
    # f04 already landed in the raw zone, but it is f02's file: the wrong lead, to be quarantined
    wrong = tmp_path / "wrong.grib2"
    shutil.copyfile(cycle_files[2], wrong)
    store.put_file(landing_key(RUN, 4), wrong)
    # f00 landed without its .idx: checked and the .idx written
    store.put_file(landing_key(RUN, 0), cycle_files[0])
    calls = []

    def sources():
        calls.append(1)
        return [S3Source("seaweed", bucket, client)]

    landing = land_cycle(store, RUN, [0, 1, 2, 3, 4], VARS, sources, policy=RetryPolicy(attempts=2, backoff_s=0.01))
    assert landing.landed == [0, 1, 2] and landing.failed == [3, 4] and len(calls) == 1
    assert landing.leads[0].meta["source"] == "landed" and landing.leads[0].meta["idx_written"]
    assert landing.leads[1].meta["source"] == "seaweed" and landing.leads[1].meta["range_requests"] == 1
    assert hrrr_key(RUN, 3) in landing.leads[3].error and landing.leads[3].bad_file is None
    bad = landing.leads[4].bad_file
    assert bad is not None and bad.file == landing_key(RUN, 4) and "wrong forecast hour" in str(bad)
    assert "expected f04, found f02" in str(bad)
    for fh in (0, 1, 2):
        assert store.exists(landing_key(RUN, fh) + ".idx")

    report = cycle_completeness(store, RUN, [0, 1, 2, 3, 4], VARS)
    # f04's file has no checked inventory (it failed its check): it counts as missing
    assert report.missing_leads == [3, 4] and report.missing_messages == {}
    assert report.describe() == "cycle 2023-01-01T06: 8 of 20 messages missing: missing leads f03, f04"

    with DecoderProcess() as decoder:
        decoded = decode_cycle(store, RUN, [1, 2, 3], VARS, decoder, engine="eccodes")
        # a later call for f02 alone takes f01 from the store (here: the table just decoded)
        again = decode_cycle(store, RUN, [2], VARS, decoder, engine="eccodes",
                             previous_lead=lambda fh: decoded.tables[fh])
    assert sorted(decoded.tables) == [1, 2] and "has not landed" in decoded.errors[3]
    f2 = decoded.tables[2]
    assert f2.schema.metadata[b"forecast_hour"] == b"2" and f2.schema.metadata[b"valid_time"].startswith(b"2023-01-01T08")
    # ASNOW's hour from the difference with f01 decoded in the same call
    assert f2.schema.field("asnow_1h_m").metadata[b"method"] == b"difference f02-f01"
    diff = f2.column("asnow_m").to_numpy() - decoded.tables[1].column("asnow_m").to_numpy()
    assert np.allclose(f2.column("asnow_1h_m").to_numpy(), np.clip(diff, 0, None), atol=1e-6)
    assert again.tables[2].column("asnow_1h_m").equals(f2.column("asnow_1h_m"))

    # The same cycle with each lead handed to a spill as it is finished (what hrrr_fields does so
    # a day of leads is not held in memory): the stored files hold exactly the in-memory tables,
    # hourly amounts from the previous lead included.
    import pyarrow.parquet as pq

    from snoiq_assets.lib.parquet import EncodedParquet, ParquetSpill

    (tmp_path / "spill").mkdir()
    with DecoderProcess() as decoder, ParquetSpill(tmp_path / "spill") as spill:
        spilled = decode_cycle(store, RUN, [1, 2, 3], VARS, decoder, engine="eccodes", keep=spill.add)
    assert sorted(spilled.tables) == [1, 2] and all(isinstance(t, EncodedParquet) for t in spilled.tables.values())
    assert spilled.stats == decoded.stats and "has not landed" in spilled.errors[3]
    for fh in (1, 2):
        back = pq.read_table(spilled.tables[fh].path)
        assert back.equals(decoded.tables[fh]) and back.schema.metadata == decoded.tables[fh].schema.metadata
        assert spilled.tables[fh].num_rows == decoded.tables[fh].num_rows


def test_leads_to_retry(store, cycle_files):
    from snoiq_assets.lib.hrrr.cycle import leads_to_retry

    earlier = RUN - dt.timedelta(hours=1)
    for fh in (0, 1, 2):
        store.put_file(landing_key(RUN, fh), cycle_files[fh])
        store.put_file(landing_key(RUN, fh) + ".idx", str(cycle_files[fh]) + ".idx")
    todo = leads_to_retry(store, [earlier, RUN], lambda run: [0, 1, 2, 3], VARS)
    assert todo == {earlier: [0, 1, 2, 3], RUN: [3]}
    store.put_file(landing_key(RUN, 3), cycle_files[3])
    store.put_file(landing_key(RUN, 3) + ".idx", str(cycle_files[3]) + ".idx")
    assert leads_to_retry(store, [RUN], lambda run: [0, 1, 2, 3], VARS) == {}
