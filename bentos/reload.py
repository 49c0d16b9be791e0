"""Hot reload: every process of the service follows the model store's champions.

- Each API worker holds an immutable snapshot of the champions it serves
  (:attr:`bentos.predictor.Predictor.snapshot`). :class:`ChampionWatch` re-reads the
  store every ``CANDLECAST_RELOAD_SECONDS`` (off the request path), has each model
  service load the new versions (``ServedFamily.warm``) and only then replaces the
  whole snapshot at once. A request reads the snapshot once, and the row it sends
  names its version (``bentos.encoding``), so its ``model_version`` is the version
  that computed it, before, during and after a swap.
- Each model service preloads new champions itself (:func:`repeat_in_thread`), and
  loads any other version it is asked for on demand (``bentos.model_cache``).

A failed check logs a warning (once per distinct error) and keeps what is served.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from candlecast.contract import ModelSpec

log = logging.getLogger(__name__)
Snapshot = Mapping[str, Mapping[str, ModelSpec]]  # family -> symbol -> champion's spec


class Retrying:
    """Logs a repeated background step's failure once per distinct error, and its recovery."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.error: str | None = None

    def failed(self, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self.error:
            log.warning("%s failed (kept the previous state; retrying): %s", self.what, error)
        self.error = error

    def succeeded(self) -> None:
        if self.error is not None:
            log.info("%s works again", self.what)
        self.error = None


async def every(
    seconds: float, step: Callable[[], Awaitable[Any]], what: str, first: float | None = None
) -> None:
    """Await ``step`` every ``seconds`` (the first time after ``first``) until cancelled."""
    retrying = Retrying(what)
    await asyncio.sleep(seconds if first is None else first)
    while True:
        try:
            await step()
        except Exception as exc:  # a failing step never stops the loop
            retrying.failed(exc)
        else:
            retrying.succeeded()
        await asyncio.sleep(seconds)


def repeat_in_thread(seconds: float, step: Callable[[], Any], what: str) -> threading.Event:
    """Call ``step`` every ``seconds`` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    retrying = Retrying(what)

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                step()
            except Exception as exc:  # a failing step never stops the loop
                retrying.failed(exc)
            else:
                retrying.succeeded()

    threading.Thread(target=loop, name=what, daemon=True).start()
    return stop


def versions(snapshot: Snapshot) -> dict[tuple[str, str], str]:
    """(family, symbol) -> served tag."""
    return {(f, s): spec.version for f, specs in snapshot.items() for s, spec in specs.items()}


class ChampionWatch:
    """Keeps one API worker's :class:`~bentos.predictor.Predictor` on the store's champions.

    ``read`` returns the champions now (``bentos.registry.LiveChampions``; it blocks, so
    it runs in a thread); ``on_swap`` is told each new snapshot (the Prometheus gauges).
    """

    def __init__(
        self,
        predictor: Any,
        read: Callable[[], Snapshot],
        on_swap: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.read = read
        self.on_swap = on_swap

    async def check(self) -> bool:
        """Swap in the store's champions if they changed; True if it did.

        A family whose model service cannot load its new version keeps its old one
        (and the check raises, naming it, after the others are swapped).
        """
        found = await anyio.to_thread.run_sync(self.read)
        current = self.predictor.snapshot
        served = versions(current)
        chosen, failures = {}, []
        for family, specs in found.items():
            fresh = [s.version for k, s in specs.items() if served.get((family, k)) != s.version]
            try:
                if fresh:
                    await self.predictor.families[family].warm(fresh)
                chosen[family] = specs
            except Exception as exc:
                failures.append(f"{family} {', '.join(fresh)}: {type(exc).__name__}: {exc}")
                chosen[family] = current.get(family, {})
        swapped = versions(chosen) != served
        if swapped:
            self.predictor.swap(chosen)
            changes = sorted(set(versions(chosen).items()) - set(served.items()))
            log.info("now serving %s", ", ".join(f"{tag} ({f})" for (f, _), tag in changes))
            if self.on_swap is not None:
                self.on_swap(self.predictor.snapshot)
        if failures:
            raise RuntimeError(f"model services could not load {'; '.join(failures)}")
        return swapped
