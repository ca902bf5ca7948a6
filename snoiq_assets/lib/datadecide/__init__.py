"""DataDecide domain logic (no Dagster imports).

Raw-zone layout (same on the local folder and on S3):

```
raw/wandb/runs/<project>/<run>.jsonl       W&B run records (id, name, config, summary, ...), any number per file
raw/wandb/history/<project>/<run>.csv      W&B history exports (CSV as OLMo's download_wandb_logs writes,
raw/wandb/history/<project>/<run>.jsonl     or JSONL as scan_history gives); one file per run
raw/datadecide/eval_results/*.jsonl|parquet DataDecide evaluation results (HF dataset files or landed exports)
raw/datadecide/recipes/*.jsonl             data-recipe name lists ({name, s3_only})
raw/datadecide/matched_runs/*.json         checkpoint -> W&B runs index (matched_runs_by_s3.json)
```
"""
