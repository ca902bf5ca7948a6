"""What the fault tests run: a three-hour single-run backfill of hrrr_fields (one variable,
so each decode is light), the same in the test process and in a killed worker."""

import datetime as dt

from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid

PKS = ["2023-01-01T00", "2023-01-01T01", "2023-01-01T02"]
VARIABLES = ["tmp_2m_k"]


def run_of(pk: str) -> dt.datetime:
    return dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=dt.timezone.utc)


def fields_range():
    return [hrrr_grid, hrrr_fields], {
        "selection": [hrrr_fields],
        "tags": {"dagster/asset_partition_range_start": PKS[0], "dagster/asset_partition_range_end": PKS[-1]},
        "run_config": {"ops": {"hrrr_fields": {"config": {"forecast_hour": 0, "variables": VARIABLES}}}},
    }


SCENARIOS = {"fields_range": fields_range}
