"""Candle validation and gap detection: the checks every ingestion path shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingestion.gaps import find_gaps, missing_hours, summarize_gaps
from ingestion.validate import CandleValidationError, row_problems, validate_candles

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def candles(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": "BTC-USD",
            "time": pd.date_range(T0, periods=n, freq="h"),
            "open": 100.0,
            "high": 110.0,
            "low": 90.0,
            "close": 105.0,
            "volume": 1.0,
        }
    )


def test_sound_candles_pass_unchanged():
    frame = candles()
    assert validate_candles(frame) is frame
    assert (row_problems(frame) == "").all()


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("close", np.nan, "non-finite"),
        ("high", np.inf, "non-finite"),
        ("open", 0.0, "price <= 0"),
        ("low", 101.0, "low above open/close"),
        ("high", 104.0, "high below open/close"),
        ("volume", -0.1, "negative volume"),
        ("time", T0 + pd.Timedelta(minutes=90), "time not on the hour"),
    ],
)
def test_each_bad_candle_is_named_with_symbol_time_and_reason(column, value, reason):
    frame = candles()
    frame.loc[2, column] = value
    with pytest.raises(CandleValidationError) as info:
        validate_candles(frame)
    message = str(info.value)
    assert "BTC-USD" in message and reason in message
    assert row_problems(frame).tolist().count("") == 4


def test_still_open_hour_is_rejected_when_now_is_given():
    frame = candles(3)
    now = T0 + pd.Timedelta(hours=2, minutes=30)  # the 02:00 candle is still open
    reasons = row_problems(frame, now)
    assert reasons.tolist()[:2] == ["", ""] and "not closed" in reasons[2]
    with pytest.raises(CandleValidationError, match="2024-01-01T02:00:00Z"):
        validate_candles(frame, now)


def test_first_bad_row_and_count_of_others_in_message():
    frame = candles()
    frame.loc[[1, 3], "volume"] = -1.0
    with pytest.raises(CandleValidationError, match=r"01:00:00Z.*and 1 more"):
        validate_candles(frame)


def hours(*offsets: int) -> list[pd.Timestamp]:
    return [T0 + pd.Timedelta(hours=h) for h in offsets]


def test_gaps_between_candles_are_ranges_of_missing_hours():
    gaps = find_gaps(hours(0, 1, 4, 5, 7))
    assert [(g.first, g.last, g.hours) for g in gaps] == [
        (*hours(2, 3), 2),
        (*hours(6, 6), 1),
    ]
    assert missing_hours(gaps) == 3


def test_window_edges_count_as_gaps_when_window_given():
    gaps = find_gaps(hours(2, 3), start=T0, end=T0 + pd.Timedelta(hours=6))
    assert [(g.first, g.hours) for g in gaps] == [(T0, 2), (hours(4)[0], 2)]
    assert find_gaps(hours(0, 1, 2), start=T0, end=T0 + pd.Timedelta(hours=3)) == []


def test_empty_window_is_one_gap_and_no_window_no_gap():
    assert [g.hours for g in find_gaps([], start=T0, end=T0 + pd.Timedelta(hours=5))] == [5]
    assert find_gaps([]) == []
    assert find_gaps(hours(0, 0, 1)) == []  # duplicates are not gaps


def test_summary_lists_ranges_and_truncates():
    gaps = find_gaps(hours(*range(0, 40, 2)))
    text = summarize_gaps(gaps, limit=3)
    assert text.startswith("19 gaps, 19 missing hours: 2024-01-01T01:00:00Z (1 h)")
    assert text.endswith("(+16 more)")
    assert summarize_gaps([]) == "no gaps"
