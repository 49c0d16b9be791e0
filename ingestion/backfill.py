"""Backfill: fetch -> validate -> store, one exchange page at a time, one month a write.

Each page (at most 300 hours) is validated as it arrives; its candles are merged into
the store as soon as their month is complete (pages come oldest first, so a month is
complete once a page reaches the next one), and whatever is held is stored when the
backfill ends or fails. Each month file is thus written once per backfill, not once
per page (merging every page into its month's file, read back, re-sorted and fsynced,
was ~38 % of a backfill's client time). A process killed at any moment keeps every
month already stored and loses at most the pages of the month in progress (<= 3
requests); a rerun over the same window fetches again, adds what is missing and changes
nothing else (the store deduplicates on (symbol, time)).
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
    months = MonthWriter(store, symbol)
    try:
        fetched = fetch_candles(
            symbol, start, end, client=client, progress=progress, on_page=months.add, now=now
        )
    except Exception:
        months.flush_after_failure()  # the pages fetched before the failure stay stored
        raise
    months.flush()
    result = BackfillResult(
        symbol=symbol,
        window=fetched.window,
        fetched=len(fetched.candles),
        new=sum(w.new for w in months.writes),
        existing=sum(w.existing for w in months.writes),
        gaps=fetched.gaps,
        requests=fetched.requests,
    )
    log.info(
        "%s backfill %s: %d pages (%d writes), %d requests, %d fetched, %d new, %d already stored, "
        "%d gaps (%d h), %.2f s",
        symbol,
        result.window,
        months.pages,
        len(months.writes),
        result.requests,
        result.fetched,
        result.new,
        result.existing,
        len(result.gaps),
        missing_hours(result.gaps),
        time.perf_counter() - started,
    )
    return result


class MonthWriter:
    """Holds a backfill's pages and stores each month's candles once the month is complete.

    Pages arrive oldest first, so every month before the newest candle's month is whole.
    """

    def __init__(self, store: CandleStore, symbol: str) -> None:
        self.store, self.symbol = store, symbol
        self.pending: list[pd.DataFrame] = []
        self.writes: list[WriteResult] = []
        self.pages = 0

    def add(self, page: pd.DataFrame) -> None:
        """Hold a validated page; store the months it shows to be complete."""
        self.pages += 1
        if page.empty:
            return
        self.pending.append(page)
        newest = page["time"].iloc[-1]
        month = pd.Timestamp(year=newest.year, month=newest.month, day=1, tz="UTC")
        held = pd.concat(self.pending, ignore_index=True)
        done = held["time"] < month
        if done.any():
            self._write(held[done])
            self.pending = [held[~done]]

    def flush(self) -> None:
        """Store everything held (the backfill's last month)."""
        held = [page for page in self.pending if not page.empty]
        self.pending = []
        if held:
            self._write(pd.concat(held, ignore_index=True))

    def flush_after_failure(self) -> None:
        """Store what is held when the fetch failed; a failing store is logged, not raised
        (the fetch's error is the one to report)."""
        try:
            self.flush()
        except Exception as exc:  # reported here: the fetch's error propagates
            log.warning("%s: pages fetched before the failure not stored: %s", self.symbol, exc)

    def _write(self, candles: pd.DataFrame) -> None:
        written = self.store.write(candles)
        self.writes.append(written)
        log.debug(
            "%s write %d: %d candles, %d new",
            self.symbol,
            len(self.writes),
            written.offered,
            written.new,
        )
