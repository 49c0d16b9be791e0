"""The feature SQL on small hand-made series (no real data needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingestion.features import FEATURE_SCHEMA, compute_features

START = pd.Timestamp("2024-01-01 00:00", tz="UTC")


def candles(closes: list[float], symbol: str = "AAA-USD", skip: tuple[int, ...] = ()):
    rows = [
        {
            "symbol": symbol,
            "time": START + pd.Timedelta(hours=i),
            "open": c - 1,
            "high": c + 2,
            "low": c - 3,
            "close": c,
            "volume": 10.0 + i,
        }
        for i, c in enumerate(closes)
        if i not in skip
    ]
    return pd.DataFrame(rows)


def features(frame: pd.DataFrame, **kwargs) -> pd.DataFrame:
    table = compute_features(frame, **kwargs)
    assert table.schema == FEATURE_SCHEMA
    return table.to_pandas().sort_values(["symbol", "event_timestamp"], ignore_index=True)


def test_definitions_on_a_rising_series():
    rows = features(candles([100.0 + i for i in range(30)]))
    last = rows.iloc[-1]  # current candle: close 129, lags 128 .. 105
    assert last["event_timestamp"] == START + pd.Timedelta(hours=30)
    assert (last["price_1_hour_ago"], last["price_24_hour_ago"]) == (128.0, 105.0)
    assert last["volume_3_hour_ago"] == 10.0 + 26
    assert (last["upper_shadow"], last["lower_shadow"]) == (2.0, 2.0)
    assert last["pr_24hr_mavg"] == pytest.approx(np.mean(np.arange(105, 129)))
    assert last["pr_24hr_mstd"] == pytest.approx(np.std(np.arange(105, 129), ddof=1))
    assert last["percentage_return_24_hour"] == pytest.approx((128 - 105) / 105)
    assert last["log_return_1h"] == pytest.approx(np.log(129 / 128))
    assert (last["rsi"], last["rsi_14"]) == (100.0, 100.0)  # no losses: ta's rule
    assert last["hour_sin"] == pytest.approx(np.sin(2 * np.pi * 6 / 24))  # closes 06:00


def test_rsi_is_zero_without_gains():
    last = features(candles([200.0 - i for i in range(30)])).iloc[-1]
    assert (last["rsi"], last["rsi_14"]) == (0.0, 0.0)


def test_first_rows_and_gaps_give_null_lags_not_shifted_ones():
    rows = features(candles([100.0 + i for i in range(40)], skip=(20,))).set_index(
        "event_timestamp"
    )
    assert len(rows) == 39
    assert np.isnan(rows.iloc[0]["price_1_hour_ago"])
    after_gap = rows.loc[START + pd.Timedelta(hours=22)]  # candle opened 21:00, 20:00 missing
    assert np.isnan(after_gap["price_1_hour_ago"])
    assert after_gap["price_2_hour_ago"] == 119.0
    assert np.isnan(after_gap["pr_24hr_mavg"]) and np.isnan(after_gap["rsi"])


def test_symbols_are_independent_and_since_filters_rows():
    both = pd.concat([candles([100.0] * 30), candles([5.0 + i for i in range(30)], "BBB-USD")])
    rows = features(both, since=(START + pd.Timedelta(hours=28)).tz_localize(None))
    assert list(rows["symbol"]) == ["AAA-USD", "AAA-USD", "BBB-USD", "BBB-USD"]
    assert rows.loc[rows["symbol"] == "AAA-USD", "pr_24hr_mstd"].eq(0.0).all()
    assert rows.loc[rows["symbol"] == "BBB-USD", "price_1_hour_ago"].tolist() == [32.0, 33.0]


def test_no_candles_give_no_rows():
    assert compute_features(candles([1.0]).iloc[:0]).num_rows == 0
