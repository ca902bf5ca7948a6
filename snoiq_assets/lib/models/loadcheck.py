"""Child process of ``store.check_loads_in_child``: load one model file with its library and
predict one row, so that a corrupt file crashes (or fails in) this process, not the caller.

    python -m snoiq_assets.lib.models.loadcheck <model_type> <path> <n_features>

Exit 0 when the model loads and predicts a finite number; 1 with a one-line reason on stderr
otherwise; killed by a signal when the library crashes natively.
"""

from __future__ import annotations

import sys
from pathlib import Path


# LightGBM and XGBoost import scikit-learn and pandas when they are installed, for their
# scikit-learn and DataFrame interfaces. Loading a native model file and predicting a NumPy row
# does not need them, except scikit-learn for XGBoost (``load_native`` uses its XGBRegressor)
# and for the random forest. So the child makes the rest unimportable first; both libraries
# treat them as optional. LightGBM's check then takes 0.7 s instead of 2.6 s, XGBoost's 2.4 s
# instead of 3.2 s.
OPTIONAL_FOR = {"lightgbm": ("sklearn", "pandas"), "xgboost": ("pandas",)}


def main(argv: list[str]) -> int:
    for name in OPTIONAL_FOR.get(argv[0] if argv else "", ()):
        sys.modules.setdefault(name, None)   # `import name` now raises ImportError
    import numpy as np

    from snoiq_assets.lib.models import ModelError
    from snoiq_assets.lib.models.train import load_native

    model_type, path, n = argv[0], Path(argv[1]), int(argv[2])
    names = [f"f{i}" for i in range(n)]
    try:
        model = load_native(model_type, path, names, "none")
        pred = model.predict(np.zeros((1, n)))
    except ModelError as exc:
        print(exc, file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - whatever the library raised is the reason
        print(f"the {model_type} library could not load {path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if pred.shape != (1,) or not np.isfinite(pred).all():
        print(f"{path.name} loads but predicts {pred!r} for a row of zeros; it is not a usable model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
