"""``CNNModel``: the Keras CNN champion(s) behind one batchable API (a "runner").

Inference goes through :func:`bentos.cnn_forward.compiled_predict`.
"""

from __future__ import annotations

import bentoml
import numpy as np

from bentos.cnn_forward import compiled_predict
from bentos.registry import attach_champions
from bentos.runners import BATCHING, RUNNER_OPTIONS, load_champions, run_grouped


@bentoml.service(name="CNNModel", **RUNNER_OPTIONS)
@attach_champions("cnn")
class CNNModel:
    """Loads each served symbol's CNN champion once and compiles its forward pass."""

    def __init__(self) -> None:
        self.models = load_champions(
            self, lambda m, spec: compiled_predict(m.path_of("model.keras"), spec)
        )

    @bentoml.api(**BATCHING)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Raw model outputs for encoded rows (``bentos.runners.encode``)."""
        return run_grouped(inputs, self.models)
