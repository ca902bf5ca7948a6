"""What the fault tests run, the same in the test process and in a killed worker: a three-hour
single-run backfill of hrrr_fields (one variable, so each decode is light), and the training of
one small LightGBM model on the real GSOD Portland table (``train_lightgbm``)."""

import datetime as dt

from snoiq_assets.defs.hrrr.assets import hrrr_fields, hrrr_grid
from snoiq_assets_tests.helpers import STATION_INDEX_SPEC

PKS = ["2023-01-01T00", "2023-01-01T01", "2023-01-01T02"]
VARIABLES = ["tmp_2m_k"]


def run_of(pk: str) -> dt.datetime:
    return dt.datetime.strptime(pk, "%Y-%m-%dT%H").replace(tzinfo=dt.timezone.utc)


def fields_range():
    return [hrrr_grid, hrrr_fields, STATION_INDEX_SPEC], {
        "selection": [hrrr_fields],
        "tags": {"dagster/asset_partition_range_start": PKS[0], "dagster/asset_partition_range_end": PKS[-1]},
        "run_config": {"ops": {"hrrr_fields": {"config": {"leads": [0], "variables": VARIABLES}}}},
    }


def train_lightgbm():
    """LightGBM alone for the demo's Portland spec (landed and registered by the test first)."""
    from snoiq_assets.defs.features.assets import training_table
    from snoiq_assets.defs.models.training import trained_models
    from snoiq_assets_tests.models.conftest import PORTLAND_SPEC, STATION_ASSETS, TABLE_UPSTREAM, train_run_config

    return [*STATION_ASSETS, *TABLE_UPSTREAM, training_table, trained_models], {
        "selection": [trained_models], "partition_key": PORTLAND_SPEC,
        "run_config": train_run_config(model_types=["lightgbm"])}


SCENARIOS = {"fields_range": fields_range, "train_lightgbm": train_lightgbm}
