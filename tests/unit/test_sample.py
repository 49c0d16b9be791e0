"""The synthetic market: deterministic, valid, clustered volatility, volume ~ |return|."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingestion.gaps import find_gaps
from ingestion.sample import SyntheticConflictError, synthetic_candles, write_sample
from ingestion.store import CandleStore
from ingestion.validate import row_problems

END = pd.Timestamp("2024-06-01", tz="UTC")


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return synthetic_candles("BTC-USD", 8000, seed=7, end=END)


def test_same_seed_same_candles_other_seed_other_candles(market):
    again = synthetic_candles("BTC-USD", 8000, seed=7, end=END)
    pd.testing.assert_frame_equal(market, again)
    other = synthetic_candles("BTC-USD", 8000, seed=8, end=END)
    assert not np.allclose(market["close"], other["close"])


def test_candles_are_valid_hourly_closed_and_gapless(market):
    assert (row_problems(market, now=END) == "").all()
    assert market["time"].iloc[-1] == END - pd.Timedelta(hours=1)
    assert len(market) == 8000 and find_gaps(market["time"]) == []
    assert (market["open"].iloc[1:].to_numpy() == market["close"].iloc[:-1].to_numpy()).all()


def test_volatility_clusters_but_returns_are_not_predictable(market):
    returns = np.log(market["close"]).diff().dropna()
    squared = returns**2
    assert squared.autocorr(1) > 0.1  # calm and wild hours come in runs
    assert abs(returns.autocorr(1)) < 0.05
    assert 0.002 < returns.std() < 0.01  # crypto-like hourly volatility


def test_volume_rises_with_absolute_return(market):
    returns = np.log(market["close"]).diff().abs().iloc[1:]
    assert np.corrcoef(returns, market["volume"].iloc[1:])[0, 1] > 0.4


def test_write_sample_labels_replaces_and_refuses_real_data(tmp_path):
    store = CandleStore(tmp_path / "candles")
    first = write_sample(store, "BTC-USD", 100, seed=1, end=END)
    assert first.write.new == 100 and store.synthetic_info("BTC-USD")["seed"] == 1
    assert write_sample(store, "BTC-USD", 100, seed=1, end=END).write.existing == 100
    second = write_sample(store, "BTC-USD", 50, seed=2, end=END)
    assert second.replaced["seed"] == 1 and len(store.read("BTC-USD")) == 50
    pd.testing.assert_frame_equal(
        store.read("BTC-USD"), synthetic_candles("BTC-USD", 50, seed=2, end=END)
    )
    store.write(synthetic_candles("ETH-USD", 10, seed=1, end=END))  # real-looking, unlabelled
    with pytest.raises(SyntheticConflictError, match="real candles"):
        write_sample(store, "ETH-USD", 10, seed=1, end=END)
