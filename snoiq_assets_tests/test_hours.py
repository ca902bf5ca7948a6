"""Hourly partition keys (lib/hours.py), without Dagster."""

import datetime as dt

import pytest

from snoiq_assets.lib.hours import by_month, contiguous_ranges, hour_key, hour_of, keys_between

UTC = dt.timezone.utc


def test_hour_of_and_hour_key_round_trip():
    assert hour_of("2023-01-01T05") == dt.datetime(2023, 1, 1, 5, tzinfo=UTC)
    assert hour_key(dt.datetime(2023, 1, 1, 5, 59, tzinfo=UTC)) == "2023-01-01T05"
    assert hour_key(dt.datetime(2023, 1, 1, 6, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == "2023-01-01T05"
    for bad in ("2023-01-01-05:00", "2023-01-01", "2023-13-01T00", ""):
        with pytest.raises(ValueError):
            hour_of(bad)


def test_keys_between_and_by_month():
    keys = ["2021-02-01T06", "2021-01-04T12", "2021-01-04T00", "not-an-hour"]
    assert keys_between(keys, dt.date(2021, 1, 1), dt.date(2021, 1, 31)) == ["2021-01-04T00", "2021-01-04T12"]
    assert keys_between(keys, None, None) == ["2021-01-04T00", "2021-01-04T12", "2021-02-01T06"]
    assert keys_between(keys, dt.date(2021, 2, 1), None) == ["2021-02-01T06"]
    assert by_month(keys[:3]) == [["2021-01-04T00", "2021-01-04T12"], ["2021-02-01T06"]]


def test_contiguous_ranges():
    assert contiguous_ranges(["2023-01-01T03", "2023-01-01T01", "2023-01-01T02", "2023-01-01T07", "2023-01-02T00"]) == [
        ("2023-01-01T01", "2023-01-01T03"), ("2023-01-01T07", "2023-01-01T07"), ("2023-01-02T00", "2023-01-02T00")]
    assert contiguous_ranges([]) == []
