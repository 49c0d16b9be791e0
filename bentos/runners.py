"""What the two model services (``LassoModel``, ``CNNModel``) share.

A request row is ``[symbol_index, x_1 .. x_n, NaN padding]``: one batchable API
can then serve several symbols whose champions expect different widths, and
adaptive batching may mix their rows (each group runs through its own model).
Rows arrive already standardised (``bentos.inference.model_input``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bentos.inference import ModelSpec
from bentos.registry import model_attr

Predict = Callable[[np.ndarray], np.ndarray]

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
    row = np.full((1, width + 1), np.nan, dtype=np.float32)
    row[0, 0] = symbol_index
    row[0, 1 : 1 + x.shape[-1]] = x.reshape(-1)
    return row


def run_grouped(inputs: np.ndarray, models: Sequence[tuple[ModelSpec, Predict]]) -> np.ndarray:
    """Run each row through the model of its symbol index; outputs keep row order."""
    inputs = np.asarray(inputs, dtype=np.float32)
    out = np.full(inputs.shape[0], np.nan, dtype=np.float32)
    index = inputs[:, 0].astype(np.int64)
    for i, (spec, predict) in enumerate(models):
        mask = index == i
        if mask.any():
            x = inputs[mask, 1 : 1 + len(spec.features)]
            out[mask] = np.asarray(predict(x), dtype=np.float32).reshape(-1)
    return out


def load_champions(service: object, load: Callable[[object, ModelSpec], Predict]) -> list:
    """``[(spec, predict)]`` in served-symbol order for a class built by ``attach_champions``.

    ``load(stored_model, spec)`` turns the stored model (``.path_of(file)``) into a predict.
    """
    return [
        (champion.spec, load(getattr(service, model_attr(symbol)), champion.spec))
        for symbol, champion in service.champions.items()
    ]
