"""Domain logic: parsing, streaming with rejects, forecasting measures, fetch failures."""

import json
import socket

import polars as pl
import pytest

from snoiq_assets.lib.datadecide.forecast import decision_accuracy
from snoiq_assets.lib.datadecide.hf import HubUnavailable, fetch_hf_eval_results
from snoiq_assets.lib.datadecide.jsonl import stream_jsonl_files
from snoiq_assets.lib.datadecide.matching import MatchedRunsError, join_checkpoints, parse_checkpoint_list, parse_matched_runs
from snoiq_assets.lib.datadecide.names import parse_run_name, recipe_key
from snoiq_assets.lib.datadecide.wandb_io import WandbUnavailable, export_wandb, ingest_history, ingest_runs
from snoiq_assets.lib.storage import LocalStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_matched_runs_parse_into_recipe_size_seed(sample_dir):
    raw = (sample_dir / "datadecide" / "matched_runs_by_s3.json").read_bytes()
    df, rejects = parse_matched_runs(raw, "matched_runs_by_s3.json")
    assert rejects == []
    assert df.height == 5105 and df["checkpoint"].n_unique() == 1103
    assert df.filter(pl.col("recipe").is_null() | pl.col("size").is_null() | pl.col("seed").is_null()).height == 0
    # every W&B run name is a ladder name: recipe-size-NxC[-suffix]
    kinds = {parse_run_name(n)["run_kind"] for n in df["run_name"].to_list()}
    assert kinds == {"ladder"}
    names = {json.loads(l)["name"] for l in (sample_dir / "datadecide" / "eval-for-consistent-ranking-mix-names.jsonl").read_text().splitlines() if l.strip()}
    matched_keys = set(df["recipe_key"].unique().to_list())
    assert len({recipe_key(n) for n in names} & matched_keys) >= 20
    row = df.filter(pl.col("run_id") == "4n49wksn").row(0, named=True)
    assert (row["recipe"], row["size"], row["seed"], row["chinchilla_mult"]) == ("falcon_and_cc_tulu_qc_top10", "60M", 14, 5.0)


def test_run_name_variants():
    assert parse_run_name("190M-1xC", "peteish-moreeval")["recipe"] == "peteish-moreeval"
    p = parse_run_name("dolma17-50p-DCLM-baseline-50p-16M-5xC-step1000")
    assert (p["recipe"], p["size"], p["seed"], p["step"]) == ("dolma17-50p-DCLM-baseline-50p", "16M", 6198, 1000)
    f = parse_run_name("2025_08_21-08_24_43_test_finetune_DD-dolma1_7-150M_main_1Mtx1_--learning_rate=5e-05")
    assert (f["run_kind"], f["recipe_key"], f["size"]) == ("finetune", "dolma17", "150M")
    assert parse_run_name("not a run")["run_kind"] == "unknown"


def test_stream_rejects_union_and_type_clash(tmp_path):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    lines = [json.dumps({"run": "r1", "step": i, "loss": 1.0 / (i + 1)}) for i in range(50)]
    lines.insert(10, '{"run": "r1", "step": 99, "loss": ')  # truncated -> line 11
    a.write_text("\n".join(lines) + "\n")
    b.write_text(
        json.dumps({"run": "r2", "step": 0, "loss": "nan-ish", "new_col": {"x": 1}}) + "\n"
        + "[1, 2]\n"
        + json.dumps({"run": "r2", "step": 1, "loss": 0.5, "new_col": {"x": 2}})  # no trailing newline
    )
    out = tmp_path / "out.parquet"
    res = stream_jsonl_files([("raw/a.jsonl", a), ("raw/b.jsonl", b)], out, chunk_bytes=256)
    df = pl.read_parquet(out)
    assert res.rows == df.height == 52
    assert [(r["file"], r["line"]) for r in res.rejects] == [("raw/a.jsonl", 11), ("raw/b.jsonl", 2)]
    assert "malformed JSON" in res.rejects[0]["error"]
    assert set(df.columns) == {"run", "step", "loss", "new_col.x", "_file"}
    assert df.schema["loss"] == pl.String  # number in one file, text in another: nothing lost
    assert df.filter(pl.col("run") == "r2")["loss"].to_list() == ["nan-ish", "0.5"]
    assert df.filter(pl.col("run") == "r1")["new_col.x"].null_count() == 50


def test_ingest_runs_flattens_and_drops(tmp_path):
    store = LocalStore(tmp_path)
    recs = [
        {"id": "a1", "name": "c4-4M-5xC", "project": "p", "config": {"lr": 0.1, "opt": "adamw"},
         "summary": {"acc": 0.5, "oe_eval_metrics": json.dumps({"arc_easy": {"acc": 0.61}})}},
        {"id": "a2", "name": "c4-4M-5xC-14", "project": "p", "config": {"lr": 0.2, "opt": "adamw"},
         "summary": {"acc": "n/a", "oe_eval_metrics": json.dumps({"arc_easy": {"acc": 0.64}})}},
    ]
    store.put("raw/wandb/runs/p/a.jsonl", ("\n".join(json.dumps(r) for r in recs + recs[:1]) + "\n{oops\n").encode())
    res = ingest_runs(store)
    runs = res.runs
    assert runs.height == 2  # duplicate record dropped
    assert runs.sort("run_id")["summary.oe_eval_metrics.arc_easy.acc"].to_list() == [0.61, 0.64]
    assert runs.sort("run_id")["summary.acc"].to_list() == [0.5, None]
    assert runs.sort("run_id")["summary.acc__text"].to_list() == [None, "n/a"]
    assert "config.opt" not in runs.columns and "config.opt" in res.dropped_constants["column"].to_list()
    assert runs.sort("run_id")["seed"].to_list() == [6198, 14]
    assert res.rejects.select("file", "line").rows() == [("raw/wandb/runs/p/a.jsonl", 4)]


def test_decision_accuracy_counts_pairs():
    df = pl.DataFrame({
        "size": ["1B"] * 3 + ["4M"] * 2,
        "metric": ["m"] * 5,
        "recipe": ["a", "b", "c", "a", "b"],
        "final_value": [1.0, 2.0, 3.0, 5.0, 4.0],
        "prediction": [1.1, 2.5, 2.0, 3.0, 4.0],  # 1B: (a,b) ok (a,c) ok (b,c) wrong; 4M: (a,b) wrong
    })
    acc, pairs = decision_accuracy(df, by=["size", "metric"])
    assert pairs == 4 and acc == pytest.approx(0.5)


def test_hub_offline_and_unreachable_fail_clearly(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "home")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="HF_HUB_OFFLINE is set"):
        fetch_hf_eval_results(store, tmp_path / "cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(HubUnavailable, match="could not fetch dataset allenai/DataDecide-eval-results from http://127.0.0.1"):
        fetch_hf_eval_results(store, tmp_path / "cache", endpoint=endpoint, timeout_s=2)
    assert list(store.list("raw/")) == []


def test_wandb_missing_key_and_unreachable(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(WandbUnavailable, match="WANDB_API_KEY is not set"):
        export_wandb(store, "ai2-llm", ["olmo-ladder-davidh"])
    secret = "wandb-secret-0123456789abcdef0123456789abcdef"
    base = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(WandbUnavailable, match="unreachable") as info:
        export_wandb(store, "ai2-llm", ["olmo-ladder-davidh"], api_key=secret, base_url=base)
    assert secret not in str(info.value)


def test_real_checkpoint_list_joins_matched_runs_by_model_name(sample_dir, tmp_path):
    raw = (sample_dir / "datadecide" / "final_defualt_seed_paths.jsonl").read_bytes()
    ckpt, rejects = parse_checkpoint_list(raw, "final_defualt_seed_paths.jsonl")
    assert rejects == [] and ckpt.height == 353 and ckpt["model_name"].n_unique() == 353
    first = ckpt.row(0, named=True)
    assert first == {
        "model_name": "falcon_and_cc_tulu_qc_top10-60M-6198", "recipe": "falcon_and_cc_tulu_qc_top10",
        "recipe_key": "falconandcctuluqctop10", "size": "60M", "size_params": 60e6, "seed": 6198,
        "checkpoints_location": "weka://oe-eval-default/ai2-llm/checkpoints/OLMo-ladder/davidh/falcon_and_cc_tulu_qc_top10-60M-5xC",
        "revision": "step29042-unsharded-hf", "step": 29042, "source_file": "final_defualt_seed_paths.jsonl", "source_line": 1,
    }
    matched, _ = parse_matched_runs((sample_dir / "datadecide" / "matched_runs_by_s3.json").read_bytes(), "m.json")
    runs = pl.DataFrame({"run_id": ["6byvj23l"], "project": ["olmo-ladder-davidh"]})
    joined = join_checkpoints(ckpt, matched, runs)
    assert joined["matched_run_ids"].null_count() == 0
    row = joined.filter(pl.col("model_name") == "falcon_and_cc_tulu_qc_top10-60M-6198").row(0, named=True)
    assert "6byvj23l" in row["matched_run_ids"] and row["runs_in_wandb_runs"] == 1
    assert row["matched_checkpoint"] == "s3://ai2-llm/checkpoints/OLMo-ladder/davidh/falcon_and_cc_tulu_qc_top10-60M-5xC"
    assert joined.filter(pl.col("runs_in_wandb_runs") > 0).height == 1


def test_checkpoint_list_rejects_malformed_lines():
    good = {"model_name": "dolma17-150M-6198", "checkpoints_location": "weka://x/dolma17-150M-5xC",
            "revisions": ["step38157-unsharded-hf", "step0-unsharded-hf"]}
    lines = [json.dumps(good), '{"model_name": "c4-4M-6198", "revisions": ["step5', "[1]",
             json.dumps({"model_name": "not a model", "revisions": ["step1"]}),
             json.dumps({"model_name": "c4-4M-6198", "revisions": "step1"}),
             json.dumps({"revisions": ["step1"]}), ""]
    ckpt, rejects = parse_checkpoint_list("\n".join(lines).encode(), "c.jsonl")
    assert ckpt.select("model_name", "step").rows() == [("dolma17-150M-6198", 38157), ("dolma17-150M-6198", 0)]
    assert [(r["line"], r["error"].split(":")[0]) for r in rejects] == [
        (2, "malformed JSON"), (3, "a JSON list, not an object"), (4, "model_name 'not a model' is not <recipe>-<size>-<seed>"),
        (5, "revisions is not a non-empty list of strings"), (6, "no model_name")]


def test_one_metric_in_two_columns_is_merged_or_rejected(sample_dir, tmp_path):
    """OLMo-style export: the same metric twice, one copy with a leading space."""
    src = (sample_dir / "wandb" / "olmo_wandb_history_peteish-moreeval_190M-1xC.csv").read_text().splitlines()
    metric = "eval/c4_en-validation/CrossEntropyLoss"
    col = src[0].split(",").index(metric)
    out = [src[0] + f", {metric}"]
    for i, line in enumerate(src[1:]):
        out.append(line + "," + ("9.99" if i == 3 else line.split(",")[col]))
    store = LocalStore(tmp_path)
    store.put("raw/wandb/history/peteish-moreeval/190M-1xC.csv", ("\n".join(out) + "\n").encode())
    res = ingest_history(store)
    assert not [c for c in res.wide.columns if "duplicated" in c or c != c.strip()]
    original = pl.read_csv(sample_dir / "wandb" / "olmo_wandb_history_peteish-moreeval_190M-1xC.csv")
    merged = res.wide.sort("step")[metric].to_list()
    expected = original.sort("_step")[metric].to_list()
    row4_step = original["_step"][3]
    assert merged == [None if s == row4_step else v for s, v in zip(original.sort("_step")["_step"], expected)]
    assert res.rejects.select("file", "line").rows() == [("raw/wandb/history/peteish-moreeval/190M-1xC.csv", 5)]
    assert f"metric '{metric}' is written in 2 columns that disagree" in res.rejects["error"][0]
    assert "9.99" in res.rejects["error"][0]


def test_truncated_matched_runs_says_why(sample_dir):
    raw = (sample_dir / "datadecide" / "matched_runs_by_s3.json").read_bytes()
    with pytest.raises(MatchedRunsError, match=r"m.json \(700,000 bytes\): the file ends inside the JSON document \(truncated\)"):
        parse_matched_runs(raw[:700_000], "m.json")
    with pytest.raises(MatchedRunsError, match="malformed JSON"):
        parse_matched_runs(raw.replace(b'"runs"', b'"runs" "', 1), "m.json")
