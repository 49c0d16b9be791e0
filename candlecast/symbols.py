"""Symbols are Coinbase product ids (``BASE-QUOTE``, e.g. ``BTC-USD``)."""

from __future__ import annotations

import re

from candlecast.errors import BadInput

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$")


class InvalidSymbolError(BadInput, ValueError):
    """A symbol that is not of the exchange's ``BASE-QUOTE`` form."""


def normalize_symbol(symbol: str) -> str:
    """Upper-case and check a product id such as ``btc-usd`` -> ``BTC-USD``."""
    value = str(symbol).strip().upper()
    if not _SYMBOL_RE.match(value):
        raise InvalidSymbolError(
            f"invalid symbol {symbol!r}: expected a Coinbase product id like BTC-USD"
        )
    return value


def symbol_slug(symbol: str) -> str:
    """``btc-usd``: the form used in model names and labels."""
    return symbol.lower()


def served_symbols(raw: str) -> list[str]:
    """Symbols of a comma-separated list such as ``CANDLECAST_SERVE_SYMBOLS``, upper-cased."""
    return list(dict.fromkeys(s.strip().upper() for s in raw.split(",") if s.strip()))
