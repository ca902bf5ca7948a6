"""Decision accuracy by size on the real DataDecide grid, against an independent computation."""

import csv
import itertools
import statistics

import polars as pl
import pytest

from snoiq_assets.lib.datadecide.decision import DecisionError, decision_accuracy_by_size, eval_values
from snoiq_assets.lib.datadecide.hf import ingest_eval_results
from snoiq_assets.lib.storage import LocalStore

GRID = "datadecide/datadecide_grid_olmes10_dev10.csv"


def _independent(path) -> dict[str, tuple[int, int]]:
    """Plain Python over the CSV: {size: (agreeing pairs, pairs)} against the largest size."""
    runs: dict[tuple[str, str], list[float]] = {}
    params: dict[str, float] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            runs.setdefault((row["size"], row["recipe"]), []).append(float(row["value"]))
            params[row["size"]] = float(row["params_N"])
    means = {key: statistics.mean(v) for key, v in runs.items()}
    largest = max(params, key=params.get)
    recipes = sorted({r for _, r in means})
    out = {}
    for size in params:
        if size == largest:
            continue
        agree = total = 0
        for a, b in itertools.combinations(recipes, 2):
            truth = means[(largest, a)] - means[(largest, b)]
            guess = means[(size, a)] - means[(size, b)]
            total += 1
            agree += (truth > 0) == (guess > 0)
        out[size] = (agree, total)
    return out


@pytest.fixture(scope="module")
def grid_table(sample_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    store = LocalStore(tmp / "home")
    store.put_file("raw/datadecide/eval_results/grid.csv", sample_dir / GRID)
    res = ingest_eval_results(store, tmp / "eval.parquet")
    assert res.rows == 420 and res.rejects == []
    return pl.read_parquet(tmp / "eval.parquet")


def test_matches_independent_computation(grid_table, sample_dir):
    table = decision_accuracy_by_size(eval_values(grid_table))
    expected = _independent(sample_dir / GRID)
    assert table["size"].to_list() == ["4M", "6M", "8M", "10M", "14M", "16M", "20M", "60M", "90M", "150M", "300M", "530M", "750M"]
    assert set(table["target_size"]) == {"1B"} and set(table["recipes"]) == {10}
    for row in table.iter_rows(named=True):
        agree, pairs = expected[row["size"]]
        assert (row["agree"], row["pairs"]) == (agree, pairs), row["size"]
        assert row["decision_accuracy"] == pytest.approx(agree / pairs)
        assert (row["ties_at_size"], row["ties_at_target"], row["min_runs"], row["max_runs"]) == (0, 0, 3, 3)
    # the figures data/sample/SOURCES.md gives for this subset (45 pairs)
    got = {r["size"]: round(100 * r["decision_accuracy"], 1) for r in table.iter_rows(named=True)}
    assert got == {"4M": 40.0, "6M": 15.6, "8M": 35.6, "10M": 35.6, "14M": 55.6, "16M": 84.4, "20M": 75.6,
                   "60M": 82.2, "90M": 82.2, "150M": 86.7, "300M": 86.7, "530M": 95.6, "750M": 93.3}


def _evals(rows):
    return pl.DataFrame(rows, schema=["recipe", "recipe_key", "size", "size_params", "run", "metric", "value"], orient="row")


def test_ties_and_missing_runs():
    rows = [
        # 1B: a < b < c, and d ties with c
        ("A", "a", "1B", 1e9, "r0", "m", 1.0), ("B", "b", "1B", 1e9, "r0", "m", 2.0),
        ("C", "c", "1B", 1e9, "r0", "m", 3.0), ("D", "d", "1B", 1e9, "r0", "m", 3.0),
        # 4M: a has two runs (mean 5), b one run (5: a tie), c missing, d 1
        ("A", "a", "4M", 4e6, "r0", "m", 4.0), ("A", "a", "4M", 4e6, "r1", "m", 6.0),
        ("B", "b", "4M", 4e6, "r0", "m", 5.0), ("D", "d", "4M", 4e6, "r0", "m", 1.0),
    ]
    row = decision_accuracy_by_size(_evals(rows)).row(0, named=True)
    # recipes a, b, d at 4M; pairs (a,b) tie at 4M -> half; (a,d) truth a<d, 4M a>d -> wrong; (b,d) truth b<d, 4M b>d -> wrong
    assert (row["recipes"], row["pairs"], row["agree"], row["ties_at_size"], row["ties_at_target"]) == (3, 3, 0.5, 1, 0)
    assert (row["min_runs"], row["max_runs"]) == (1, 2)
    assert row["decision_accuracy"] == pytest.approx(0.5 / 3)
    with pytest.raises(DecisionError, match="no finite eval result values"):
        decision_accuracy_by_size(_evals([("A", "a", "1B", 1e9, "r0", "m", float("nan"))]))


def test_forecast_on_the_same_pairs():
    rows = [(r.upper(), r, size, p, "r0", "m", v) for size, p, vals in
            (("1B", 1e9, (1.0, 2.0, 3.0)), ("20M", 2e7, (3.0, 2.0, 1.0))) for r, v in zip("abc", vals)]
    forecasts = pl.DataFrame({
        "recipe_key": ["a", "b", "c", "a", "b"], "size": ["20M"] * 5, "metric": ["m"] * 5,
        "model": ["xgboost", "xgboost", "xgboost", "lightgbm", "lightgbm"],
        "prediction": [1.5, 2.5, 2.0, 9.0, 1.0],
    })
    row = decision_accuracy_by_size(_evals(rows), forecasts, "xgboost").row(0, named=True)
    # ranking at 20M reverses all 3 pairs; the forecast gets (a,b) and (a,c) right, (b,c) wrong
    assert (row["pairs"], row["decision_accuracy"]) == (3, 0.0)
    assert (row["forecast_model"], row["forecast_pairs"]) == ("xgboost", 3)
    assert row["forecast_decision_accuracy"] == pytest.approx(2 / 3)
    assert row["forecast_note"] == "forecasts for 3 of 3 recipes at 20M"
    other = decision_accuracy_by_size(_evals(rows), forecasts, "lightgbm").row(0, named=True)
    assert (other["forecast_pairs"], other["forecast_decision_accuracy"]) == (1, 0.0)
