"""Floats in metadata are rounded for display in one place (defs/metadata.py): the rule, and
an asset's own metadata rounded by the IO manager in a real materialisation."""

import math

import dagster as dg
import polars as pl
import pytest

from snoiq_assets.defs.metadata import markdown_table, round_float, rounded


def test_round_float_keeps_what_a_reader_needs():
    assert round_float(1.0393217771) == 1.039
    assert round_float(273.14999389648) == 273.15
    assert round_float(5715423.4567) == 5715423.457
    assert round_float(0.0123456789) == 0.01235       # 4 significant digits below 1
    assert round_float(-0.000987654) == -0.0009877
    assert round_float(0.8671234) == 0.8671
    assert round_float(0.0) == 0.0 and math.isnan(round_float(float("nan"))) and round_float(float("inf")) == float("inf")


def test_markdown_table_rounds_floats_and_escapes_cells():
    rows = [{"model": "xgboost", "rmse": 0.123456789, "pairs": 12, "note": "a|b\nc"},
            {"model": "lightgbm", "rmse": 2.0004999, "pairs": 3, "note": None}]
    assert markdown_table(rows).splitlines() == [
        "| model | rmse | pairs | note |", "|---|---|---|---|",
        "| xgboost | 0.1235 | 12 | a\\|b c |", "| lightgbm | 2.0 | 3 |  |"]
    assert markdown_table([]) == ""


def test_rounded_reaches_into_json_and_tables_and_leaves_the_rest():
    table = dg.MetadataValue.table([dg.TableRecord({"lead": 1, "rmse": 1.03933333})],
                                   schema=dg.TableSchema(columns=[dg.TableColumn("lead", "int"), dg.TableColumn("rmse", "float")]))
    out = rounded({
        "rmse": 0.123456789, "rows": 12, "flag": True, "name": "x", "none": None,
        "boxed": dg.MetadataValue.float(2.718281828),
        "json": dg.MetadataValue.json({"by_lead": [{"lead": 1, "rmse": 1.2345678}], "share": 0.333333333}),
        "plain_dict": {"a": [0.11111111, 2]}, "table": table,
        "path": dg.MetadataValue.path("/tmp/x.parquet"),
    })
    assert out["rmse"] == 0.1235 and out["rows"] == 12 and out["flag"] is True and out["name"] == "x" and out["none"] is None
    assert out["boxed"].value == 2.718
    assert out["json"].data == {"by_lead": [{"lead": 1, "rmse": 1.235}], "share": 0.3333}
    assert out["plain_dict"] == {"a": [0.1111, 2]}
    assert out["table"].records[0].data == {"lead": 1, "rmse": 1.039} and out["table"].schema == table.schema
    assert out["path"].value == "/tmp/x.parquet"


@dg.asset
def scored(context: dg.AssetExecutionContext) -> pl.DataFrame:
    context.add_output_metadata({"rmse": 1.0393217771, "skill": 0.0123456789, "rows": 3,
                                 "by_lead": dg.MetadataValue.json({"1": 0.98765432})})
    return pl.DataFrame({"air_temp_c": [1.0, 2.0, 3.0]})


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_an_assets_own_metadata_is_rounded_by_the_io_manager(resources, instance):
    result = dg.materialize([scored], resources=resources, instance=instance)
    assert result.success
    md = result.asset_materializations_for_node("scored")[0].metadata
    assert md["rmse"].value == 1.039 and md["skill"].value == 0.01235 and md["rows"].value == 3
    assert md["by_lead"].data == {"1": 0.9877}
    # what the UI reads back from the instance
    stored = instance.get_latest_materialization_event(dg.AssetKey("scored")).asset_materialization.metadata
    assert stored["rmse"].value == 1.039 and stored["dagster/row_count"].value == 3
