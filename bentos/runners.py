"""The model services (``LassoModel``, ``CNNModel``): one factory, one request encoding.

A request row is ``[symbol_index, x_1 .. x_n, NaN padding]``: one batchable API
can then serve several symbols whose champions expect different widths, and
adaptive batching may mix their rows (each group runs through its own model).
Rows arrive already standardised (``candlecast.contract.model_input``) and run
through the forward pass training scored them with (``candlecast.artifacts.forward``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import bentoml
import numpy as np

from bentos.registry import attach_champions, model_attr
from candlecast import artifacts
from candlecast.contract import ModelSpec, Predict

#: BentoML service name of each family's model service.
SERVICE_NAMES = {"lasso": "LassoModel", "lgbm": "LGBMModel", "cnn": "CNNModel", "lstm": "LSTMModel"}

#: Dependency-connection settings for the model services. BentoML 1.4.39 closes the
#: shared aiohttp session every ``max_requests`` calls (default 100) and every
#: ``max_age`` seconds while other calls are still in flight on it, so concurrent
#: callers fail with "Session is closed" (bentoml issue #5540). Never recycling it
#: avoids the race; the connection is local (UDS) so there is nothing to refresh.
RUNNER_CONNECTION = {"max_requests": 2**31 - 1, "max_age": 1.0e12}
#: Adaptive batching. The dispatcher answers 503 "overloaded" when it predicts a call
#: would exceed ``max_latency_ms``; on two shared cores a 50 ms bound shed load under
#: 16 clients, so the bound is a generous second (batches still form in milliseconds).
BATCHING = {"batchable": True, "batch_dim": 0, "max_batch_size": 64, "max_latency_ms": 1000}
#: Service options of the model services: internal hops are not access-logged.
RUNNER_OPTIONS = {
    "runner_connection": RUNNER_CONNECTION,
    "workers": 1,
    "logging": {"access": {"enabled": False}},
}


def encode(symbol_index: int, x: np.ndarray, width: int) -> np.ndarray:
    """One request row for a model service (see module docstring)."""
    row = np.full((1, width + 1), np.nan, dtype=np.float64)
    row[0, 0] = symbol_index
    row[0, 1 : 1 + x.shape[-1]] = x.reshape(-1)
    return row


def run_grouped(inputs: np.ndarray, models: Sequence[tuple[ModelSpec, Predict]]) -> np.ndarray:
    """Run each row through the model of its symbol index; outputs keep row order."""
    inputs = np.asarray(inputs, dtype=np.float64)
    out = np.full(inputs.shape[0], np.nan, dtype=np.float64)
    index = inputs[:, 0].astype(np.int64)
    for i, (spec, predict) in enumerate(models):
        mask = index == i
        if mask.any():
            x = inputs[mask, 1 : 1 + len(spec.features)]
            out[mask] = np.asarray(predict(x), dtype=np.float64).reshape(-1)
    return out


def load_champions(service: object) -> list[tuple[ModelSpec, Predict]]:
    """``[(spec, forward)]`` in served-symbol order for a class built by ``attach_champions``."""
    loaded = []
    for symbol, champion in service.champions.items():
        stored = getattr(service, model_attr(symbol))  # the packed bentoml Model
        estimator = artifacts.load(champion.spec.family, Path(stored.path))
        forward = artifacts.forward(champion.spec.family, estimator, len(champion.spec.features))
        loaded.append((champion.spec, forward))
    return loaded


def model_service(family: str, name: str) -> type:
    """A BentoML service serving ``family``'s champion of every served symbol."""

    class ModelService:
        def __init__(self) -> None:
            self.models = load_champions(self)

        @bentoml.api(**BATCHING)
        def predict(self, inputs: np.ndarray) -> np.ndarray:
            """Raw model outputs for encoded rows (``bentos.runners.encode``)."""
            return run_grouped(inputs, self.models)

    ModelService.__name__ = ModelService.__qualname__ = name
    ModelService.__doc__ = f"Loads each served symbol's {family} champion once."
    return bentoml.service(name=name, **RUNNER_OPTIONS)(attach_champions(family)(ModelService))


@cache
def service_for(family: str) -> type:
    """The one model service of ``family`` in this process (built on first use)."""
    return model_service(family, SERVICE_NAMES[family])
