"""Domain logic: parsing, streaming with rejects, forecasting measures, fetch failures."""

import json
import socket

import polars as pl
import pytest

from snoiq_assets.lib.datadecide.forecast import decision_accuracy
from snoiq_assets.lib.datadecide.hf import HubUnavailable, fetch_hf_eval_results
from snoiq_assets.lib.datadecide.jsonl import stream_jsonl_files
from snoiq_assets.lib.datadecide.matching import parse_matched_runs
from snoiq_assets.lib.datadecide.names import parse_run_name, recipe_key
from snoiq_assets.lib.datadecide.wandb_io import WandbUnavailable, export_wandb, ingest_runs
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
