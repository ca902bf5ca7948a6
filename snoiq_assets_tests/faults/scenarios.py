"""What the fault tests run, the same in the test process and in a killed worker: a three-hour
single-run backfill of hrrr_fields (one variable, so each decode is light), and the training of
one small LightGBM model on the real GSOD Portland table (``train_lightgbm``)."""

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
        "run_config": {"ops": {"hrrr_fields": {"config": {"leads": [0], "variables": VARIABLES}}}},
    }


def train_lightgbm():
    from snoiq_assets.defs.features.assets import training_table
    from snoiq_assets.defs.models.demo import demo_run_config
    from snoiq_assets.defs.models.training import trained_models
    from snoiq_assets_tests.models.conftest import FAST, STATION_ASSETS, TABLE_UPSTREAM

    cfg = demo_run_config("train", fast=True)
    cfg["ops"]["trained_models"]["config"].update(hyperparameters=dict(FAST), cv_folds=2)
    return [*STATION_ASSETS, *TABLE_UPSTREAM, training_table, trained_models], {
        "selection": [trained_models], "partition_key": "lightgbm", "run_config": cfg}


SCENARIOS = {"fields_range": fields_range, "train_lightgbm": train_lightgbm}
