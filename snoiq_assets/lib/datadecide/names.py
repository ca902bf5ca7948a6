"""Run-name parsing (the old regex classification) and recipe/size/seed normalisation.

Names seen in the wild:
- DataDecide ladder runs: ``<recipe>-<size>-<N>xC[-<suffix>]``, e.g. ``dolma17-150M-5xC-14``;
  a checkpoint's ``model_name`` is ``<recipe>-<size>-<seed>`` (``c4-4M-6198``).
- OLMo ladder exports: ``<size>-<N>xC`` inside a project (``peteish-moreeval``), the project
  being the data recipe.
- Finetune runs (dr_showntell): ``..._DD-<recipe>-<size>_...`` with optional ``step<N>``.
Any name may carry a ``step<N>`` / ``_step_<N>`` checkpoint marker.
"""

from __future__ import annotations

import re

DEFAULT_SEED = 6198  # DataDecide's default seed: runs without a numeric suffix
SIZE = r"(?P<size>\d+(?:\.\d+)?[MB])"
_STEP = re.compile(r"(?:^|[-_])step[-_]?(?P<step>\d+)(?=$|[-_])", re.I)
_LADDER = re.compile(rf"^(?P<recipe>.+?)-{SIZE}-(?P<mult>\d+(?:\.\d+)?)xC(?:-(?P<suffix>\d+))?$")
_MODEL_NAME = re.compile(rf"^(?P<recipe>.+?)-{SIZE}-(?P<seed>\d+)$")
_OLMO = re.compile(rf"^{SIZE}-(?P<mult>\d+(?:\.\d+)?)xC$")
_FINETUNE = re.compile(rf"DD-(?P<recipe>[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*?)-{SIZE}(?=$|[-_])")

PARSED_FIELDS = {
    "run_kind": str,
    "recipe": str,
    "recipe_key": str,
    "size": str,
    "size_params": float,
    "chinchilla_mult": float,
    "seed": int,
    "step": int,
}


def size_to_params(size: str | None) -> float | None:
    if not size:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([MB])", str(size).strip(), re.I)
    if not m:
        return None
    return float(m.group(1)) * (1e6 if m.group(2).upper() == "M" else 1e9)


# The paper's and the HF eval results' display names -> the identifiers in run and checkpoint
# names (DataDecide's own DATA_NAME_CLEAN table, inverted). Both spell the same recipe.
DISPLAY_NAMES = {
    "Dolma1.7": "dolma17",
    "Dolma1.7 (no code)": "no_code",
    "Dolma1.7 (no math, code)": "no_math_no_code",
    "Dolma1.7 (no Reddit)": "no_reddit",
    "Dolma1.7 (no Flan)": "no_flan",
    "Dolma1.6++": "dolma-v1-6-and-sources-baseline",
    "C4": "c4",
    "FineWeb-Pro": "prox_fineweb_pro",
    "FineWeb-Edu": "fineweb_edu_dedup",
    "Falcon": "falcon",
    "Falcon+CC": "falcon_and_cc",
    "Falcon+CC (QC 10%)": "falcon_and_cc_eli5_oh_top10p",
    "Falcon+CC (QC 20%)": "falcon_and_cc_eli5_oh_top20p",
    "Falcon+CC (QC Orig 10%)": "falcon_and_cc_og_eli5_oh_top10p",
    "Falcon+CC (QC Tulu 10%)": "falcon_and_cc_tulu_qc_top10",
    "DCLM-Baseline": "DCLM-baseline",
    "DCLM-Baseline 25% / Dolma 75%": "dolma17-75p-DCLM-baseline-25p",
    "DCLM-Baseline 50% / Dolma 50%": "dolma17-50p-DCLM-baseline-50p",
    "DCLM-Baseline 75% / Dolma 25%": "dolma17-25p-DCLM-baseline-75p",
    "DCLM-Baseline (QC 7%, FW2)": "dclm_ft7percentile_fw2",
    "DCLM-Baseline (QC 7%, FW3)": "dclm_ft7percentile_fw3",
    "DCLM-Baseline (QC FW 10%)": "dclm_fw_top10",
    "DCLM-Baseline (QC FW 3%)": "dclm_fw_top3",
    "DCLM-Baseline (QC 10%)": "pos_eli5_oh_neg_dclm_refinedweb_steps_2000_lr3e4_top10p",
    "DCLM-Baseline (QC 20%)": "pos_eli5_oh_neg_dclm_refinedweb_steps_2000_lr3e4_top20p",
}


def _normalise(recipe: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(recipe).lower().replace("%", "p"))


_DISPLAY_KEYS = {_normalise(display): _normalise(ident) for display, ident in DISPLAY_NAMES.items()}


def recipe_key(recipe: str | None) -> str | None:
    """A join key for recipe names written differently (``Dolma1.7`` == ``dolma17``,
    ``Dolma1.7 (no Flan)`` == ``no_flan``): display names map to their run-name identifier."""
    if recipe is None:
        return None
    key = _normalise(recipe)
    return _DISPLAY_KEYS.get(key, key) or None


def parse_seed(seed) -> tuple[int | None, str | None]:
    """Seed as an int plus its label (``default`` -> 6198)."""
    if seed is None:
        return None, None
    if isinstance(seed, bool):
        return None, str(seed)
    if isinstance(seed, (int, float)):
        return int(seed), str(int(seed))
    text = str(seed).strip()
    if re.fullmatch(r"\d+", text):
        return int(text), text
    if text.lower() == "default":
        return DEFAULT_SEED, text
    return None, text


def parse_run_name(name: str | None, project: str | None = None) -> dict:
    """Split a run name into kind, recipe, size, Chinchilla multiple, seed and step."""
    out: dict = {k: None for k in PARSED_FIELDS}
    out["run_kind"] = "unknown"
    if not name:
        return out
    name = str(name).strip()
    step_m = _STEP.search(name)
    if step_m:
        out["step"] = int(step_m.group("step"))
        base = (name[: step_m.start()] + name[step_m.end() :]).strip("-_")
    else:
        base = name
    if m := _LADDER.match(base):
        out.update(run_kind="ladder", recipe=m["recipe"], size=m["size"], chinchilla_mult=float(m["mult"]))
        out["seed"] = int(m["suffix"]) if m["suffix"] else DEFAULT_SEED
    elif m := _OLMO.match(base):
        out.update(run_kind="ladder", recipe=project, size=m["size"], chinchilla_mult=float(m["mult"]))
    elif m := _FINETUNE.search(base):
        out.update(run_kind="finetune", recipe=m["recipe"], size=m["size"])
    elif m := _MODEL_NAME.match(base):
        out.update(run_kind="checkpoint", recipe=m["recipe"], size=m["size"], seed=int(m["seed"]))
    out["size_params"] = size_to_params(out["size"])
    out["recipe_key"] = recipe_key(out["recipe"])
    return out
