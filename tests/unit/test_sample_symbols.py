"""The synthetic market per symbol: ETH-USD starts at its own price level, BTC-USD as before."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from candlecast.candles import SYNTHETIC_MARKER
from ingestion.sample import START_PRICES, default_start_price, synthetic_candles, write_sample
from ingestion.store import CandleStore

END = pd.Timestamp("2024-06-01", tz="UTC")


def test_each_symbol_starts_at_its_own_price_level():
    assert default_start_price("eth-usd") == START_PRICES["ETH-USD"] == 2_500.0
    assert default_start_price("BTC-USD") == default_start_price("SOL-USD") == 40_000.0
    btc = synthetic_candles("BTC-USD", 500, seed=0, end=END)
    eth = synthetic_candles("ETH-USD", 500, seed=1, end=END)
    assert btc["open"].iloc[0] == 40_000.0 and eth["open"].iloc[0] == 2_500.0
    assert eth["close"].min() > 1_000 and eth["close"].max() < 6_000
    # another seed is another path, not the same returns at another scale
    r_btc, r_eth = (np.log(c["close"]).diff().dropna() for c in (btc, eth))
    assert abs(np.corrcoef(r_btc, r_eth)[0, 1]) < 0.2
    same_seed = synthetic_candles("ETH-USD", 500, seed=0, end=END)
    np.testing.assert_allclose(same_seed["close"] / 2_500.0, btc["close"] / 40_000.0, rtol=1e-5)


def test_an_explicit_start_price_wins_and_must_be_positive():
    candles = synthetic_candles("ETH-USD", 10, seed=1, end=END, start_price=3_000.0)
    assert candles["open"].iloc[0] == 3_000.0
    with pytest.raises(ValueError, match="positive"):
        synthetic_candles("ETH-USD", 10, seed=1, end=END, start_price=0.0)


def test_sidecar_records_the_start_price_and_a_new_price_replaces_the_series(tmp_path):
    store = CandleStore(tmp_path / "candles")
    write_sample(store, "ETH-USD", 48, seed=1, end=END)
    assert store.synthetic_info("ETH-USD")["start_price"] == 2_500.0
    again = write_sample(store, "ETH-USD", 48, seed=1, end=END)
    assert again.replaced is None and again.write.existing == 48
    moved = write_sample(store, "ETH-USD", 48, seed=1, end=END, start_price=3_000.0)
    assert moved.replaced["start_price"] == 2_500.0
    assert store.read("ETH-USD")["open"].iloc[0] == 3_000.0


@pytest.mark.parametrize(("symbol", "replaced"), [("BTC-USD", False), ("ETH-USD", True)])
def test_a_sidecar_from_before_start_prices_meant_40000(tmp_path, symbol, replaced):
    """Older sidecars have no start_price: every symbol started at 40,000 then, so BTC-USD's
    series stays and an ETH-USD series at 40,000 is replaced by one at 2,500."""
    store = CandleStore(tmp_path / "candles")
    write_sample(store, symbol, 48, seed=0, end=END, start_price=40_000.0)
    sidecar = store.symbol_dir(symbol) / SYNTHETIC_MARKER
    info = json.loads(sidecar.read_text())
    info.pop("start_price")
    sidecar.write_text(json.dumps(info))
    result = write_sample(store, symbol, 48, seed=0, end=END)
    assert (result.replaced is not None) == replaced
    assert store.read(symbol)["open"].iloc[0] == default_start_price(symbol)
