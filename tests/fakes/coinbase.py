"""A local fake of Coinbase Exchange's candles endpoint, over real HTTP on 127.0.0.1.

Speaks ``GET /products/{symbol}/candles?granularity=3600&start=&end=`` like the
exchange: inclusive ``start``/``end``, at most 300 candles (HTTP 400 with
Coinbase's error JSON beyond), newest first, no candle for hours it does not
hold, 404 ``{"message": "NotFound"}`` for unknown products. Faults are queued
with :meth:`FakeCoinbase.inject` (429 bursts with ``Retry-After``, 500s, slow or
malformed responses) or applied to every request with ``.delay``. Every request
is recorded in ``.requests``. :meth:`FakeCoinbase.limit_rate` makes it throttle
like Coinbase's public endpoints (a lazy-fill token bucket: 429 with
``Retry-After`` past the burst; off by default).

Use the ``fake_coinbase`` fixture (import it into a test module or conftest), or
``with FakeCoinbase() as fake:`` and :func:`client_env` for subprocesses::

    def test_x(home, fake_coinbase):
        fake_coinbase.set_candles("BTC-USD", frame)   # store-shaped DataFrame
        ...                                           # ingestion now talks to fake_coinbase.url
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from candlecast.settings import reset_settings
from candlecast.times import HOUR, utc
from ingestion.store import to_candle_frame

TOO_MANY = (
    "granularity too small for the requested time range. "
    "Count of aggregations requested exceeds 300"
)
MALFORMED_BODIES = {
    "not_json": b"<html>502 Bad Gateway</html>",
    "object": b'{"candles": []}',
    "short_row": b"[[1704067200, 42000.0, 42100.0]]",
    "string_value": b'[[1704067200, "42000", 42100.0, 42050.0, 42060.0, 1.5]]',
}


def client_env(url: str) -> dict[str, str]:
    """Environment pointing ingestion at ``url`` with tiny backoff and no real rate limit."""
    return {
        "CANDLECAST_COINBASE_URL": url,
        "CANDLECAST_COINBASE_BACKOFF_BASE_SECONDS": "0.01",
        "CANDLECAST_COINBASE_BACKOFF_MAX_SECONDS": "0.05",
        "CANDLECAST_COINBASE_REQUESTS_PER_SECOND": "1000",
        "CANDLECAST_COINBASE_TIMEOUT_SECONDS": "2",
        "CANDLECAST_COINBASE_MAX_ATTEMPTS": "4",
    }


@dataclass
class Fault:
    """One canned response served instead of the real answer."""

    status: int = 200
    body: bytes | None = None
    retry_after: float | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    symbol: str
    params: dict[str, str]
    status: int
    at: float


class FakeCoinbase:
    """In-memory candles served over HTTP with Coinbase's paging and error semantics."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.requests: list[RecordedRequest] = []
        self._candles: dict[str, pd.DataFrame] = {}
        self._faults: deque[Fault] = deque()
        self._outages: list[tuple[pd.Timestamp, pd.Timestamp]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._bucket: _TokenBucket | None = None
        self.throttled = 0  # requests answered 429 by the rate limit (not injected faults)

    # -- data and faults -------------------------------------------------------------
    def set_candles(self, symbol: str, candles: pd.DataFrame) -> None:
        """Serve ``candles`` (store columns; values are served as given, even invalid ones)."""
        frame = candles.assign(symbol=symbol)
        with self._lock:
            self._candles[symbol] = (
                to_candle_frame(frame).sort_values("time").reset_index(drop=True)
            )

    def candles(self, symbol: str) -> pd.DataFrame:
        """What the exchange holds for ``symbol``, in store shape (for row-by-row checks)."""
        with self._lock:
            return self._candles[symbol].copy()

    def inject(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | None = None,
        body: bytes | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests with this fault instead of candles."""
        with self._lock:
            self._faults.extend(Fault(status, body, retry_after, delay) for _ in range(times))

    def outage(self, start: pd.Timestamp, end: pd.Timestamp) -> None:
        """Answer 503 to requests made while the requester's clock is in ``[start, end)``.

        The requester's clock (to the hour) is read from the request's ``end`` (a
        client asks for the candles closed by its "now"), so a replay on a simulated
        clock meets the outage at the simulated hours, as a live loop would live.
        """
        with self._lock:
            self._outages.append((utc(start), utc(end)))

    def limit_rate(self, per_second: float, burst: float | None = None) -> None:
        """Throttle like Coinbase: ``per_second`` tokens/s, ``burst`` deep (429 when empty).

        Coinbase's public endpoints allow 10 requests/s per IP, up to 15 in bursts.
        """
        with self._lock:
            self._bucket = _TokenBucket(per_second, burst or per_second)

    def inject_malformed(self, kind: str, times: int = 1) -> None:
        """Answer with HTTP 200 and a broken body: one of :data:`MALFORMED_BODIES`."""
        self.inject(200, times=times, body=MALFORMED_BODIES[kind])

    def candle_requests(self, symbol: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if symbol in (None, r.symbol)]

    # -- server lifecycle ------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeCoinbase:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeCoinbase:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling --------------------------------------------------------------
    def respond(self, symbol: str, params: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) for one candles request."""
        throttled = self._throttle()
        if throttled is not None:
            return throttled
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        delay = self.delay + (fault.delay if fault else 0.0)
        if delay:
            time.sleep(delay)
        if fault is None and self._in_outage(params):
            fault = Fault(503, _error("Service Unavailable"))
        if fault is not None and (fault.status != 200 or fault.body is not None):
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after}"}
            body = fault.body if fault.body is not None else _error(f"fault {fault.status}")
            return fault.status, body, headers
        return self._candles_response(symbol, params)

    def _throttle(self) -> tuple[int, bytes, dict[str, str]] | None:
        """The 429 of an empty token bucket, or None (no limit, or a token taken)."""
        with self._lock:
            wait = None if self._bucket is None else self._bucket.take()
            if wait is None:
                return None
            self.throttled += 1
        return 429, _error("Public rate limit exceeded"), {"Retry-After": f"{wait:.3f}"}

    def _in_outage(self, params: dict[str, str]) -> bool:
        if not self._outages or "end" not in params:
            return False
        try:
            asked = utc(pd.Timestamp(params["end"])) + HOUR  # end is inclusive: the last open time
        except ValueError:
            return False
        return any(start <= asked < end for start, end in self._outages)

    def _candles_response(self, symbol: str, params: dict[str, str]) -> tuple[int, bytes, dict]:
        with self._lock:
            held = self._candles.get(symbol)
        if held is None:
            return 404, _error("NotFound"), {}
        if params.get("granularity") != "3600":
            return 400, _error("Unsupported granularity"), {}
        try:
            end = pd.Timestamp(params["end"]) if "end" in params else held["time"].max()
            start = (
                pd.Timestamp(params["start"])
                if "start" in params
                else end - pd.Timedelta(hours=299)
            )
        except ValueError:
            return 400, _error("Invalid start or end"), {}
        start, end = utc(start), utc(end)
        if start > end:
            return 400, _error("start must be before end"), {}
        if (end - start) // HOUR + 1 > 300:
            return 400, _error(TOO_MANY), {}
        rows = held[(held["time"] >= start) & (held["time"] <= end)].iloc[::-1]
        body = [
            [int(t.timestamp()), lo, hi, op, cl, vol]
            for t, lo, hi, op, cl, vol in zip(
                rows["time"],
                rows["low"],
                rows["high"],
                rows["open"],
                rows["close"],
                rows["volume"],
                strict=True,
            )
        ]
        return 200, json.dumps(body).encode(), {}

    def record(self, symbol: str, params: dict[str, str], status: int) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(symbol, params, status, time.monotonic()))


class _TokenBucket:
    """Coinbase's lazy-fill token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> float | None:
        """None if a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


def _error(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def _handler_for(fake: FakeCoinbase) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            parts = parsed.path.strip("/").split("/")
            params = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
            if len(parts) == 3 and parts[0] == "products" and parts[2] == "candles":
                status, body, headers = fake.respond(parts[1], params)
                fake.record(parts[1], params, status)
            else:
                status, body, headers = 404, _error("NotFound"), {}
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test); nothing to do

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake_coinbase(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCoinbase]:
    """A running fake; ingestion's settings point at it with tiny retry sleeps."""
    with FakeCoinbase() as fake:
        for key, value in client_env(fake.url).items():
            monkeypatch.setenv(key, value)
        reset_settings()
        yield fake
    reset_settings()
