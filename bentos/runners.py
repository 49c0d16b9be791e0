"""The model services (``LassoModel``, ``CNNModel``): one factory, one request encoding.

Each serves every version of its family that the API asks for: request rows name
their symbol and version (``bentos.encoding``), each group of rows runs through
that version's forward pass (``candlecast.artifacts.forward``, the one training
scored with), and adaptive batching may mix symbols and versions in one call.
Versions come from a bounded cache (``bentos.model_cache``): the champions found
at import are loaded at start-up, new champions are preloaded as the model store
gets them (every ``CANDLECAST_RELOAD_SECONDS``), and any other version is loaded
on first use, from the store under BENTOML_HOME or, for the champions packed into
the Bento, through their class-scope ``bentoml.models.BentoModel`` references.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cache, partial
from typing import Any

import anyio
import bentoml
import numpy as np

from bentos.encoding import VersionNotFound, run_grouped, version_code
from bentos.model_cache import Loaded, ModelCache
from bentos.registry import Champion, LiveChampions, attach_champions, model_attr, served_symbols
from bentos.reload import repeat_in_thread
from candlecast import model_store
from candlecast.settings import get_settings

log = logging.getLogger(__name__)

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


def find_tag(family: str, packed: Mapping[str, Champion], symbol: str, code: int) -> str | None:
    """The tag of (family, symbol) whose version code is ``code``: in the store, or packed."""
    stored = model_store.raw_versions(family, symbol, model_store.live_store())
    tags = [str(m.tag) for m in stored]
    if symbol in packed:
        tags.append(packed[symbol].tag)
    return next((tag for tag in tags if version_code(tag) == code), None)


def load_version(family: str, tag: str, packed_model: Callable[[str], Any] | None = None) -> Loaded:
    """Load ``tag`` of ``family``: from BentoML's model object ``packed_model(tag)`` for a
    champion packed into the Bento (in a container BentoML resolves it there), else from
    the live store."""
    model = None if packed_model is None else packed_model(tag)
    if model is not None:
        found = model_store.stored(model)
    else:
        try:
            found = model_store.get(tag, model_store.live_store())
        except bentoml.exceptions.NotFound as exc:
            raise VersionNotFound(str(exc)) from None
    if found.spec.family != family:
        raise VersionNotFound(f"{tag} is a {found.spec.family} model, not {family}")
    log.info("loading %s", tag)
    return Loaded(tag, found.spec, found.forward())


def model_service(family: str, name: str) -> type:
    """A BentoML service serving ``family``'s versions of every served symbol."""

    class ModelService:
        def __init__(self) -> None:
            symbols = served_symbols()
            packed = self.champions  # set by attach_champions: symbol -> Champion
            self.live = LiveChampions(family, packed)
            self.cache = ModelCache(
                symbols,
                partial(find_tag, family, packed),
                partial(load_version, family, packed_model=self.packed_model),
            )
            for champion in packed.values():
                self.cache.get(champion.tag)
            seconds = get_settings().reload_seconds
            self.stop_preloading = (
                repeat_in_thread(seconds, self.preload, f"{name}: preloading champions")
                if seconds > 0
                else None
            )

        def packed_model(self, tag: str) -> Any:
            """BentoML's model object of a champion packed at class scope, else None."""
            symbol = next((s for s, c in self.champions.items() if c.tag == tag), None)
            return None if symbol is None else getattr(self, model_attr(symbol))

        def preload(self) -> None:
            """Load the store's champions that are not loaded yet."""
            for champion in self.live.read().values():
                self.cache.get(champion.tag)

        @bentoml.api(**(BATCHING if get_settings().model_batching else {}))
        def predict(self, inputs: np.ndarray) -> np.ndarray:
            """Response rows ``[output, status]`` for request rows (``bentos.encoding``)."""
            return self.predict_rows(inputs)

        def predict_rows(self, inputs: np.ndarray) -> np.ndarray:
            """``predict`` as a plain call: in-process callers skip BentoML's per-call
            argument binding (``inspect.signature``), a few % of a request's CPU."""
            return run_grouped(inputs, self.cache.resolve)

        def ready(self, inputs: np.ndarray) -> bool:
            """Whether every version the request rows name is loaded (no load would block)."""
            return self.cache.loaded({int(code) for code in inputs[:, 1]})

        @bentoml.api
        async def load(self, tags: list[str]) -> list[str]:
            """Load these versions now; the API calls this before it serves them.

            In a thread of its own: ``predict`` keeps its thread while a model loads.
            """
            return await anyio.to_thread.run_sync(lambda: [self.cache.get(t).tag for t in tags])

        @bentoml.on_shutdown
        def stop(self) -> None:
            if self.stop_preloading is not None:
                self.stop_preloading.set()

    ModelService.__name__ = ModelService.__qualname__ = name
    ModelService.__doc__ = f"Serves the {family} versions of each served symbol."
    return bentoml.service(name=name, **RUNNER_OPTIONS)(attach_champions(family)(ModelService))


@cache
def service_for(family: str) -> type:
    """The one model service of ``family`` in this process (built on first use)."""
    return model_service(family, SERVICE_NAMES[family])
