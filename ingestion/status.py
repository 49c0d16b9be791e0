"""``status``: what the candle store holds per symbol (range, count, gaps, freshness)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from candlecast.times import HOUR, utc_now
from ingestion.gaps import Gap, find_gaps
from ingestion.store import CandleStore


@dataclass(frozen=True)
class SymbolStatus:
    symbol: str
    count: int
    first: pd.Timestamp
    last: pd.Timestamp
    gaps: list[Gap]
    synthetic: dict | None
    age: pd.Timedelta

    def as_dict(self) -> dict:
        """JSON-able form (``status --json``) for scripts and other stages."""
        return {
            "symbol": self.symbol,
            "count": self.count,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "gaps": [
                {"first": g.first.isoformat(), "last": g.last.isoformat(), "hours": g.hours}
                for g in self.gaps
            ],
            "missing_hours": sum(g.hours for g in self.gaps),
            "synthetic": self.synthetic is not None,
            "age_seconds": int(self.age.total_seconds()),
        }


def symbol_status(
    store: CandleStore, symbol: str, now: pd.Timestamp | None = None
) -> SymbolStatus | None:
    """Status of one symbol, or None when nothing is stored for it."""
    times = store.read(symbol)["time"]
    if times.empty:
        return None
    last = times.iloc[-1]
    return SymbolStatus(
        symbol=symbol,
        count=len(times),
        first=times.iloc[0],
        last=last,
        gaps=find_gaps(times),
        synthetic=store.synthetic_info(symbol),
        age=(now or utc_now()) - (last + HOUR),
    )


def store_status(store: CandleStore, now: pd.Timestamp | None = None) -> list[SymbolStatus]:
    """Status of every stored symbol, sorted by symbol."""
    found = (symbol_status(store, symbol, now) for symbol in store.symbols())
    return [status for status in found if status is not None]
