"""Child process of ``store.check_loads_in_child``: load a model file with its library and
predict one row, so that a corrupt file crashes (or fails in) this process, not the caller.

    python -m snoiq_assets.lib.models.loadcheck --serve <model_type>
        one JSON request per line on stdin, {"path": ..., "n_features": ...}; one JSON reply per
        line, {"error": null} or {"error": "<one-line reason>"}; killed by a signal when the
        library crashes natively (the parent then starts another for the next file)
    python -m snoiq_assets.lib.models.loadcheck <model_type> <path> <n_features>
        one file: exit 0 when it loads and predicts a finite number, 1 with the reason on stderr
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


# LightGBM and XGBoost import scikit-learn and pandas when they are installed, for their
# scikit-learn and DataFrame interfaces. Loading a native model file and predicting a NumPy row
# does not need them, except scikit-learn for XGBoost (``load_native`` uses its XGBRegressor)
# and for the random forest. So the child makes the rest unimportable first; both libraries
# treat them as optional. LightGBM's check then takes 0.7 s instead of 2.6 s, XGBoost's 2.4 s
# instead of 3.2 s.
OPTIONAL_FOR = {"lightgbm": ("sklearn", "pandas"), "xgboost": ("pandas",)}


def _block_optional(model_type: str) -> None:
    for name in OPTIONAL_FOR.get(model_type, ()):
        sys.modules.setdefault(name, None)   # `import name` now raises ImportError


def check(model_type: str, path: Path, n: int) -> str | None:
    """None when the library loads ``path`` and predicts a finite number for a row of zeros;
    else the reason, in one line."""
    import numpy as np

    from snoiq_assets.lib.models import ModelError
    from snoiq_assets.lib.models.train import load_native

    names = [f"f{i}" for i in range(n)]
    try:
        model = load_native(model_type, path, names, "none")
        pred = model.predict(np.zeros((1, n)))
    except ModelError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever the library raised is the reason
        return f"the {model_type} library could not load {path.name}: {type(exc).__name__}: {exc}"
    if pred.shape != (1,) or not np.isfinite(pred).all():
        return f"{path.name} loads but predicts {pred!r} for a row of zeros; it is not a usable model"
    return None


def main(argv: list[str]) -> int:
    _block_optional(argv[0] if argv else "")
    problem = check(argv[0], Path(argv[1]), int(argv[2]))
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return 0


def serve(model_type: str, requests, replies) -> None:
    _block_optional(model_type)
    for line in requests:
        request = json.loads(line)
        problem = check(model_type, Path(request["path"]), int(request["n_features"]))
        replies.write(json.dumps({"error": None if problem is None else " ".join(problem.split())}) + "\n")
        replies.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        # Replies go to a private copy of stdout; anything a library prints lands in stderr.
        replies = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        serve(sys.argv[2], sys.stdin, replies)
    else:
        sys.exit(main(sys.argv[1:]))
