"""lib/failures.py and defs/failures.py: one message naming every failed item of a run."""

import dagster as dg

from snoiq_assets.defs.failures import partial_failure
from snoiq_assets.lib.failures import PartialFailures


def test_partial_failures_message_and_metadata():
    failures = PartialFailures("hrrr_fields", ["T00", "T01", "T02"])
    assert not failures
    failures.add("T02", "no idx", file="raw/b", quarantined_to="")
    failures.add("T01", "truncated", file="raw/a", quarantined_to="quarantine/raw/a", message_number=3)
    assert failures.good == ["T00"]
    text = failures.message("nothing is written")
    assert text == ("hrrr_fields: 2 of 3 partitions failed (T01, T02); nothing is written. "
                    "hrrr_fields T01: truncated (moved to quarantine/raw/a); hrrr_fields T02: no idx")
    failure = partial_failure(failures, "nothing is written", extra=1)
    assert isinstance(failure, dg.Failure) and failure.description == text
    md = failure.metadata
    assert md["good_partitions"].value == ["T00"] and set(md["failed_partitions"].value) == {"T01", "T02"}
    # the first failed partition's details, flat
    assert md["file"].value == "raw/a" and md["message_number"].value == 3 and md["quarantined_to"].value == "quarantine/raw/a"
    assert md["extra"].value == 1

    one = PartialFailures("trained_models", ["xgboost"], what="model_types")
    one.add("xgboost", "ValueError: bad")
    assert one.message("nothing is stored") == "trained_models xgboost: ValueError: bad"
