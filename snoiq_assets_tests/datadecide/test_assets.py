"""All DataDecide assets materialised from the real shared files on both backends, queried via DuckDB."""

import json
import socket

import dagster as dg
import duckdb
import polars as pl

from snoiq_assets.defs.datadecide import build_defs
from snoiq_assets.defs.datadecide.assets import ASSETS, CHECKS
from snoiq_assets.defs.datadecide.demo import seed_demo
from snoiq_assets.settings import Settings

SECRET = "wandb-test-key-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def _land_extras(store):
    runs = [
        {"id": "4n49wksn", "name": "falcon_and_cc_tulu_qc_top10-60M-5xC-14", "project": "olmo-ladder-davidh",
         "config": {"optimizer": "adamw", "lr": 0.004}, "summary": {"eval/acc": 0.41, "oe_eval_metrics": json.dumps({"arc_easy": {"acc": 0.55}})}},
    ]
    later = [
        {"id": "x2", "name": "c4-4M-5xC", "project": "olmo-ladder-davidh", "config": {"optimizer": "adamw", "lr": 0.01, "warmup": 100},
         "summary": {"eval/acc": "n/a", "oe_eval_metrics": json.dumps({"arc_easy": {"acc": 0.31}})}},
    ]
    store.put("raw/wandb/runs/olmo-ladder-davidh/4n49wksn.jsonl", (json.dumps(runs[0]) + "\n").encode())
    store.put("raw/wandb/runs/olmo-ladder-davidh/x2.jsonl", (json.dumps(later[0]) + "\n" + '{"id": "x3", "name": \n').encode())
    outputs = [
        {"doc_id": 1, "question": "Which is a mammal?", "answers": ["cat", "cod"], "gold": 0, "prediction": 0, "correct": True},
        {"doc_id": 2, "question": "2+2?", "choices": ["3", "4"], "label": 1, "prediction": 0, "correct": False},
    ]
    evals = [
        {"params": "4M", "data": "C4", "seed": "default", "step": 5000, "tokens": 2.0e8, "compute": 1e16, "task": "arc_easy",
         "metrics": json.dumps({"primary_score": 0.5, "acc_raw": 0.5, "note": "ok"}), "outputs": outputs},
        {"params": "4M", "data": "C4", "seed": 6198, "step": 10000, "task": "arc_easy", "metrics": {"primary_score": 0.6}},
        {"params": "4M", "data": "C4", "seed": 6198, "step": "ten", "task": "arc_easy", "metrics": {}},
    ]
    body = "\n".join(json.dumps(e) for e in evals) + "\n{broken\n"
    store.put("raw/datadecide/eval_results/landed/test.jsonl", body.encode())


def test_group_wiring():
    keys = {a.key.to_user_string() for a in build_defs(Settings()).assets}
    assert {"wandb_runs", "wandb_history", "hf_eval_results", "matched_runs", "early_window_features", "final_metric_model",
            "datadecide_checkpoints", "decision_accuracy_by_size"} <= keys
    assert {a.group_names_by_key[a.key] for a in ASSETS} == {"datadecide"}


def test_materialise_all_and_query(store, settings, resources, instance, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    landed = seed_demo(store)
    assert "raw/wandb/history/peteish-moreeval/190M-1xC.csv" in landed
    _land_extras(store)
    result = dg.materialize([*ASSETS, *CHECKS], resources=resources, instance=instance)
    assert result.success
    for check in result.get_asset_check_evaluations():
        assert check.passed, check.check_name
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    export_md = mats["wandb_export"].materialization.metadata
    assert "WANDB_API_KEY is not set" in export_md["status"].value
    assert "HF_HUB_OFFLINE" in mats["hf_eval_results"].materialization.metadata["hub"].value
    for name in ("wandb_runs", "wandb_history", "hf_eval_results", "matched_runs", "early_window_features", "final_metric_model",
                 "datadecide_checkpoints", "decision_accuracy_by_size"):
        assert store.exists(f"lake/{name}.parquet"), name
    assert store.exists("lake/datadecide/wandb_history_wide.parquet")

    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        # history: 5 real runs, long and wide
        assert q("select count(distinct project || run_id) from wandb_history") == [(5,)]
        assert q("select count(*) from wandb_history_wide") == [(181,)]
        val = q("""select value from wandb_history where project='peteish-moreeval' and run_id='760M-1xC'
                   and metric='eval/c4_en-validation/CrossEntropyLoss' order by step desc limit 1""")[0][0]
        last = pl.read_csv(store.get("raw/wandb/history/peteish-moreeval/760M-1xC.csv")).sort("_step")[-1, "eval/c4_en-validation/CrossEntropyLoss"]
        assert abs(val - last) < 1e-12
        # runs: 5 from history + 2 landed records, parsed and flattened
        assert q("select count(*) from wandb_runs") == [(7,)]
        row = q("""select recipe, size, seed, chinchilla_mult, "summary.oe_eval_metrics.arc_easy.acc", "config.warmup"
                   from wandb_runs where run_id='4n49wksn'""")
        assert row == [("falcon_and_cc_tulu_qc_top10", "60M", 14, 5.0, 0.55, None)]
        assert q("""select "summary.eval/acc", "summary.eval/acc__text" from wandb_runs where run_id='x2'""") == [(None, "n/a")]
        assert q("select size from wandb_runs where project='peteish-moreeval' order by size") == [("190M",), ("370M",), ("760M",)]
        assert q("select file, line from wandb_runs_rejects") == [("raw/wandb/runs/olmo-ladder-davidh/x2.jsonl", 2)]
        # hf eval results: typed, nested outputs, flattened views, rejects with line numbers; the real
        # grid CSV's 420 rows (10 recipes x 14 sizes x 3 replicates) beside the landed JSONL's 2
        assert q("select count(*) from hf_eval_results") == [(422,)]
        assert q("select seed, step, primary_score from hf_eval_results where step is not null order by step") == [
            (6198, 5000, 0.5), (6198, 10000, 0.6)]
        assert q("""select data, recipe_key, params, size_params, seed, replicate, primary_score, primary_metric,
                    metrics_text['split'] from hf_eval_results where source_line = 2 and source_file like '%.csv'""") == [
            ("DCLM-Baseline", "dclmbaseline", "4M", 3.7e6, None, 0, 1.4155179287613582,
             "olmes10_mean_neg_ln_correct_prob_per_char", "train")]
        assert q("select question, answers, correct from hf_eval_outputs order by doc_id") == [
            ("Which is a mammal?", ["cat", "cod"], True), ("2+2?", ["3", "4"], False)]
        assert ("acc_raw", 0.5) in q("select metric, value from hf_eval_metrics where step=5000")
        assert q("select count(distinct recipe_key), count(distinct params) from hf_eval_results where replicate is not null") == [(10, 14)]
        rej = q("select file, line, error from hf_eval_results_rejects order by line")
        assert [(f, l) for f, l, _ in rej] == [("raw/datadecide/eval_results/landed/test.jsonl", 3), ("raw/datadecide/eval_results/landed/test.jsonl", 4)]
        assert "step='ten'" in rej[0][2]
        assert q("select count(*) from datadecide_recipes") == [(25,)]
        # matched runs and the finetune+pretrain join on recipe, size, seed
        assert q("select count(*), count(distinct checkpoint) from matched_runs") == [(5105, 1103)]
        joined = q("""select step, task, primary_score, score_level, run_ids from finetune_pretrain
                      where recipe_key='c4' and size='4M' and seed=6198 and step is not null order by step""")
        assert [(s, t, p, lvl) for s, t, p, lvl, _ in joined] == [(5000, "arc_easy", 0.5, "seed"), (10000, "arc_easy", 0.6, "seed")]
        assert len(joined[0][4]) >= 1
        # the grid CSV names no seeds: each seed's checkpoint gets its recipe and size's replicate mean
        grid = pl.read_csv(store.get("raw/datadecide/eval_results/datadecide_grid_olmes10_dev10.csv"))
        mean_150m = grid.filter((pl.col("recipe") == "Dolma1.7 (no code)") & (pl.col("size") == "150M"))["value"].mean()
        rows = q("""select seed, primary_score, score_level, score_runs from finetune_pretrain
                    where model_name like 'no_code-150M-%' order by seed""")
        assert [(s, lvl, n) for s, _, lvl, n in rows] == [(14, "recipe_size_mean", 3), (15, "recipe_size_mean", 3), (6198, "recipe_size_mean", 3)]
        assert all(abs(p - mean_150m) < 1e-12 for _, p, _, _ in rows)
        assert q("select count(*) from finetune_pretrain where score_level = 'recipe_size_mean'") == [(436,)]
        # the real checkpoint list: 353 models, each joined to its matched W&B runs by model name
        assert q("select count(*), count(matched_run_ids), count(distinct model_name) from datadecide_checkpoints") == [(353, 353, 353)]
        assert q("""select recipe, size, seed, step, runs_in_wandb_runs from datadecide_checkpoints
                    where model_name = 'falcon_and_cc_tulu_qc_top10-60M-6198'""") == [("falcon_and_cc_tulu_qc_top10", "60M", 6198, 29042, 0)]
        # decision accuracy by size on the real grid: 13 smaller sizes, 45 pairs each, 150M vs 1B 86.7%
        acc = q("select size, pairs, agree from decision_accuracy_by_size order by size_params")
        assert len(acc) == 13 and {p for _, p, _ in acc} == {45}
        assert ("150M", 45, 39.0) in acc
        # early-window features and forecasts
        assert q("select count(*) > 100, min(early_points) >= 2 from early_window_features") == [(True, True)]
        scores = q("select model, rmse, decision_accuracy, pairs, groups from final_metric_model order by model")
        assert [s[0] for s in scores] == ["elasticnet", "gaussian_process", "lightgbm", "xgboost"]
        assert all(s[1] >= 0 and 0 <= s[2] <= 1 and s[3] > 0 and s[4] == 2 for s in scores)
        # the same scores as a Markdown table on the asset's page: a header, a rule, a row per model
        scores_md = mats["final_metric_model"].materialization.metadata["scores"].value.splitlines()
        assert scores_md[0].startswith("| model | ") and scores_md[1].startswith("|---|---|")
        assert sorted(line.split(" | ")[0].removeprefix("| ") for line in scores_md[2:]) == [s[0] for s in scores]
        # the forecast's runs (OLMo peteish ladder) share no recipe and size with the eval grid: said, not hidden
        notes = q("select distinct forecast_pairs, forecast_note from decision_accuracy_by_size")
        assert len(notes) == 13 and all(n == 0 and "no forecast of olmes10" in t for n, t in notes)
    finally:
        con.close()


def test_unreachable_wandb_keeps_secret_out_of_logs(store, resources, instance, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    seed_demo(store)
    from snoiq_assets.defs.datadecide.assets import wandb_export, wandb_history

    result = dg.materialize(
        [wandb_export, wandb_history], resources=resources, instance=instance,
        run_config={"ops": {"wandb_export": {"config": {"projects": ["olmo-ladder-davidh"]}}}},
    )
    assert result.success
    status = result.asset_materializations_for_node("wandb_export")[0].metadata["status"].value
    assert "unreachable" in status
    logs = instance.all_logs(result.run_id)
    text = "\n".join(str(e.user_message) + str(e.dagster_event) for e in logs)
    assert "unreachable" in text and SECRET not in text
    assert result.asset_materializations_for_node("wandb_history")[0].metadata["runs"].value == 5


def test_empty_eval_results_fail_their_check(store, resources, instance, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from snoiq_assets.defs.datadecide.assets import hf_eval_results, hf_eval_results_not_empty

    result = dg.materialize([hf_eval_results, hf_eval_results_not_empty], resources=resources, instance=instance)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.metadata["rows"].value == 0
    assert check.metadata["cause"].value.startswith("no eval-results file landed under raw/datadecide/eval_results/")
    # a landed file whose every line is rejected: the check names the rejects table
    store.put("raw/datadecide/eval_results/bad.jsonl", b'{"params": "4M", "step": "ten"}\n{oops\n')
    result = dg.materialize([hf_eval_results, hf_eval_results_not_empty], resources=resources, instance=instance)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and "1 file(s) under raw/datadecide/eval_results/ gave no row: see table hf_eval_results_rejects" in check.metadata["cause"].value


def test_truncated_matched_runs_fails_naming_it_and_keeps_rejects(store, settings, resources, instance, monkeypatch, sample_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    from snoiq_assets.defs.datadecide.assets import hf_eval_results, matched_runs, wandb_export, wandb_history, wandb_runs

    raw = (sample_dir / "datadecide" / "matched_runs_by_s3.json").read_bytes()
    store.put("raw/datadecide/matched_runs/matched_runs_by_s3.json", raw[:700_000])
    result = dg.materialize([wandb_export, wandb_history, wandb_runs, hf_eval_results, matched_runs],
                            resources=resources, instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == "matched_runs")
    message = failure.event_specific_data.error.message
    assert "raw/datadecide/matched_runs/matched_runs_by_s3.json (700,000 bytes): the file ends inside the JSON document (truncated)" in message
    assert "see table matched_runs_rejects" in message
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        rows = con.execute("select file, error from matched_runs_rejects").fetchall()
    finally:
        con.close()
    assert [f for f, _ in rows] == ["raw/datadecide/matched_runs/matched_runs_by_s3.json"] and "truncated" in rows[0][1]
    assert pl.read_parquet(store.get("lake/datadecide/matched_runs_rejects.parquet")).height == 1


def test_join_that_cannot_match_fails_naming_why(store, resources, instance, monkeypatch):
    """The bundled data alone: the matched runs live in olmo-ladder-* projects, the only W&B runs
    landed are the OLMo peteish exports, so the join is empty and the check says so."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    from snoiq_assets.defs.datadecide.assets import (
        hf_eval_results, matched_runs, matched_runs_joins, wandb_export, wandb_history, wandb_runs,
    )

    seed_demo(store)
    result = dg.materialize([wandb_export, wandb_history, wandb_runs, hf_eval_results, matched_runs, matched_runs_joins],
                            resources=resources, instance=instance)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["cause"].value == (
        "matched_runs x wandb_runs matches 0 of 5105 run ids: the matched runs are in W&B project(s) olmo-ladder-benb, "
        "olmo-ladder-davidh, wandb_runs holds peteish-final-new, peteish-moreeval; none shared, so no run can match: "
        "land those projects' run records (wandb_export with WANDB_API_KEY)")
    assert check.metadata["finetune_pretrain_scored_rows"].value == 436  # the grid CSV scores its 10 recipes
