"""The champion of each served model family, found through the model contract.

Serving never imports ``training``: champions are read with
``candlecast.model_store`` by the contract's names and labels, and each carries
its :class:`~candlecast.contract.ModelSpec` (what to feed it, how to read it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import bentoml

from candlecast import model_store
from candlecast.contract import NAIVE, ModelSpec, check_family
from candlecast.metrics import beats_persistence
from candlecast.settings import get_settings
from candlecast.symbols import served_symbols as parse_served

TRAIN_COMMAND = "candlecast train --symbol {symbol} --models {families}"


class NoChampionError(RuntimeError):
    """No champion of a family the service needs: it must not start."""


@dataclass(frozen=True)
class Champion:
    tag: str
    spec: ModelSpec


def served_symbols() -> list[str]:
    """Symbols from ``CANDLECAST_SERVE_SYMBOLS`` (comma-separated, upper-cased)."""
    return parse_served(get_settings().serve_symbols)


def served_families() -> list[str]:
    """Families from ``CANDLECAST_SERVE_FAMILIES`` (default ``lasso,cnn``), checked."""
    raw = get_settings().serve_families
    return list(dict.fromkeys(check_family(f.strip().lower()) for f in raw.split(",") if f.strip()))


def champions(family: str, symbols: list[str] | None = None) -> dict[str, Champion]:
    """Champion per served symbol; raise NoChampionError naming the command to train one."""
    result: dict[str, Champion] = {}
    for symbol in symbols or served_symbols():
        found = model_store.champion(family, symbol)
        if found is None:
            raise NoChampionError(
                f"No champion '{family}' model for {symbol} in the BentoML model store "
                f"({get_settings().bentoml_home}). Train and register one first: "
                f"{TRAIN_COMMAND.format(symbol=symbol, families=','.join(served_families()))}"
            )
        result[symbol] = Champion(found.tag, found.spec)
    return result


def model_attr(symbol: str) -> str:
    """Class attribute holding a symbol's model reference, e.g. ``model_btc_usd``."""
    return "model_" + "".join(c if c.isalnum() else "_" for c in symbol.lower())


def attach_champions(family: str):
    """Class decorator: reference each champion at class scope as ``bentoml.models.BentoModel``.

    BentoML packs into the Bento exactly the models a service names at class
    scope, so the tags are resolved here (import/build time), not in ``__init__``.
    """

    def decorate(cls: type) -> type:
        found = champions(family)
        cls.champions = found
        reference_models(cls, found)
        return cls

    return decorate


def reference_models(cls: type, found: Mapping[str, Champion], prefix: str = "") -> None:
    """Name each champion at ``cls``'s scope (``prefix + model_attr(symbol)``), so that
    ``bentoml build`` packs it with the service ``cls`` becomes."""
    for symbol, champion in found.items():
        setattr(cls, prefix + model_attr(symbol), bentoml.models.BentoModel(champion.tag))


class LiveChampions:
    """A family's champion per symbol as the service should serve it now.

    The newest champion in the model store under BENTOML_HOME (where retraining writes,
    ``model_store.live_store``), else ``packed``'s: the champions ``attach_champions``
    found at import, which ``bentoml build`` packs into the Bento. A symbol's versions
    are re-read only when their folder changed (``model_store.signature``), so a check
    every few seconds costs a few ``stat`` calls. A read that fails (a version being
    written) raises, and the next one retries it.
    """

    def __init__(self, family: str, packed: Mapping[str, Champion]) -> None:
        self.family = family
        self.packed = dict(packed)
        self._seen: dict[str, tuple[tuple, Champion | None]] = {}

    def read(self) -> dict[str, Champion]:
        result = {}
        for symbol, packed in self.packed.items():
            stamp = model_store.signature(self.family, symbol)
            seen = self._seen.get(symbol)
            if seen is None or seen[0] != stamp:
                found = model_store.champion(self.family, symbol, model_store.live_store())
                seen = (stamp, None if found is None else Champion(found.tag, found.spec))
                self._seen[symbol] = seen
            result[symbol] = seen[1] or packed
        return result


def default_model(specs: list[ModelSpec]) -> str:
    """Family whose champion beats persistence with the lowest walk-forward ratio, else naive.

    Beating persistence means a ratio below 1 with a Diebold-Mariano p-value below 0.05
    (``candlecast.metrics.beats_persistence``): a tie stays a tie, and naive, with its
    intervals, is then the default. A champion that training flagged as a leakage
    suspect (too good to be true on hourly prices) is never the default; it is still
    served when asked for by name.
    """
    ranked = [s for s in specs if serves_as_default(s)]
    if not ranked:
        return NAIVE
    return min(ranked, key=lambda s: s.mae_ratio_vs_persistence).family


def serves_as_default(spec: ModelSpec) -> bool:
    """Beats persistence by the DM rule and is not a leakage suspect."""
    dm = spec.metrics.get("dm_pvalue")
    return not spec.leakage_suspect and beats_persistence(spec.mae_ratio_vs_persistence, dm)
