"""``CNNModel``: the Keras CNN champion(s) behind one batchable API (a "runner").

Inference goes through a ``tf.function`` traced once per model: Keras'
``model.predict`` builds a data pipeline per call (~70 ms for one row), a
compiled function call costs about a millisecond.
"""

from __future__ import annotations

import bentoml
import numpy as np

from bentos.inference import ModelSpec
from bentos.registry import attach_champions
from bentos.runners import BATCHING, RUNNER_OPTIONS, Predict, load_champions, run_grouped


def compiled_predict(path: str, spec: ModelSpec) -> Predict:
    """Load a ``.keras`` file (no optimizer) and wrap its forward pass in a tf.function."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(path, compile=False)
    n = len(spec.features)
    shape = (None, n, 1) if spec.input_shape == "sequence" else (None, n)
    forward = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec(shape, tf.float32)],
    )

    def predict(x: np.ndarray) -> np.ndarray:
        return forward(np.asarray(x, dtype=np.float32).reshape((-1, *shape[1:]))).numpy()

    predict(np.zeros((1, n), dtype=np.float32))  # trace now, not on the first request
    return predict


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
