"""Column descriptions derived from the naming convention (lib/columns.py), on real column
names of the clean station table and the HRRR variables."""

from snoiq_assets.lib.columns import describe, describe_raw, unit_of
from snoiq_assets.lib.hrrr.variables import DEFAULT_VARIABLES
from snoiq_assets.lib.stations import schema


def test_every_clean_station_column_is_described_with_its_unit():
    for name in schema.CLEAN:
        text = describe(name)
        assert text, name
        if unit_of(name):
            assert text.endswith(unit_of(name)), (name, text)
    assert describe("air_temp_c") == "air temperature, degC"
    assert describe("wind_speed_ms") == "wind speed, m/s"


def test_hrrr_variables_and_their_derived_columns():
    for var in DEFAULT_VARIABLES:
        assert describe(var), var
        assert describe(f"{var}__mean") and describe(f"grid_{var}__grad_sn__lag1"), var
    assert describe("tmp_2m_k") == "HRRR 2 m air temperature, K"
    assert describe("grid_tmp_2m_k__mean__lag1") == (
        "HRRR 2 m air temperature, K; mean over the station's window of cells, 1 period(s) before the row's period")
    assert describe("target__lag24h") == "the target, 24 hour(s) before the row's period"
    assert describe("obs_precip_mm") == "observed at the station at the valid time: precipitation over the period, mm"
    assert describe("precip_mm__roll7d").endswith("mm, mean over the 7 days before the row's period")


def test_unknown_names_are_not_guessed():
    assert describe("t_hr_avg") is None and describe("grid_foo__mean") is None
    assert describe_raw("t_hr_avg") == "field `t_hr_avg` of the station file as landed (source units, not converted)"


def test_every_datadecide_schema_column_is_described_in_its_tables_terms():
    from snoiq_assets.lib.columns import describe_for, unit_for
    from snoiq_assets.lib.datadecide import decision, features, hf, matching, names

    tables = {
        "decision_accuracy_by_size": list(decision.DECISION_SCHEMA),
        "hf_eval_results": hf.EVAL_SCHEMA.names,
        "matched_runs": list(matching.MATCHED_SCHEMA),
        "datadecide_checkpoints": list(matching.CHECKPOINT_SCHEMA),
        "early_window_features": ["project", "run_id", "run_name", "metric", "k", "x_axis", "final_x", "final_value",
                                  *features.FEATURE_COLUMNS, "recipe", "size"],
        "wandb_runs": list(names.PARSED_FIELDS),
    }
    undescribed = {t: [c for c in cols if not describe_for(t, c)] for t, cols in tables.items()}
    assert {t: c for t, c in undescribed.items() if c} == {}
    # A DataDecide `metric` is a logged metric's name, not the SnoIQ champion's rmse/mae choice.
    assert describe_for("wandb_history", "metric") == "metric name as logged"
    assert describe_for("champion_model", "metric") == "the metric compared (rmse or mae)"
    assert describe_for("wandb_runs", "summary.eval/downstream/boolq_acc").startswith(
        "the run's final (summary) value of `eval/downstream/boolq_acc`")
    assert describe_for("observations_clean", "summary.x") is None
    assert unit_for("early_window_features", "pl_c") is None and unit_for("observations_clean", "air_temp_c") == "degC"
