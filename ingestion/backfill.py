"""Backfill: fetch -> validate -> store, one exchange page at a time.

Each page (at most 300 hours) is validated and merged into the store before
the next request, so a process killed at any moment keeps every page already
stored, and a rerun over the same window fetches again, adds what is missing
and changes nothing else (the store deduplicates on (symbol, time)).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ingestion.coinbase import CoinbaseClient, Progress, Window, closed_window, iter_pages
from ingestion.gaps import Gap, find_gaps
from ingestion.sample import ensure_not_synthetic
from ingestion.store import CandleStore, normalize_symbol


@dataclass(frozen=True)
class BackfillResult:
    """Per-symbol summary: candles fetched, newly stored, already stored, gaps, requests."""

    symbol: str
    window: Window
    fetched: int
    new: int
    existing: int
    gaps: list[Gap]
    requests: int


def backfill(
    store: CandleStore,
    symbol: str,
    start: pd.Timestamp,
    end: pd.Timestamp | None = None,
    *,
    client: CoinbaseClient | None = None,
    progress: Progress | None = None,
    now: pd.Timestamp | None = None,
) -> BackfillResult:
    """Fetch ``[start, end)`` of closed hourly candles for ``symbol`` into ``store``."""
    symbol = normalize_symbol(symbol)
    ensure_not_synthetic(store, symbol)
    client = client or CoinbaseClient()
    before = client.requests
    window = closed_window(start, end, now)
    fetched = new = existing = 0
    times: list[pd.Series] = []
    for _, page in iter_pages(symbol, start, end, client=client, progress=progress, now=now):
        written = store.write(page)
        fetched += len(page)
        new += written.new
        existing += written.existing
        times.append(page["time"])
    seen = pd.concat(times, ignore_index=True) if times else pd.Series([], dtype=object)
    return BackfillResult(
        symbol=symbol,
        window=window,
        fetched=fetched,
        new=new,
        existing=existing,
        gaps=find_gaps(seen, window.start, window.end),
        requests=client.requests - before,
    )
