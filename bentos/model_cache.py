"""A model service's loaded versions: forward passes keyed by stored tag.

- At most ``keep`` versions per symbol stay loaded; the least recently used goes
  first, so the champion and the version it replaced (still asked for by requests
  that chose it before a swap) stay.
- A version asked for by code and not loaded is looked up (``find``: the tag of a
  version code) and loaded (``load``) on first use; concurrent callers of one tag
  wait for a single load.
- Thread-safe: BentoML runs sync APIs in a thread pool, and the preload thread
  loads new champions beside them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bentos.encoding import VersionNotFound, version_code
from candlecast.contract import ModelSpec, Predict

KEEP = 3


@dataclass(frozen=True)
class Loaded:
    """One loaded version: its tag, its spec and its forward pass."""

    tag: str
    spec: ModelSpec
    forward: Predict


class ModelCache:
    """Loaded versions of one model service (see module docstring)."""

    def __init__(
        self,
        symbols: Sequence[str],
        find: Callable[[str, int], str | None],
        load: Callable[[str], Loaded],
        keep: int = KEEP,
    ) -> None:
        self.symbols = list(symbols)
        self._find, self._load, self.keep = find, load, keep
        self._models: OrderedDict[int, Loaded] = OrderedDict()  # by version code, LRU last
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def tags(self) -> list[str]:
        """Loaded tags, least recently used first."""
        with self._lock:
            return [m.tag for m in self._models.values()]

    def loaded(self, codes: Iterable[int]) -> bool:
        """Whether every version code in ``codes`` is loaded (resolving them cannot block)."""
        with self._lock:
            return all(code in self._models for code in codes)

    def resolve(self, symbol_index: int, code: int) -> tuple[ModelSpec, Predict]:
        """(spec, forward) of the version ``code`` of the served symbol ``symbol_index``."""
        loaded = self._hit(code)
        if loaded is None:
            if not 0 <= symbol_index < len(self.symbols):
                raise VersionNotFound(f"no served symbol #{symbol_index}")
            symbol = self.symbols[symbol_index]
            tag = self._find(symbol, code)
            if tag is None:
                raise VersionNotFound(
                    f"no version of {symbol} with version code {code} in the model store"
                )
            loaded = self.get(tag)
        return loaded.spec, loaded.forward

    def get(self, tag: str) -> Loaded:
        """The loaded version ``tag``, loading it first if needed (once for all callers)."""
        loaded = self._hit(version_code(tag))
        if loaded is not None:
            return loaded
        with self._lock:
            lock = self._loading.setdefault(tag, threading.Lock())
        try:
            with lock:
                loaded = self._hit(version_code(tag))
                if loaded is None:
                    loaded = self._load(tag)
                    self._insert(loaded)
            return loaded
        finally:
            with self._lock:
                if self._loading.get(tag) is lock:
                    del self._loading[tag]

    def _hit(self, code: int) -> Loaded | None:
        with self._lock:
            loaded = self._models.get(code)
            if loaded is not None:
                self._models.move_to_end(code)
            return loaded

    def _insert(self, loaded: Loaded) -> None:
        with self._lock:
            self._models[version_code(loaded.tag)] = loaded
            same = [c for c, m in self._models.items() if m.spec.symbol == loaded.spec.symbol]
            for code in same[: max(0, len(same) - self.keep)]:
                del self._models[code]
