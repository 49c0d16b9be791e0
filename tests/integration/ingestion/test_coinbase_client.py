"""The Coinbase client against the fake exchange over real HTTP: paging, retries, errors."""

from __future__ import annotations

import itertools
import time

import pandas as pd
import pytest
import requests

from candlecast.settings import reset_settings
from ingestion.coinbase import CoinbaseError, UnknownSymbolError, fetch_candles
from ingestion.sample import synthetic_candles
from ingestion.validate import CandleValidationError

pytestmark = pytest.mark.integration
END = pd.Timestamp("2024-03-01", tz="UTC")
H = pd.Timedelta(hours=1)


def served(fake, hours: int = 1000, drop: tuple[int, ...] = (), symbol: str = "BTC-USD"):
    candles = synthetic_candles(symbol, hours, seed=11, end=END)
    candles = candles.drop(index=list(drop)).reset_index(drop=True)
    fake.set_candles(symbol, candles)
    return candles


def test_long_window_is_paged_in_at_most_300_candles_oldest_first(fake_coinbase):
    candles = served(fake_coinbase, 1000)
    result = fetch_candles("BTC-USD", candles["time"].iloc[0], END)
    pd.testing.assert_frame_equal(result.candles, candles)
    assert result.requests == 4 and result.gaps == []
    spans = [
        (pd.Timestamp(r.params["start"]), pd.Timestamp(r.params["end"]))
        for r in fake_coinbase.requests
    ]
    assert all(r.status == 200 for r in fake_coinbase.requests)
    assert all((end - start) / H + 1 <= 300 for start, end in spans)
    assert spans[0][0] == candles["time"].iloc[0] and spans[-1][1] == END - H


def test_fake_rejects_more_than_300_candles_like_coinbase(fake_coinbase):
    start = served(fake_coinbase, 400)["time"].iloc[0]
    params = {"granularity": 3600, "start": start.isoformat(), "end": (start + 300 * H).isoformat()}
    response = requests.get(f"{fake_coinbase.url}/products/BTC-USD/candles", params=params)
    assert response.status_code == 400 and "exceeds 300" in response.json()["message"]
    params["end"] = (start + 299 * H).isoformat()  # exactly 300 buckets, end inclusive
    rows = requests.get(f"{fake_coinbase.url}/products/BTC-USD/candles", params=params).json()
    assert len(rows) == 300 and rows[0][0] > rows[-1][0]  # newest first


def test_missing_hours_are_reported_as_gaps_never_filled(fake_coinbase):
    candles = served(fake_coinbase, 600, drop=(0, 1, 250, 251, 252, 599))
    start = END - 600 * H
    result = fetch_candles("BTC-USD", start, END)
    assert len(result.candles) == len(candles) == 594
    assert [(g.first, g.hours) for g in result.gaps] == [
        (start, 2),
        (start + 250 * H, 3),
        (END - H, 1),
    ]


def test_429_burst_honours_retry_after_then_succeeds(fake_coinbase):
    candles = served(fake_coinbase, 100)
    fake_coinbase.inject(429, times=2, retry_after=0.3)
    began = time.monotonic()
    result = fetch_candles("BTC-USD", END - 100 * H, END)
    assert time.monotonic() - began >= 0.55  # two Retry-After waits, not the 10 ms backoff
    assert [r.status for r in fake_coinbase.requests] == [429, 429, 200]
    assert result.requests == 3 and len(result.candles) == len(candles)


def test_5xx_are_retried_with_backoff_then_give_up_naming_symbol_and_window(fake_coinbase):
    served(fake_coinbase, 100)
    fake_coinbase.inject(500, times=2)
    fake_coinbase.inject(503, times=1)
    assert len(fetch_candles("BTC-USD", END - 100 * H, END).candles) == 100
    fake_coinbase.inject(502, times=10)
    with pytest.raises(CoinbaseError) as info:
        fetch_candles("BTC-USD", END - 100 * H, END)
    message = str(info.value)
    assert "BTC-USD" in message and "2024-02-25T20:00:00Z .. 2024-03-01T00:00:00Z" in message
    assert "after 4 attempts" in message and "HTTP 502" in message
    assert len(fake_coinbase.requests) == 4 + 4


def test_timeouts_are_retried_and_bounded(fake_coinbase, monkeypatch):
    monkeypatch.setenv("CANDLECAST_COINBASE_TIMEOUT_SECONDS", "0.2")
    monkeypatch.setenv("CANDLECAST_COINBASE_MAX_ATTEMPTS", "2")
    reset_settings()
    served(fake_coinbase, 50)
    fake_coinbase.inject(200, delay=0.6)  # one slow answer, then normal
    assert len(fetch_candles("BTC-USD", END - 50 * H, END).candles) == 50
    fake_coinbase.delay = 0.6
    with pytest.raises(CoinbaseError, match=r"BTC-USD .*after 2 attempts.*Timeout"):
        fetch_candles("BTC-USD", END - 50 * H, END)


def test_connection_refused_is_retried_then_a_clear_error(home, monkeypatch):
    monkeypatch.setenv("CANDLECAST_COINBASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CANDLECAST_COINBASE_BACKOFF_BASE_SECONDS", "0.01")
    monkeypatch.setenv("CANDLECAST_COINBASE_MAX_ATTEMPTS", "3")
    reset_settings()
    with pytest.raises(CoinbaseError, match=r"ETH-USD .*after 3 attempts.*ConnectionError"):
        fetch_candles("ETH-USD", END - 5 * H, END)


def test_unknown_product_is_an_unknown_symbol_error(fake_coinbase):
    with pytest.raises(UnknownSymbolError, match="unknown symbol DOGE-EUR"):
        fetch_candles("DOGE-EUR", END - 5 * H, END)
    assert len(fake_coinbase.requests) == 1  # a 404 is not retried


def test_non_finite_values_from_the_exchange_are_rejected(fake_coinbase):
    candles = served(fake_coinbase, 50)
    candles.loc[7, "close"] = float("nan")  # served as JSON NaN
    fake_coinbase.set_candles("BTC-USD", candles)
    bad_time = candles.loc[7, "time"].strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(CandleValidationError, match=f"BTC-USD at {bad_time}: non-finite"):
        fetch_candles("BTC-USD", END - 50 * H, END)


@pytest.mark.parametrize("kind", ["not_json", "object", "short_row", "string_value"])
def test_malformed_payloads_fail_naming_the_symbol(fake_coinbase, kind):
    served(fake_coinbase, 50)
    fake_coinbase.inject_malformed(kind)
    with pytest.raises(CandleValidationError, match=r"malformed .*BTC-USD"):
        fetch_candles("BTC-USD", END - 50 * H, END)


def test_the_still_open_hour_is_never_returned(fake_coinbase):
    now = pd.Timestamp.now(tz="UTC")
    served(fake_coinbase, 30, symbol="BTC-USD")
    fake_coinbase.set_candles(
        "BTC-USD", synthetic_candles("BTC-USD", 30, seed=1, end=now.floor("h") + H)
    )
    result = fetch_candles("BTC-USD", now - 30 * H)
    assert result.candles["time"].max() == now.floor("h") - H


def test_backoff_grows_exponentially_with_jitter_and_is_capped(fake_coinbase, monkeypatch):
    """Without Retry-After each wait lies in [c/2, c], c = min(max, base * 2^(attempt-1))."""
    from ingestion.coinbase import CoinbaseClient

    for key, value in {
        "CANDLECAST_COINBASE_BACKOFF_BASE_SECONDS": "1",
        "CANDLECAST_COINBASE_BACKOFF_MAX_SECONDS": "4",
        "CANDLECAST_COINBASE_MAX_ATTEMPTS": "6",
        "CANDLECAST_COINBASE_REQUESTS_PER_SECOND": "0",  # only backoff sleeps are recorded
    }.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    candles = served(fake_coinbase, 10)
    fake_coinbase.inject(500, times=5)
    waits: list[float] = []
    result = fetch_candles(
        "BTC-USD", candles["time"].iloc[0], END, client=CoinbaseClient(sleep=waits.append)
    )
    assert len(result.candles) == 10
    ceilings = [1, 2, 4, 4, 4]
    assert len(waits) == len(ceilings)
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True)), waits
    assert len(set(waits)) == len(waits)  # jittered, not a fixed schedule


def test_client_side_rate_limit_spaces_requests(fake_coinbase, monkeypatch):
    """A long backfill never bursts: requests leave at most N per second."""
    monkeypatch.setenv("CANDLECAST_COINBASE_REQUESTS_PER_SECOND", "20")
    reset_settings()
    candles = served(fake_coinbase, 1500)
    fetch_candles("BTC-USD", candles["time"].iloc[0], END)
    arrivals = [r.at for r in fake_coinbase.requests]
    assert len(arrivals) == 5
    # The limiter spaces sends 1/20 s apart; each arrival adds the loopback and server
    # thread's own delay (~10-15 ms on a loaded 2-core box, now that a page's client work
    # is shorter than the interval), so one gap may look short but the span cannot.
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert arrivals[-1] - arrivals[0] >= 4 / 20 - 0.02, gaps
