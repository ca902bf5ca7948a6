"""The central result on real data: on the INDOT road-weather stations, a model trained on
December-February beats raw HRRR, persistence (the last observation at or before the cycle,
held for every lead) and climatology in RMSE at EVERY lead 1-18 on March; for 2 m air
temperature and for pavement temperature. The per-lead table is printed (pytest -s or -rA)."""

import functools

import polars as pl
import pytest

from snoiq_assets.lib.features.hourly import build_hourly_table
from snoiq_assets.lib.features.road_weather import SPECS, read_case
from snoiq_assets.lib.models import leads as L
from snoiq_assets.lib.models.evaluate import RunSpec, train_and_evaluate

# Modest sizes: the result must not hinge on heavy tuning. Every fit uses both cores. The test
# trains one type, LightGBM with the specs' settings (about 5 s with its two folds on these 145,000
# rows); the specs' three types, as `make demo` trains them, are compared in the README's tables.
PARAMS = {"lightgbm": {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 50}}
MODEL_TYPES = {"rwis_air_temp": ("lightgbm",), "rwis_pavement_temp": ("lightgbm",)}


@functools.lru_cache(maxsize=1)
def _case(directory):
    return read_case(directory)


@pytest.mark.slow
@pytest.mark.parametrize("spec_id", sorted(SPECS))
def test_champion_beats_raw_hrrr_persistence_and_climatology_at_every_lead_in_march(sample_dir, spec_id):
    spec = SPECS[spec_id]
    forecasts, observations, sites = _case(sample_dir / "road_weather")
    table, info = build_hourly_table(forecasts.lazy(), observations.lazy(), spec["target"], leads=list(spec["leads"]))
    assert info["leads"] == list(range(1, 19)) and info["locations"] == sites["station_id"].to_list()
    assert info["missing_features"]["rows_affected"] == 0
    results = {}
    for model_type in MODEL_TYPES[spec_id]:
        results[model_type] = train_and_evaluate(table, info, RunSpec(
            model_type=model_type, target=spec["target"], hourly=True, split_date=spec["split_date"], cv_folds=2,
            residual_of="raw_forecast", leads=spec["leads"], params=PARAMS[model_type], n_jobs=-1))
    champion = min((r for r in results.values() if not r.metrics["baseline_failures"]),
                   key=lambda r: r.metrics["rmse"], default=None)
    tables = "\n\n".join(L.format_rmse_table(r.by_lead, f"{spec_id}: {mt} and baselines, RMSE degC, March 2019")
                         for mt, r in results.items())
    print("\n" + tables)
    assert champion is not None, tables
    window = champion.window
    assert window["train_start"].startswith("2018-12-01") and window["train_end"].startswith("2019-02-28")
    assert window["test_start"].startswith("2019-03-01") and window["test_cycles_from"] == "2019-03-01"
    assert champion.metrics["cv_folds"] == 2  # rolling-origin folds inside December-February
    wide = L.rmse_table(champion.by_lead)
    model = champion.model.model_type
    assert wide["lead_hour"].to_list() == list(range(1, 19))
    for base in ("persistence", "climatology", "raw_forecast"):
        assert (wide[model] < wide[base]).all(), (base, tables)
    # Raw HRRR is the hardest baseline after lead 1; its error grows with lead, as SOURCES.md says.
    assert wide["raw_forecast"][-1] > wide["raw_forecast"][0]
    n = champion.by_lead.filter(pl.col("model") == model)["n_rows"]
    assert n.min() > 1500  # four stations' March cycles (Jeffersonville is out until March 14)
