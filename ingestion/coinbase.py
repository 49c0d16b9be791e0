"""Coinbase Exchange hourly candles: paging, retries, rate limit, validation.

``GET {CANDLECAST_COINBASE_URL}/products/{symbol}/candles?granularity=3600&start=&end=``
returns at most 300 candles, newest first, as ``[time, low, high, open, close,
volume]`` arrays, with no candle for an hour without trades. This module turns
any window into pages of at most 300 hours, retries transient failures
(429/5xx/timeouts/connection errors, honouring ``Retry-After``) with bounded
exponential backoff and jitter, spaces requests client-side so a long backfill
stays under the public rate limit, validates every candle, and never returns
the still-open current hour.

Entry points for other stages (the ``update`` job uses :func:`fetch_candles`)::

    result = fetch_candles("BTC-USD", start, end)   # end exclusive, clamped to closed hours
    result.candles   # DataFrame in store columns (symbol,time,open,high,low,close,volume)
    result.gaps      # list[Gap]: hours the exchange has no candle for (never filled)
    result.requests  # HTTP requests made, retries included

``on_page=`` receives each validated page before the next request, so a caller
can store page by page (see ``backfill``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import requests

from candlecast.errors import BadInput, Failure
from candlecast.settings import get_settings
from candlecast.symbols import normalize_symbol
from candlecast.times import HOUR
from ingestion.gaps import Gap, find_gaps
from ingestion.store import CANDLE_COLUMNS, empty_candles, to_candle_frame
from ingestion.validate import (
    CandleValidationError,
    describe_time,
    last_closed_end,
    validate_candles,
)

log = logging.getLogger(__name__)
GRANULARITY = 3600
MAX_CANDLES_PER_REQUEST = 300
#: Field order of one candle array in Coinbase responses (and Coinbase-format CSVs).
COINBASE_FIELDS = ["time", "low", "high", "open", "close", "volume"]
MAX_RETRY_AFTER_SECONDS = 120.0
_TRANSIENT_ERRORS = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)

#: Progress callback: (windows done, windows total).
Progress = Callable[[int, int], None]


class CoinbaseError(Failure, RuntimeError):
    """The exchange could not deliver candles (after retries, or a rejected request)."""


class UnknownSymbolError(BadInput, CoinbaseError):
    """The exchange has no such product (HTTP 404)."""


@dataclass(frozen=True)
class Window:
    """Candle open times ``start <= t < end``, both on the hour."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / HOUR)

    def __str__(self) -> str:
        return f"{describe_time(self.start)} .. {describe_time(self.end)}"


@dataclass(frozen=True)
class FetchResult:
    """Validated candles of a window, the hours the exchange had none for, and the cost."""

    symbol: str
    window: Window
    candles: pd.DataFrame
    gaps: list[Gap]
    requests: int


def closed_window(
    start: pd.Timestamp, end: pd.Timestamp | None = None, now: pd.Timestamp | None = None
) -> Window:
    """The hours to fetch: start floored, end ceiled, and never past the still-open hour."""
    limit = last_closed_end(now)
    stop = limit if end is None else min(pd.Timestamp(end).ceil("h"), limit)
    first = pd.Timestamp(start).floor("h")
    return Window(first, max(first, stop))


def split_windows(window: Window, size: int = MAX_CANDLES_PER_REQUEST) -> list[Window]:
    """Consecutive windows of at most ``size`` hours covering ``window``."""
    if window.end <= window.start:
        return []
    step = size * HOUR
    starts = pd.date_range(window.start, window.end, freq=step, inclusive="left")
    return [Window(s, min(s + step, window.end)) for s in starts]


class RateLimiter:
    """Space calls at least ``1 / per_second`` apart (thread-safe)."""

    def __init__(self, per_second: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


class CoinbaseClient:
    """One HTTP session against the candles endpoint; defaults come from settings."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        settings = get_settings()
        self.base_url = (base_url or settings.coinbase_url).rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "candlecast/0.1")
        self.timeout = settings.coinbase_timeout_seconds
        self.max_attempts = max(1, settings.coinbase_max_attempts)
        self.backoff_base = settings.coinbase_backoff_base_seconds
        self.backoff_max = settings.coinbase_backoff_max_seconds
        self.limiter = RateLimiter(settings.coinbase_requests_per_second, sleep)
        self.sleep = sleep
        self.requests = 0

    def candles(self, symbol: str, window: Window) -> pd.DataFrame:
        """Validated candles of one window of at most 300 hours, oldest first."""
        response = self._get(symbol, window)
        try:
            payload = response.json()
        except ValueError:
            raise CandleValidationError(
                f"malformed response for {symbol} {window}: body is not JSON"
            ) from None
        return parse_candles(symbol, payload, window)

    def _get(self, symbol: str, window: Window) -> requests.Response:
        url = f"{self.base_url}/products/{symbol}/candles"
        params = {
            "granularity": GRANULARITY,
            "start": window.start.isoformat(),
            "end": (window.end - HOUR).isoformat(),  # Coinbase's end is inclusive
        }
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            self.limiter.wait()
            self.requests += 1
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except _TRANSIENT_ERRORS as exc:
                problem, delay = f"{type(exc).__name__}: {exc}", self._backoff(attempt)
            else:
                if response.ok:
                    log.debug("GET %s %s: HTTP %d", symbol, window, response.status_code)
                    return response
                _raise_if_permanent(symbol, window, response)
                problem = f"HTTP {response.status_code} {_message(response)}".strip()
                hinted = _retry_after(response)
                delay = self._backoff(attempt) if hinted is None else hinted
            if attempt < self.max_attempts:
                log.warning(
                    "%s candles %s: %s; retry %d of %d in %.2f s",
                    symbol,
                    window,
                    problem,
                    attempt,
                    self.max_attempts - 1,
                    delay,
                )
                self.sleep(delay)
        raise CoinbaseError(
            f"giving up on {symbol} candles {window} after {self.max_attempts} attempts; "
            f"last error: {problem}"
        )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter (half to full step), capped by settings."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def _raise_if_permanent(symbol: str, window: Window, response: requests.Response) -> None:
    status = response.status_code
    if status == 404:
        raise UnknownSymbolError(f"unknown symbol {symbol}: Coinbase has no such product")
    if status != 429 and status < 500:
        raise CoinbaseError(
            f"Coinbase rejected the request for {symbol} {window}: "
            f"HTTP {status} {_message(response)}".strip()
        )


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)[:200]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return None


def parse_candles(symbol: str, payload: object, window: Window) -> pd.DataFrame:
    """Coinbase's ``[[time, low, high, open, close, volume], ...]`` -> validated store rows.

    Candles outside the window are dropped (the exchange may pad ranges); a row
    that is not six numbers, or fails :func:`validate_candles`, raises naming the
    symbol and the candle's time.
    """
    if not isinstance(payload, list):
        raise CandleValidationError(
            f"malformed response for {symbol} {window}: expected a JSON array of candles, "
            f"got {type(payload).__name__}"
        )
    for row in payload:
        _check_row_shape(symbol, window, row)
    if not payload:
        return empty_candles()
    return validate_candles(_page_frame(symbol, np.asarray(payload, dtype="float64"), window))


def _page_frame(symbol: str, rows: np.ndarray, window: Window) -> pd.DataFrame:
    """Store rows of one page's ``[time, low, high, open, close, volume]`` arrays.

    Only times in the window, the first of duplicated times, sorted by time, in the
    store's dtypes, built from NumPy columns: pandas' per-page frame building and
    coercion was a large part of a backfill's client time.
    """
    seconds = rows[:, 0].astype("int64")
    start, end = (int(t.timestamp()) for t in (window.start, window.end))
    inside = np.flatnonzero((seconds >= start) & (seconds < end))
    _, first = np.unique(seconds[inside], return_index=True)  # sorted by time
    keep = inside[first]
    picked = rows[keep]
    stamps = pd.DatetimeIndex((seconds[keep] * 1_000_000).astype("datetime64[us]"), tz="UTC")
    columns = {"symbol": np.full(len(keep), symbol, dtype=object), "time": stamps}
    for name in CANDLE_COLUMNS[2:]:
        columns[name] = picked[:, COINBASE_FIELDS.index(name)]
    return pd.DataFrame(columns, columns=CANDLE_COLUMNS)


def _check_row_shape(symbol: str, window: Window, row: object) -> None:
    numbers = isinstance(row, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in row
    )
    if numbers and len(row) == 6 and float(row[0]).is_integer():
        return
    when = str(window)
    if isinstance(row, list) and row and isinstance(row[0], int | float):
        when = describe_time(pd.Timestamp(int(row[0]), unit="s", tz="UTC"))
    raise CandleValidationError(
        f"malformed candle for {symbol} at {when}: expected 6 numbers "
        f"[time, low, high, open, close, volume], got {str(row)[:120]}"
    )


def fetch_candles(
    symbol: str,
    start: pd.Timestamp,
    end: pd.Timestamp | None = None,
    *,
    client: CoinbaseClient | None = None,
    progress: Progress | None = None,
    on_page: Callable[[pd.DataFrame], object] | None = None,
    now: pd.Timestamp | None = None,
) -> FetchResult:
    """All closed candles with ``start <= time < end`` (end defaults to now), plus gaps.

    Pages of at most 300 hours are fetched oldest first; each validated page is
    handed to ``on_page`` before the next request (backfill stores it there, so
    a killed run keeps what it fetched). ``progress(done, total)`` follows pages.
    Raises :class:`UnknownSymbolError` (404), :class:`CoinbaseError` (retries
    exhausted or request rejected) or ``CandleValidationError`` (bad data).
    """
    symbol = normalize_symbol(symbol)
    client = client or CoinbaseClient()
    before = client.requests
    window = closed_window(start, end, now)
    windows = split_windows(window)
    frames = []
    log.debug("%s: fetching %s in %d pages", symbol, window, len(windows))
    for done, part in enumerate(windows, start=1):
        page = client.candles(symbol, part)
        if on_page is not None:
            on_page(page)
        frames.append(page)
        if progress is not None:
            progress(done, len(windows))
    frames = [page for page in frames if not page.empty]
    candles = to_candle_frame(pd.concat(frames, ignore_index=True)) if frames else empty_candles()
    return FetchResult(
        symbol=symbol,
        window=window,
        candles=candles,
        gaps=find_gaps(candles["time"], window.start, window.end),
        requests=client.requests - before,
    )
