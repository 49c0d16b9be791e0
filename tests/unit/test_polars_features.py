"""The polars baseline of the features bench against the pandas reference, on gapped candles.

``bench/polars_features.py`` is a second implementation of the feature definitions (the
peer a user would pick), timed beside the DuckDB query; a baseline that computed other
values would make the comparison meaningless. Three symbols (BTC-USD and ETH-USD, each
the other's peer, and SOL-USD, whose peer is BTC-USD) with gaps at different hours, a
late start and a stretch of rising closes, long enough for the weekly windows to fill:
every one of the 115 columns equals ``bench.reference_features``, NULLs included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("polars", reason="polars is a dev/bench-only dependency (pip install polars)")

from bench.polars_features import polars_features, to_reference_frame
from bench.reference_features import reference_features
from candlecast.feature_catalog import CROSS_FEATURES, FEATURE_COLUMNS
from ingestion.sample import synthetic_candles

#: The reference's Garman-Klass variance can be negative for a candle: its sqrt is NaN there.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")
H = pd.Timedelta(hours=1)
END = pd.Timestamp("2024-03-01", tz="UTC")
HOURS = 900  # > 4 weeks (672 h) of warm-up plus room for gaps
#: Missing hours by position: a 3 h gap and a single hour in BTC, other hours in ETH (one of
#: them BTC's last hour, so BTC's last row has no peer row), and SOL's first 100 hours.
GAPS = {
    "BTC-USD": [700, 701, 702, 820],
    "ETH-USD": [300, 760, HOURS - 1],
    "SOL-USD": list(range(100)),
}
#: SOL's closes rise for these hours (by 0.1-1 %, so the volatility stays well-conditioned):
#: every change in a window > 0, so the loss EWM is 0 (RSI 100).
RISING = range(400, 430)


def market() -> pd.DataFrame:
    parts = []
    for seed, symbol in enumerate(GAPS, start=21):
        candles = synthetic_candles(symbol, HOURS, seed=seed, end=END)
        if symbol == "SOL-USD":
            rising = candles.index[RISING]
            steps = np.random.default_rng(seed).uniform(0.001, 0.01, len(rising))
            candles.loc[rising, "close"] = candles.loc[rising[0], "open"] * np.exp(steps.cumsum())
        parts.append(candles.drop(index=GAPS[symbol]))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return market()


@pytest.fixture(scope="module")
def expected(candles: pd.DataFrame) -> pd.DataFrame:
    return reference_features(candles)


@pytest.fixture(scope="module")
def rows(candles: pd.DataFrame) -> pd.DataFrame:
    return to_reference_frame(polars_features(candles))


def test_same_rows_columns_and_dtypes_as_the_reference(candles, expected, rows):
    assert len(rows) == len(candles)  # one row per stored candle, none for a missing hour
    assert list(rows.columns) == ["symbol", "event_timestamp", *FEATURE_COLUMNS]
    assert sorted(rows.columns) == sorted(expected.columns)
    pd.testing.assert_frame_equal(
        rows[["symbol", "event_timestamp"]], expected[["symbol", "event_timestamp"]]
    )
    assert (rows.dtypes == expected[rows.columns].dtypes).all()


def test_every_feature_equals_the_reference_nulls_included(expected, rows):
    a = rows[FEATURE_COLUMNS].to_numpy()
    b = expected[FEATURE_COLUMNS].to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=1e-9, atol=1e-12)
    filled = rows[FEATURE_COLUMNS].notna().any()
    assert filled.all(), list(filled[~filled].index)  # the comparison is never NULL == NULL


def test_a_gap_is_a_null_lag_not_the_previous_row(rows):
    btc = rows[rows["symbol"] == "BTC-USD"].set_index("event_timestamp")
    first_after = btc.index.min() + 703 * H  # the close of the candle at 703, after the gap
    assert np.isnan(btc.loc[first_after, "price_1_hour_ago"])
    assert not np.isnan(btc.loc[first_after, "price_4_hour_ago"])
    assert btc.loc[first_after, ["pr_24hr_mavg", "rsi", "volatility_24h"]].isna().all()


def test_the_peer_rows_and_the_rsi_of_rising_closes(rows):
    by_symbol = {s: g.set_index("event_timestamp") for s, g in rows.groupby("symbol")}
    btc, eth, sol = by_symbol["BTC-USD"], by_symbol["ETH-USD"], by_symbol["SOL-USD"]
    cross = list(CROSS_FEATURES)
    assert btc.iloc[-1][cross].isna().all()  # ETH lacks BTC's last hour
    t = sol.index[-1]
    assert sol.loc[t, "peer_log_return_1h"] == btc.loc[t, "log_return_1h"]
    assert btc.loc[t - H, "peer_volatility_24h"] == eth.loc[t - H, "volatility_24h"]
    assert (sol["rsi_14"] == 100.0).any()
