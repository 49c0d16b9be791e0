"""The service's offline reads answer for the requested hour, never a neighbouring one."""

from __future__ import annotations

import pandas as pd
import pytest

from candlecast import feast_store
from ingestion.feature_jobs import compute_job
from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore

pytestmark = pytest.mark.integration
END = pd.Timestamp("2024-03-01", tz="UTC")
H = pd.Timedelta(hours=1)


def test_a_past_hour_without_a_candle_has_no_features(home):
    from bentos.features import FeatureSource

    candles = synthetic_candles("BTC-USD", 100, seed=4, end=END)
    missing_open = candles["time"].iloc[80]
    CandleStore(home / "candles").write(candles[candles["time"] != missing_open])
    compute_job(["BTC-USD"])
    source = FeatureSource(feast_store.apply())

    # Feast's point-in-time join alone would return the previous hour's row (TTL 75 min).
    assert (
        source.historical("BTC-USD", (missing_open + H).to_pydatetime(), "price_model_v2") is None
    )
    present = (missing_open + 2 * H).to_pydatetime()
    row = source.historical("BTC-USD", present, "price_model_v1")
    assert row is not None and row.as_of == present
    assert row.values["close"] == pytest.approx(
        candles.set_index("time").loc[missing_open + H, "close"]
    )


def test_online_reads_are_reused_until_the_store_is_written_then_read_again(home):
    """One read serves every request of the hour; a pushed row is served on the next one."""
    from bentos.features import FeatureSource
    from ingestion.feature_dataset import FeatureDataset, extend_features

    candles = synthetic_candles("BTC-USD", 100, seed=4, end=END)
    store_candles = CandleStore(home / "candles")
    store_candles.write(candles.iloc[:90])
    compute_job(["BTC-USD"])
    store = feast_store.apply()
    feast_store.materialize(END - 20 * H, END, store)
    source = FeatureSource(store)
    before = source.live("BTC-USD", "price_model_v2")
    assert before[0].as_of == candles["time"].iloc[89] + H
    assert source.live("BTC-USD", "price_model_v2") is before  # no write: no second read
    assert source.live("BTC-USD", "price_model_v1") is not before  # another service's read

    store_candles.write(candles.iloc[90:])
    feast_store.push_online(
        extend_features(store_candles, FeatureDataset(home / "features"), "BTC-USD").rows, store
    )
    after = source.live("BTC-USD", "price_model_v2")  # the very next request
    assert after[0].as_of == END and after[1].as_of == END
    assert source.live("BTC-USD", "price_model_v2") is after

    # another writer with its own connection rewrites the same hour (a recomputed row)
    row = FeatureDataset(home / "features").read().tail(1).assign(log_return_1h=0.5)
    feast_store.push_online(row, feast_store.get_store())
    rewritten = source.live("BTC-USD", "price_model_v2")
    assert rewritten[1].as_of == END and rewritten[1].values["log_return_1h"] == 0.5
