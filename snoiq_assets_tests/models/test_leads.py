"""Per-lead scoring (lib/models/leads.py) and the forecast path of train_and_evaluate: numbers
checked by hand, the split between cycles, and refusals with the reason and number needed."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from snoiq_assets.lib.features.hourly import build_hourly_table
from snoiq_assets.lib.models import InsufficientDataError, ModelError
from snoiq_assets.lib.models import leads as L
from snoiq_assets.lib.models.evaluate import RunSpec, train_and_evaluate

UTC = dt.timezone.utc
T0 = dt.datetime(2023, 1, 1, tzinfo=UTC)


def test_skill_by_lead_by_hand():
    frame = pl.DataFrame({
        "forecast_hour": [1.0, 1.0, 2.0, 2.0], "observed": [0.0, 2.0, 0.0, 2.0], "predicted": [1.0, 1.0, 0.0, 3.0],
        "persistence": [0.0, 0.0, 0.0, 0.0], "climatology": [1.0, 1.0, 1.0, 1.0], "raw_forecast": [2.0, 2.0, 1.0, 1.0],
    })
    t = L.skill_by_lead(frame, "xgboost")
    row = t.filter((pl.col("lead_hour") == 1) & (pl.col("model") == "xgboost")).row(0, named=True)
    assert (row["rmse"], row["mae"], row["bias"], row["n_rows"]) == (1.0, 1.0, 0.0, 2)
    assert row["skill_vs_persistence"] == pytest.approx(1 - 1 / 2)  # persistence MSE (0 + 4) / 2
    assert row["skill_vs_raw_forecast"] == pytest.approx(1 - 1 / 2)  # raw MSE (4 + 0) / 2
    pers2 = t.filter((pl.col("lead_hour") == 2) & (pl.col("model") == "persistence")).row(0, named=True)
    assert pers2["rmse"] == pytest.approx(np.sqrt(2)) and pers2["bias"] == -1.0 and pers2["skill_vs_persistence"] is None
    # lead 1: 1.0 vs climatology 1.0 is not a win (strictly lower is); lead 2: 0.707 beats all.
    assert L.baseline_failures(t, "xgboost") == ["lead 1: climatology RMSE 1.000 <= xgboost 1.000"]
    assert L.rmse_table(t).columns == ["lead_hour", "xgboost", "persistence", "climatology", "raw_forecast"]


def _table(days=12):
    """Hourly cycles with leads 1-3 at one station; the observation is a diurnal wave warming by
    0.5 degC a day and the 'NWP' is the truth plus a lead-dependent bias the model can learn."""
    def truth(t):
        return 5 * np.sin(2 * np.pi * (t.hour + t.minute / 60) / 24) + 0.5 * (t - T0).total_seconds() / 86400

    rows, obs = [], []
    for h in range(days * 24):
        run = T0 + dt.timedelta(hours=h)
        for lead in (0, 1, 2, 3):
            vt = run + dt.timedelta(hours=lead)
            rows.append({"station_id": "S1", "run_time": run, "forecast_hour": lead, "valid_time": vt,
                         "tmp_2m_k__centre": truth(vt) + 273.15 + 0.8 * lead})
    for m in range(-30 * 60, (days * 24 + 4) * 60, 10):
        t = T0 + dt.timedelta(minutes=m)
        obs.append({"station_id": "S1", "timestamp_utc": t, "resolution": "subhourly",
                    "air_temp_c": truth(t)})
    grid = pl.DataFrame(rows).with_columns(pl.col("forecast_hour").cast(pl.Int32))
    observations = pl.DataFrame(obs).with_columns(pl.col("timestamp_utc").cast(pl.Datetime("us", "UTC")))
    return build_hourly_table(grid.lazy(), observations.lazy(), "air_temp_c", lags=(0, 1), leads=[1, 2, 3])


def test_forecast_split_per_lead_scores_and_refusals():
    table, info = _table()
    spec = RunSpec(model_type="lightgbm", target="air_temp_c", hourly=True, split_date=dt.date(2023, 1, 10), cv_folds=2,
                   residual_of="raw_forecast", params={"n_estimators": 60, "min_child_samples": 5})
    r = train_and_evaluate(table, info, spec)
    assert r.window["test_cycles_from"] == "2023-01-10" and r.window["train_end"] <= "2023-01-09T23:00"
    assert r.test_frame["cycle_time"].min() == dt.datetime(2023, 1, 10, tzinfo=UTC)  # no cycle before the split
    assert r.by_lead["lead_hour"].unique().sort().to_list() == [1, 2, 3]
    raw = r.by_lead.filter(pl.col("model") == "raw_forecast").sort("lead_hour")
    assert raw["bias"].to_list() == pytest.approx([0.8, 1.6, 2.4], abs=1e-6)  # the planted NWP bias
    assert r.metrics["baseline_failures"] == [] and r.metrics["beats_baselines_every_lead"] is True
    with pytest.raises(ModelError, match=r"lead\(s\) \[5\] are not in the training table; it has leads \[1, 2, 3\]"):
        train_and_evaluate(table, info, RunSpec(**{**spec.__dict__, "leads": (1, 5)}))
    with pytest.raises(ModelError, match="residual_of must name a baseline column"):
        train_and_evaluate(table, info, RunSpec(**{**spec.__dict__, "residual_of": "persistence"}))
    # A split on the last day's last hours leaves too few test rows per lead: says how many are needed.
    late = RunSpec(**{**spec.__dict__, "split_date": dt.datetime(2023, 1, 12, 21, tzinfo=UTC), "min_test_rows": 5})
    with pytest.raises(InsufficientDataError, match=r"too few test rows at lead\(s\) \{.*\} \(need at least 5 per lead\)"):
        train_and_evaluate(table, info, late)
