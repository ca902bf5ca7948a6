import pytest

from snoiq_assets.lib.hrrr.inventory import IdxError, group_ranges, parse_idx, select, subset_idx
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES, resolve, search_pattern


@pytest.fixture(scope="module")
def real_idx(sample_dir):
    return (sample_dir / "hrrr" / "hrrr.t00z.wrfsfcf00.grib2.idx").read_text()


def test_parse_real_idx(real_idx):
    entries = parse_idx(real_idx)
    assert len(entries) == 170
    first, unnamed, last = entries[0], entries[2], entries[-1]
    assert (first.msg, first.start, first.end, first.variable, first.level, first.forecast) == (
        "1", 0, 404022, "REFC", "entire atmosphere", "anl")
    assert unnamed.variable == "var discipline=0 center=7 local_table=1 parmcat=16 parm=201"
    assert (unnamed.start, unnamed.end) == (640892, 1192792)
    assert last.msg == "170" and last.start == 138388309 and last.end is None
    for a, b in zip(entries, entries[1:]):
        assert a.end == b.start - 1
    assert parse_idx(real_idx, file_size=138400000)[-1].end == 138399999


def test_herbie_style_search(real_idx):
    entries = parse_idx(real_idx)
    hits = select(entries, ":(TMP|DPT):2 m above ground:|:SNOD:surface:")
    assert [e.number for e in hits] == [70, 71, 74]


def test_default_selection_and_ranges(real_idx):
    entries = parse_idx(real_idx)
    chosen = select(entries, search_pattern(resolve(DEFAULT_VARIABLES)))
    assert chosen == select(entries, search_pattern(resolve(DEFAULT_VARIABLES), 0))
    assert select(entries, search_pattern(resolve(DEFAULT_VARIABLES), 1)) == []
    assert [e.number for e in chosen] == [65, 68, 70, 71, 74, 77, 78, 83, 84, 90]
    assert [e.variable for e in chosen] == ["ASNOW", "WEASD", "SNOD", "TMP", "DPT", "UGRD", "VGRD", "PRATE",
                                            "APCP", "CSNOW"]
    ranges = group_ranges(chosen)
    assert [[e.number for e in r.entries] for r in ranges] == [[65], [68], [70, 71], [74], [77, 78], [83, 84], [90]]
    assert ranges[2].header == "bytes=36943068-38436247"   # SNOD..TMP 2 m, ends before POT (msg 72)
    assert ranges[-1].header == "bytes=52811691-52811878"
    sizes = [r.length for r in ranges]
    rebased = parse_idx(subset_idx(ranges, sizes))
    assert [e.start for e in rebased][:3] == [0, sizes[0], sizes[0] + sizes[1]]
    assert [e.variable for e in rebased] == [e.variable for e in chosen]


def test_last_message_range_is_open_ended(real_idx):
    entries = parse_idx(real_idx)
    ranges = group_ranges(select(entries, ":SBT11[34]:"))
    assert len(ranges) == 1 and ranges[0].end is None and ranges[0].header == "bytes=136934894-"


@pytest.mark.parametrize("text", [
    "", "not an idx\n", "1:0:d=2023120100:TMP\n",
    "1:100:d=2023120100:TMP:surface:anl:\n2:50:d=2023120100:DPT:surface:anl:\n",
])
def test_bad_idx(text):
    with pytest.raises(IdxError):
        parse_idx(text)


def test_ecmwf_index_is_rejected(sample_dir):
    text = (sample_dir / "hrrr" / "20231201000000-0h-oper-fc.index").read_text()
    with pytest.raises(IdxError, match="line 1"):
        parse_idx(text)
