"""Backfill: fetch -> validate -> store, one exchange page at a time.

Each page (at most 300 hours) is validated and merged into the store before
the next request, so a process killed at any moment keeps every page already
stored, and a rerun over the same window fetches again, adds what is missing
and changes nothing else (the store deduplicates on (symbol, time)).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pandas as pd

from candlecast.symbols import normalize_symbol
from ingestion.coinbase import CoinbaseClient, Progress, Window, fetch_candles
from ingestion.gaps import Gap, missing_hours
from ingestion.sample import ensure_not_synthetic
from ingestion.store import CandleStore, WriteResult

log = logging.getLogger(__name__)


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
    started = time.perf_counter()
    writes: list[WriteResult] = []

    def store_page(page) -> None:
        written = store.write(page)
        writes.append(written)
        log.debug(
            "%s page %d: %d candles, %d new", symbol, len(writes), written.offered, written.new
        )

    fetched = fetch_candles(
        symbol, start, end, client=client, progress=progress, on_page=store_page, now=now
    )
    result = BackfillResult(
        symbol=symbol,
        window=fetched.window,
        fetched=len(fetched.candles),
        new=sum(w.new for w in writes),
        existing=sum(w.existing for w in writes),
        gaps=fetched.gaps,
        requests=fetched.requests,
    )
    log.info(
        "%s backfill %s: %d pages, %d requests, %d fetched, %d new, %d already stored, "
        "%d gaps (%d h), %.2f s",
        symbol,
        result.window,
        len(writes),
        result.requests,
        result.fetched,
        result.new,
        result.existing,
        len(result.gaps),
        missing_hours(result.gaps),
        time.perf_counter() - started,
    )
    return result
