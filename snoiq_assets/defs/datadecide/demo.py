"""Land the bundled real DataDecide / W&B files into the raw zone.

Prefixes (see ``snoiq_assets/lib/datadecide/__init__.py``):
- ``raw/wandb/history/<project>/<run>.csv``  OLMo ladder W&B history exports
  (``olmo_wandb_history_<project>_<run>.csv`` -> project ``peteish-moreeval``, run ``190M-1xC``)
- ``raw/datadecide/recipes/eval-for-consistent-ranking-mix-names.jsonl``
- ``raw/datadecide/matched_runs/matched_runs_by_s3.json``
- ``raw/datadecide/eval_results/datadecide_grid_olmes10_dev10.csv`` (final-checkpoint OLMES-10 results)
- ``raw/datadecide/checkpoints/final_defualt_seed_paths.jsonl`` (checkpoint list)
"""

from __future__ import annotations

import re
from pathlib import Path

from snoiq_assets.lib.datadecide.hf import EVAL_PREFIX, RECIPES_PREFIX
from snoiq_assets.lib.datadecide.matching import CHECKPOINTS_PREFIX, MATCHED_PREFIX
from snoiq_assets.lib.datadecide.wandb_io import HISTORY_PREFIX
from snoiq_assets.lib.storage import ObjectStore

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"
_HISTORY_NAME = re.compile(r"^olmo_wandb_history_(?P<project>.+)_(?P<run>[^_]+)\.csv$")


def history_key(filename: str) -> str:
    m = _HISTORY_NAME.match(filename)
    if not m:
        raise ValueError(f"{filename!r} is not named olmo_wandb_history_<project>_<run>.csv")
    return f"{HISTORY_PREFIX}{m['project']}/{m['run']}.csv"


def seed_demo(store: ObjectStore, sample_dir: Path | None = None) -> list[str]:
    sample = Path(sample_dir or SAMPLE)
    keys = []
    for path in sorted((sample / "wandb").glob("olmo_wandb_history_*.csv")):
        keys.append(history_key(path.name))
        store.put_file(keys[-1], path)
    dd = sample / "datadecide"
    for name, prefix in (("eval-for-consistent-ranking-mix-names.jsonl", RECIPES_PREFIX), ("matched_runs_by_s3.json", MATCHED_PREFIX),
                         ("datadecide_grid_olmes10_dev10.csv", EVAL_PREFIX),
                         ("final_defualt_seed_paths.jsonl", CHECKPOINTS_PREFIX)):
        keys.append(prefix + name)
        store.put_file(keys[-1], dd / name)
    return keys
