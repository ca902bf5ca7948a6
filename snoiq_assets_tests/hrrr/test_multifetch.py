"""Many leads of a cycle at once: range plans, coalescing, bounded parallel requests, retries,
timeouts, and no silent holes; against the S3 test server laid out like the NOAA bucket and a
real HTTP server with scripted faults."""

import datetime as dt
import shutil
from pathlib import Path

import boto3
import numpy as np
import pytest

from snoiq_assets.lib.hrrr.accum import with_buckets
from snoiq_assets.lib.hrrr.decode import decode_fields, scan_grib
from snoiq_assets.lib.hrrr.fetch import (
    ARCHIVE_SOURCES,
    FetchError,
    HttpSource,
    S3Source,
    SourceSpec,
    build_source,
    hrrr_key,
)
from snoiq_assets.lib.hrrr.inventory import parse_idx
from snoiq_assets.lib.hrrr.multifetch import RetryPolicy, check_idx_lead, fetch_leads, forecast_end_hour
from snoiq_assets.lib.hrrr.variables import CATALOGUE, resolve, search_pattern
from snoiq_assets_tests.hrrr.archive import COLUMNS, RangeHttpServer, upload_cycle, write_cycle

UTC = dt.timezone.utc
RUN = dt.datetime(2023, 1, 1, 0, tzinfo=UTC)
LEADS = [0, 1, 2, 3]
VARS = resolve(COLUMNS)
FAST = RetryPolicy(attempts=3, backoff_s=0.01)


def pattern_for(fh: int) -> str:
    return search_pattern(with_buckets(VARS), fh)


@pytest.fixture(scope="module")
def cycle_files(tmp_path_factory) -> dict[int, Path]:
    return write_cycle(tmp_path_factory.mktemp("cycle"), RUN, LEADS)


@pytest.fixture
def noaa_cycle(seaweed, cycle_files):
    """A bucket laid out like noaa-hrrr-bdp-pds holding f00-f03 of one cycle (+ .idx)."""
    bucket = seaweed.create_bucket()
    client = boto3.client("s3", endpoint_url=seaweed.endpoint, aws_access_key_id=seaweed.access_key,
                          aws_secret_access_key=seaweed.secret_key, region_name="us-east-1")
    upload_cycle(client, bucket, RUN, cycle_files)
    return bucket, client


def test_fetch_every_lead_with_coalesced_ranges(tmp_path, noaa_cycle, cycle_files):
    bucket, client = noaa_cycle
    sent = []
    client.meta.events.register("before-send.s3.GetObject",
                                lambda request, **kw: sent.append(request.headers.get("Range")))
    result = fetch_leads([S3Source("seaweed", bucket, client)], RUN, LEADS, pattern_for,
                         lambda fh: tmp_path / f"f{fh:02d}.grib2", max_requests=4, policy=FAST)
    assert not result.failed and sorted(result.landed) == LEADS
    for fh in LEADS:
        landed = result.landed[fh]
        # the POT message (1) is skipped; TMP..APCP (and its 1-hour bucket from f02) follow each
        # other, so one range per lead
        assert len(landed.ranges) == 1 and [e.number for e in landed.ranges[0].entries][0] == 2
        full = cycle_files[fh].read_bytes()
        rng = landed.ranges[0]
        assert (tmp_path / f"f{fh:02d}.grib2").read_bytes() == full[rng.start:]
        msgs = scan_grib(tmp_path / f"f{fh:02d}.grib2")
        assert [m.keys["endStep"] for m in msgs] == [fh] * len(msgs)
        assert [e.start for e in parse_idx(landed.idx_text)] == [m.offset for m in msgs]
        table, _ = decode_fields(tmp_path / f"f{fh:02d}.grib2", VARS, fh, idx=landed.idx_text, engine="eccodes")
        assert table.num_rows == 1059 * 1799
    assert result.requests == len(LEADS)
    assert sorted(h.decode() for h in sent if h) == sorted(r.header for fh in LEADS for r in result.landed[fh].ranges)


def test_missing_and_short_leads_are_named_and_the_others_land(tmp_path, noaa_cycle, cycle_files):
    bucket, client = noaa_cycle
    client.delete_object(Bucket=bucket, Key=hrrr_key(RUN, 1))                 # .idx published, GRIB not yet
    client.delete_object(Bucket=bucket, Key=hrrr_key(RUN, 3) + ".idx")         # nothing of f03 yet
    short = cycle_files[2].read_bytes()[:-1000]                                # a truncated upload
    client.put_object(Bucket=bucket, Key=hrrr_key(RUN, 2), Body=short)
    result = fetch_leads([S3Source("seaweed", bucket, client)], RUN, LEADS, pattern_for,
                         lambda fh: tmp_path / f"f{fh:02d}.grib2", policy=FAST)
    assert sorted(result.landed) == [0] and sorted(result.failed) == [1, 2, 3]
    assert hrrr_key(RUN, 1) == result.failed[1].key and "NoSuchKey" in result.failed[1].error
    assert "is short" in result.failed[2].error and hrrr_key(RUN, 2) in result.failed[2].error
    assert f"{hrrr_key(RUN, 3)}.idx" in result.failed[3].error
    with pytest.raises(FetchError) as err:
        result.raise_for_failures()
    text = str(err.value)
    assert "3 of 4 leads of cycle 2023-01-01T00 failed" in text
    for fh in (1, 2, 3):
        assert f"f{fh:02d} {hrrr_key(RUN, fh)}" in text
    assert (tmp_path / "f00.grib2").read_bytes()[:4] == b"GRIB"


def test_next_source_serves_a_lead_the_first_lacks(tmp_path, seaweed, noaa_cycle, cycle_files):
    bucket, client = noaa_cycle
    partial = seaweed.create_bucket()
    upload_cycle(client, partial, RUN, {0: cycle_files[0]})
    sources = [S3Source("partial", partial, client), S3Source("full", bucket, client)]
    result = fetch_leads(sources, RUN, [0, 1], pattern_for, lambda fh: tmp_path / f"f{fh:02d}.grib2", policy=FAST)
    assert result.landed[0].source == "partial" and result.landed[1].source == "full"
    assert "partial" in result.landed[1].errors[0] and not result.failed


@pytest.mark.parametrize("keyed", [False, True], ids=["anonymous", "keyed"])
def test_a_down_s3_mirror_gets_one_request_per_attempt(tmp_path, noaa_cycle, keyed, monkeypatch):
    """The retry policy is the only retry layer: a mirror that refuses connections (nothing
    listens on port 9) is asked exactly ``attempts`` times per file, each retry is reported, and
    the next source serves the lead. botocore's own retries had tripled it (anonymous) or
    doubled it (keyed), with their own sleeps."""
    bucket, client = noaa_cycle
    monkeypatch.setenv("DOWN_KEY", "k")
    monkeypatch.setenv("DOWN_SECRET", "s")
    down = build_source(SourceSpec("down", "s3", bucket=bucket, endpoint_url="http://127.0.0.1:9", timeout_s=2.0,
                                   access_key_env="DOWN_KEY" if keyed else None,
                                   secret_key_env="DOWN_SECRET" if keyed else None))
    sent = []
    down.client.meta.events.register("before-send.s3.GetObject", lambda request, **kw: sent.append(request.url))
    result = fetch_leads([down, S3Source("seaweed", bucket, client)], RUN, [0], pattern_for,
                         lambda fh: tmp_path / f"f{fh:02d}.grib2", policy=FAST)
    assert result.landed[0].source == "seaweed" and not result.failed
    assert len(sent) == FAST.attempts and all(url.endswith(hrrr_key(RUN, 0) + ".idx") for url in sent), sent
    assert len(result.retries) == FAST.attempts - 1 and all("EndpointConnectionError" in r for r in result.retries)
    assert "down" in result.landed[0].errors[0]


def test_retries_with_backoff_and_timeout_over_http(tmp_path, cycle_files):
    root = tmp_path / "archive"
    for fh, path in cycle_files.items():
        key = root / hrrr_key(RUN, fh)
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, key)
        shutil.copyfile(str(path) + ".idx", str(key) + ".idx")
    with RangeHttpServer(root, stall_s=2.0) as server:
        server.faults[hrrr_key(RUN, 0) + ".idx"] = ["503", "503"]      # throttled twice, then served
        server.faults[hrrr_key(RUN, 1)] = ["stall"]                    # one response past the timeout
        server.faults[hrrr_key(RUN, 2)] = ["short"]                    # one dropped byte
        server.faults[hrrr_key(RUN, 3)] = ["503", "503", "503"]        # down for all three attempts
        source = HttpSource("mirror", server.url, timeout_s=0.5)
        result = fetch_leads([source], RUN, LEADS, pattern_for, lambda fh: tmp_path / f"f{fh:02d}.grib2",
                             max_requests=2, policy=FAST)
    assert sorted(result.landed) == [0, 1, 2] and sorted(result.failed) == [3]
    assert "HTTP Error 503" in result.failed[3].error and hrrr_key(RUN, 3) in result.failed[3].key
    retried = "\n".join(result.retries)
    assert retried.count(hrrr_key(RUN, 0) + ".idx") == 2
    assert "timed out" in retried and "is short" in retried and retried.count(hrrr_key(RUN, 3) + " (mirror)") == 2
    for fh in (0, 1, 2):
        assert (tmp_path / f"f{fh:02d}.grib2").read_bytes() == cycle_files[fh].read_bytes()[
            result.landed[fh].ranges[0].start:]


def test_idx_listing_another_lead_is_named(tmp_path, noaa_cycle, cycle_files):
    bucket, client = noaa_cycle
    # f02's GRIB under the f01 key, with its own (f02) inventory: the .idx lists a lead the file is not
    client.upload_file(str(cycle_files[2]), bucket, hrrr_key(RUN, 1))
    client.upload_file(str(cycle_files[2]) + ".idx", bucket, hrrr_key(RUN, 1) + ".idx")
    loose = "|".join(f":{v.var}:{v.level}:" for v in VARS)      # a pattern that does not pin the lead
    result = fetch_leads([S3Source("seaweed", bucket, client)], RUN, [1], lambda fh: loose,
                         lambda fh: tmp_path / f"f{fh:02d}.grib2", policy=FAST)
    assert sorted(result.failed) == [1]
    assert "message 2 (TMP:2 m above ground:2 hour fcst) is for f02, not the file's lead f01" in result.failed[1].error
    entries = parse_idx((cycle_files[3].parent / (cycle_files[3].name + ".idx")).read_text())
    check_idx_lead(entries, 3, "f03.idx")
    assert [forecast_end_hour(t) for t in ("anl", "5 hour fcst", "4-5 hour acc fcst", "0-0 day acc fcst",
                                           "0-1 day acc fcst", "ave")] == [0, 5, 5, 0, 24, None]


def test_sources_are_data():
    assert [s.name for s in ARCHIVE_SOURCES] == ["aws", "google", "azure"]
    assert ARCHIVE_SOURCES[0].bucket == "noaa-hrrr-bdp-pds" and ARCHIVE_SOURCES[1].kind == "http"
    http = build_source(SourceSpec("g", "http", base_url="https://example.org/hrrr", timeout_s=3.0))
    assert isinstance(http, HttpSource) and http.timeout_s == 3.0
    s3 = build_source(SourceSpec("a", "s3", bucket="b", endpoint_url="http://127.0.0.1:9", timeout_s=4.0))
    assert isinstance(s3, S3Source) and s3.client.meta.config.read_timeout == 4.0
    with pytest.raises(ValueError, match="'g': kind 'http' needs base_url"):
        build_source(SourceSpec("g", "http"))
    with pytest.raises(ValueError, match="unknown kind 'ftp'"):
        build_source(SourceSpec("f", "ftp"))


def test_fetched_values_equal_the_archive(tmp_path, noaa_cycle, cycle_files):
    bucket, client = noaa_cycle
    result = fetch_leads([S3Source("seaweed", bucket, client)], RUN, [2], pattern_for,
                         lambda fh: tmp_path / "f02.grib2", policy=FAST)
    got, _ = decode_fields(tmp_path / "f02.grib2", [CATALOGUE["tmp_2m_k"]], 2, engine="eccodes",
                           idx=result.landed[2].idx_text)
    want, _ = decode_fields(cycle_files[2], [CATALOGUE["tmp_2m_k"]], 2, engine="eccodes")
    assert np.array_equal(got.column(0).to_numpy(), want.column(0).to_numpy())
