"""Find the champion of each model family in the BentoML model store, by labels.

Names and labels follow the registry contract written by training (stage C):
``candlecast-{family}-{symbol_slug}`` with labels ``stage``/``family``/``symbol``.
Serving never imports ``training``; it reads only what the store records.
"""

from __future__ import annotations

from dataclasses import dataclass

import bentoml

from bentos.inference import ModelSpec
from ingestion.settings import get_settings

SERVED_FAMILIES = ("lasso", "cnn")
TRAIN_COMMAND = "python -m training train --symbol {symbol} --models lasso,cnn"


class NoChampionError(RuntimeError):
    """No champion of a family the service needs: it must not start."""


@dataclass(frozen=True)
class Champion:
    tag: str
    spec: ModelSpec


def served_symbols() -> list[str]:
    """Symbols from ``CANDLECAST_SERVE_SYMBOLS`` (comma-separated, upper-cased)."""
    raw = get_settings().serve_symbols
    return [s.strip().upper() for s in raw.split(",") if s.strip()]


def model_name(family: str, symbol: str) -> str:
    return f"candlecast-{family}-{symbol.lower()}"


def find_champion(family: str, symbol: str) -> Champion | None:
    """Newest version labelled champion for (family, symbol), or None."""
    name = model_name(family, symbol)
    found = [
        m
        for m in bentoml.models.list()
        if m.tag.name == name and m.info.labels.get("stage") == "champion"
    ]
    if not found:
        return None
    best = max(found, key=lambda m: m.creation_time)
    return Champion(str(best.tag), ModelSpec.from_metadata(str(best.tag), best.info.metadata))


def champions(family: str, symbols: list[str] | None = None) -> dict[str, Champion]:
    """Champion per served symbol; raise NoChampionError naming the command to train one."""
    symbols = symbols or served_symbols()
    result: dict[str, Champion] = {}
    for symbol in symbols:
        champion = find_champion(family, symbol)
        if champion is None:
            raise NoChampionError(
                f"No champion '{family}' model for {symbol} in the BentoML model store "
                f"({get_settings().bentoml_home}). Train and register one first: "
                f"{TRAIN_COMMAND.format(symbol=symbol)}"
            )
        result[symbol] = champion
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
        for symbol, champion in found.items():
            setattr(cls, model_attr(symbol), bentoml.models.BentoModel(champion.tag))
        return cls

    return decorate


def champion_specs(service_class: type) -> dict:
    """Symbol -> ModelSpec of a class decorated by ``attach_champions``."""
    return {symbol: c.spec for symbol, c in service_class.champions.items()}


def default_model(specs: list[ModelSpec]) -> str:
    """Family whose champion has the lowest walk-forward ratio < 1, else naive.

    A champion that training flagged as a leakage suspect (too good to be true on
    hourly prices) is never the default; it is still served when asked for by name.
    """
    ranked = [s for s in specs if s.mae_ratio_vs_persistence is not None]
    ranked = [s for s in ranked if not s.leakage_suspect]
    ranked = [s for s in ranked if s.mae_ratio_vs_persistence < 1.0]
    if not ranked:
        return "naive"
    return min(ranked, key=lambda s: s.mae_ratio_vs_persistence).family
