"""``LassoModel``: the Lasso champion(s) behind one batchable API (a "runner")."""

from __future__ import annotations

import bentoml
import joblib
import numpy as np

from bentos.registry import attach_champions
from bentos.runners import BATCHING, RUNNER_OPTIONS, load_champions, run_grouped


@bentoml.service(name="LassoModel", **RUNNER_OPTIONS)
@attach_champions("lasso")
class LassoModel:
    """Loads each served symbol's Lasso champion once (a scikit-learn Pipeline)."""

    def __init__(self) -> None:
        self.models = load_champions(
            self, lambda m, _: joblib.load(m.path_of("model.joblib")).predict
        )

    @bentoml.api(**BATCHING)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Raw model outputs for encoded rows (``bentos.runners.encode``)."""
        return run_grouped(inputs, self.models)
