"""Client-side pieces that need no server: windows, parsing, rate limit."""

from __future__ import annotations

import itertools
import time

import pandas as pd
import pytest

from ingestion.coinbase import RateLimiter, Window, closed_window, parse_candles, split_windows
from ingestion.validate import CandleValidationError

T0 = pd.Timestamp("2024-01-01", tz="UTC")
H = pd.Timedelta(hours=1)


def test_windows_cover_the_range_in_pages_of_300_hours():
    windows = split_windows(Window(T0, T0 + 701 * H))
    assert [w.hours for w in windows] == [300, 300, 101]
    assert windows[0].start == T0 and windows[-1].end == T0 + 701 * H
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert split_windows(Window(T0, T0)) == []


def test_closed_window_never_includes_the_open_hour():
    now = T0 + 10 * H + pd.Timedelta(minutes=20)
    assert closed_window(T0 + pd.Timedelta(minutes=30), None, now) == Window(T0, T0 + 10 * H)
    assert closed_window(T0, T0 + 99 * H, now).end == T0 + 10 * H
    assert closed_window(T0, T0 + 5 * H + pd.Timedelta(minutes=1), now).end == T0 + 6 * H
    assert closed_window(T0 + 20 * H, None, now).hours == 0


def test_parse_sorts_filters_to_window_and_maps_columns():
    ts = int(T0.timestamp())
    payload = [
        [ts + 7200, 1, 4, 2, 3, 5],  # outside the window (end exclusive)
        [ts + 3600, 10, 40, 20, 30, 50],
        [ts, 1.5, 4.5, 2.5, 3.5, 0],
    ]
    frame = parse_candles("BTC-USD", payload, Window(T0, T0 + 2 * H))
    assert frame["time"].tolist() == [T0, T0 + H]
    assert frame.iloc[1][["low", "high", "open", "close", "volume"]].tolist() == [
        10,
        40,
        20,
        30,
        50,
    ]
    assert (frame["symbol"] == "BTC-USD").all()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"message": "x"}, "expected a JSON array"),
        ([[int(T0.timestamp()), 1, 2]], "at 2024-01-01T00:00:00Z: expected 6 numbers"),
        ([[int(T0.timestamp()), "1", 2, 1, 1, 1]], "expected 6 numbers"),
        ([[int(T0.timestamp()), 5, 2, 3, 3, 1]], "BTC-USD at 2024-01-01T00:00:00Z: low above"),
        ([[int(T0.timestamp()) + 60, 1, 2, 1, 1, 1]], "not on the hour"),
    ],
)
def test_malformed_payloads_raise_naming_symbol_and_time(payload, match):
    with pytest.raises(CandleValidationError, match=match) as info:
        parse_candles("BTC-USD", payload, Window(T0, T0 + 2 * H))
    assert "BTC-USD" in str(info.value)


def test_rate_limiter_spaces_calls():
    limiter = RateLimiter(per_second=50)
    began = time.monotonic()
    for _ in range(11):
        limiter.wait()
    assert time.monotonic() - began >= 10 / 50 * 0.95
