"""Lead schedule, lead lists and completeness (expected messages x leads against what landed)."""

import datetime as dt

import pytest

from snoiq_assets.lib.hrrr.inventory import parse_idx
from snoiq_assets.lib.hrrr.leads import HRRR_SCHEDULE, LeadError, LeadSchedule, completeness, messages_present, parse_leads
from snoiq_assets.lib.hrrr.variables import CATALOGUE, resolve

UTC = dt.timezone.utc


def test_hrrr_schedule():
    assert HRRR_SCHEDULE.leads_for(dt.datetime(2023, 1, 1, 0, tzinfo=UTC)) == list(range(49))
    assert HRRR_SCHEDULE.leads_for(dt.datetime(2023, 1, 1, 18, tzinfo=UTC)) == list(range(49))
    assert HRRR_SCHEDULE.leads_for(dt.datetime(2023, 1, 1, 5, tzinfo=UTC)) == list(range(19))
    # a deployment keeping only the first six hours
    short = LeadSchedule(max_lead=6, extended_max_lead=6)
    assert short.leads_for(dt.datetime(2023, 1, 1, 12, tzinfo=UTC)) == list(range(7))
    run = dt.datetime(2023, 1, 1, 5, tzinfo=UTC)
    assert HRRR_SCHEDULE.select(run, None) == list(range(19))
    assert HRRR_SCHEDULE.select(run, [3, 1, 3]) == [1, 3]
    with pytest.raises(LeadError, match=r"lead f19 is outside the configured leads of cycle 2023-01-01T05 \(f00-f18\)"):
        HRRR_SCHEDULE.select(run, [1, 19])
    with pytest.raises(LeadError, match="raw/x: lead f07 is outside"):
        short.check(run, 7, "raw/x")


def test_parse_leads():
    assert parse_leads("0-3,6, f09 ,f10-f11") == [0, 1, 2, 3, 6, 9, 10, 11]
    with pytest.raises(LeadError, match="'x' is not a lead"):
        parse_leads("1,x")
    with pytest.raises(LeadError, match="runs backwards"):
        parse_leads("6-2")


def test_completeness_names_missing_leads_and_messages(sample_dir):
    entries = parse_idx((sample_dir / "hrrr" / "hrrr.t00z.wrfsfcf00.grib2.idx").read_text())
    variables = resolve(CATALOGUE)
    f00 = messages_present(entries, variables, 0)
    assert f00 == set(CATALOGUE)     # the real f00 inventory lists all ten at their analysis times
    run = dt.datetime(2023, 12, 1, 0, tzinfo=UTC)
    ok = completeness(run, [0], variables, {0: f00})
    assert ok.complete and ok.describe() == "cycle 2023-12-01T00: all 1 leads x 10 messages present"
    # the same inventory read as f01's lists none of f01's messages
    assert messages_present(entries, variables, 1) == set()
    report = completeness(run, [0, 1, 2], variables, {0: f00 - {"csnow", "snod_m"}, 1: set()})
    assert not report.complete and report.missing_leads == [2] and report.present_leads == []
    assert report.missing_messages == {0: ["snod_m", "csnow"], 1: list(CATALOGUE)}
    assert report.as_dict()["missing_messages"]["f00"] == ["snod_m", "csnow"]
    assert report.describe().startswith("cycle 2023-12-01T00: 22 of 30 messages missing: missing leads f02; "
                                        "f00 lacks snod_m, csnow; f01 lacks tmp_2m_k")
