"""The hourly job reads back what it published through the one online reader."""

from __future__ import annotations

import logging

import pytest

from candlecast.times import HOUR
from ingestion.feature_jobs import compute_job, update_job
from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore

pytestmark = pytest.mark.integration


def test_update_reports_the_row_the_online_store_now_serves(home, fake_coinbase):
    market = synthetic_candles("BTC-USD", 60, seed=5)
    CandleStore(home / "candles").write(market.iloc[:50])
    fake_coinbase.set_candles("BTC-USD", market)
    [result] = update_job(["BTC-USD"])
    assert result.new_candles == 10
    assert result.latest_close is not None
    assert result.online_as_of == result.latest_close


def test_update_warns_when_the_online_store_lags_the_features(home, fake_coinbase, caplog):
    """Rows computed offline but never pushed (``features`` without ``--materialize``)."""
    market = synthetic_candles("BTC-USD", 60, seed=5)
    candles = CandleStore(home / "candles")
    candles.write(market.iloc[:50])
    fake_coinbase.set_candles("BTC-USD", market)
    update_job(["BTC-USD"], now=market["time"].iloc[50])  # online up to candle 49
    candles.write(market.iloc[50:])
    compute_job(["BTC-USD"])  # offline only
    with caplog.at_level(logging.WARNING, logger="ingestion.feature_jobs"):
        [result] = update_job(["BTC-USD"])
    assert result.new_candles == 0
    assert result.online_as_of == market["time"].iloc[49] + HOUR
    assert result.latest_close == market["time"].iloc[-1] + HOUR
    assert "candlecast features --materialize" in caplog.text
