"""Pairwise decision accuracy by model size (the DataDecide paper's headline table).

For one metric, every pair of recipes evaluated at the largest size is ordered by the recipes'
mean over runs (seeds or replicates) at that size: that is the "true" decision. At each smaller
size the same pair is ordered by its means there; the decision accuracy of that size is the share
of pairs whose order agrees. Order only is compared, so the metric's direction does not matter.

Rules, stated in the asset's metadata:
- ties at the largest size: the pair has no true order and is left out (``pairs`` excludes it,
  ``ties_at_target`` counts it);
- ties at the smaller size: the ranking makes no decision, counted as half right (a coin flip);
- missing runs: a recipe's mean is over the runs present (``min_runs``/``max_runs`` say how many);
  a recipe with no run at a size is left out of that size's pairs (``recipes`` counts those in).
"""

from __future__ import annotations

import itertools

import polars as pl

TIE_RULE = "pairs tied at the largest size are left out; a tie at the smaller size counts as half right"
MISSING_RULE = ("a recipe's score at a size is the mean over the runs present there (min_runs/max_runs); "
                "a recipe without runs at a size is left out of that size's pairs")

DECISION_SCHEMA = {
    "metric": pl.String, "size": pl.String, "size_params": pl.Float64, "target_size": pl.String,
    "recipes": pl.Int64, "pairs": pl.Int64, "agree": pl.Float64, "ties_at_size": pl.Int64,
    "ties_at_target": pl.Int64, "decision_accuracy": pl.Float64, "min_runs": pl.Int64, "max_runs": pl.Int64,
    "forecast_model": pl.String, "forecast_pairs": pl.Int64, "forecast_decision_accuracy": pl.Float64,
    "forecast_note": pl.String,
}


class DecisionError(ValueError):
    pass


def recipe_means(evals: pl.DataFrame) -> pl.DataFrame:
    """Per (metric, recipe_key, size): mean of the runs' values and how many runs there were.

    ``evals`` has recipe_key, recipe (display), size, size_params, metric, value; one row per run.
    """
    return (
        evals.filter(pl.col("value").is_not_null() & pl.col("value").is_finite())
        .group_by(["metric", "recipe_key", "size"])
        .agg(pl.col("recipe").first(), pl.col("size_params").max(), pl.col("value").mean().alias("mean"),
             pl.len().alias("runs"))
    )


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _pair_agreement(small: dict[str, float], target: dict[str, float]) -> tuple[int, float, int, int]:
    """(pairs, agree, ties at the small size, ties at the target) over recipes present in both."""
    pairs, agree, ties_small, ties_target = 0, 0.0, 0, 0
    for a, b in itertools.combinations(sorted(set(small) & set(target)), 2):
        truth = _sign(target[a] - target[b])
        if truth == 0:
            ties_target += 1
            continue
        pairs += 1
        guess = _sign(small[a] - small[b])
        if guess == 0:
            ties_small += 1
            agree += 0.5
        elif guess == truth:
            agree += 1.0
    return pairs, agree, ties_small, ties_target


def decision_accuracy_by_size(evals: pl.DataFrame, forecasts: pl.DataFrame | None = None,
                              forecast_model: str | None = None) -> pl.DataFrame:
    """The decision-accuracy table: one row per (metric, smaller size).

    ``forecasts`` (optional): final_metric_model's out-of-fold predictions (recipe_key, size,
    metric, model, prediction). For each size, the same target-size pairs are ordered by the mean
    prediction of ``forecast_model`` instead, over the pairs where both recipes have a forecast.
    """
    means = recipe_means(evals)
    if means.height == 0:
        raise DecisionError("no finite eval result values: nothing to rank")
    fc = None
    if forecasts is not None and forecasts.height and forecast_model:
        fc = (forecasts.filter((pl.col("model") == forecast_model) & pl.col("prediction").is_finite()
                               & pl.col("recipe_key").is_not_null() & pl.col("size").is_not_null())
              .group_by(["metric", "recipe_key", "size"]).agg(pl.col("prediction").mean()))
    rows = []
    for (metric,), m in means.group_by(["metric"], maintain_order=True):
        sizes = m.group_by("size").agg(pl.col("size_params").max()).sort("size_params")
        target_size = sizes["size"][-1]
        by_size = {s: dict(zip(g["recipe_key"], g["mean"])) for (s,), g in m.group_by(["size"])}
        runs = {s: (int(g["runs"].min()), int(g["runs"].max())) for (s,), g in m.group_by(["size"])}
        target = by_size[target_size]
        for size, size_params in sizes.iter_rows():
            if size == target_size:
                continue
            pairs, agree, ties_small, ties_target = _pair_agreement(by_size[size], target)
            row = {
                "metric": metric, "size": size, "size_params": size_params, "target_size": target_size,
                "recipes": len(set(by_size[size]) & set(target)), "pairs": pairs, "agree": agree,
                "ties_at_size": ties_small, "ties_at_target": ties_target,
                "decision_accuracy": agree / pairs if pairs else None,
                "min_runs": runs[size][0], "max_runs": runs[size][1],
                "forecast_model": forecast_model, "forecast_pairs": 0, "forecast_decision_accuracy": None,
            }
            row["forecast_note"] = _forecast(row, fc, metric, size, by_size[size], target)
            rows.append(row)
    return pl.DataFrame(rows, schema=DECISION_SCHEMA).sort(["metric", "size_params"])


def _forecast(row: dict, fc: pl.DataFrame | None, metric: str, size: str, small: dict, target: dict) -> str:
    """Fill the forecast columns of ``row`` in place; return a note saying what they rest on."""
    if fc is None:
        return "no final_metric_model predictions available"
    here = fc.filter((pl.col("metric") == metric) & (pl.col("size") == size))
    pred = dict(zip(here["recipe_key"], here["prediction"]))
    covered = {k: v for k, v in pred.items() if k in small}
    pairs, agree, _, _ = _pair_agreement(covered, target)
    row["forecast_pairs"] = pairs
    if pairs:
        row["forecast_decision_accuracy"] = agree / pairs
        return f"forecasts for {len(covered)} of {row['recipes']} recipes at {size}"
    other = sorted(fc.filter(pl.col("size") == size)["metric"].unique().to_list())
    return (f"no forecast of {metric} for two or more of these recipes at {size} "
            f"(final_metric_model forecasts {', '.join(other) if other else 'nothing'} at this size)")[:500]


def eval_values(results: pl.DataFrame) -> pl.DataFrame:
    """hf_eval_results rows -> (recipe, recipe_key, size, size_params, run, metric, value) at each
    run's last evaluated step; runs are seeds when known, else replicates."""
    keep = results.filter(pl.col("params").is_not_null() & pl.col("recipe_key").is_not_null())
    long = (
        keep.select("data", "recipe_key", "params", "size_params", "seed", "replicate", "step", "task",
                    pl.col("metrics").map.entries())
        .explode("metrics").filter(pl.col("metrics").is_not_null())
        .with_columns(
            # the same metric key (acc_raw, primary_score) is logged for every task: qualify it
            pl.coalesce(pl.concat_str([pl.col("task"), pl.lit("/"), pl.col("metrics").struct.field("key")]),
                        pl.col("metrics").struct.field("key")).alias("metric"),
            pl.col("metrics").struct.field("value").alias("value"),
            pl.coalesce(pl.concat_str([pl.lit("seed "), pl.col("seed").cast(pl.String)]),
                        pl.concat_str([pl.lit("replicate "), pl.col("replicate").cast(pl.String)]),
                        pl.lit("run")).alias("run"),
        )
        .drop("metrics", "task")
    )
    last = long.group_by(["recipe_key", "params", "run", "metric"]).agg(pl.col("step").max().alias("last_step"))
    long = long.join(last, on=["recipe_key", "params", "run", "metric"], how="left").filter(
        (pl.col("step") == pl.col("last_step")) | pl.col("last_step").is_null())
    return long.select(pl.col("data").alias("recipe"), "recipe_key", pl.col("params").alias("size"), "size_params",
                       "run", "metric", "value")
