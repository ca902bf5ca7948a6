"""The champion as an MLflow pyfunc model ("models from code": this file is logged with the
model, nothing is pickled). It loads the model file the model store holds, in its library's
own format, with the store's loader (same checks), and predicts from a DataFrame whose columns
are the model's features (the logged signature names them):

    model = mlflow.pyfunc.load_model("models:/snoiq-<location>-<target>@champion")
    model.predict(frame)

The model store stays the source of truth; this is a copy for MLflow's tools (serving, UI).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from snoiq_assets.lib.models.train import load_native


class SnoiqChampion(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        meta = json.loads(Path(context.artifacts["metadata"]).read_text())
        self.features = list(meta["features"])
        self.model = load_native(meta["model_type"], Path(context.artifacts["model_file"]), self.features,
                                 meta["target_transform"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        frame = pd.DataFrame(model_input)
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"the input lacks feature column(s) {missing[:10]}")
        return self.model.predict(frame[self.features].to_numpy(dtype=float))


mlflow.models.set_model(SnoiqChampion())
