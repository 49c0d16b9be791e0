"""A backfill writes each month file once (not once per page) and stores what the exchange has.

Real HTTP against the fake exchange, the real candle store on disk.
"""

from __future__ import annotations

import pandas as pd
import pytest

from candlecast.settings import get_settings
from ingestion.backfill import backfill
from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore
from ingestion.validate import CandleValidationError

pytestmark = pytest.mark.integration
END = pd.Timestamp("2024-05-01", tz="UTC")
HOURS = 2400  # 8 pages over 4 months (January 2 .. April)


@pytest.fixture
def exchange(home, fake_coinbase):
    candles = synthetic_candles("BTC-USD", HOURS, seed=4, end=END).drop(index=[7, 1500, 1501])
    fake_coinbase.set_candles("BTC-USD", candles.reset_index(drop=True))
    return fake_coinbase


def months_of(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["time"].dt.strftime("%Y-%m").unique())


def test_each_month_is_written_once_and_the_store_equals_the_exchange(exchange, monkeypatch):
    store = CandleStore(get_settings().candles_dir)
    written: list[pd.DataFrame] = []
    real = CandleStore.write

    def spy(self, candles):
        written.append(candles.copy())
        return real(self, candles)

    monkeypatch.setattr(CandleStore, "write", spy)
    served = exchange.candles("BTC-USD")
    result = backfill(store, "BTC-USD", END - pd.Timedelta(hours=HOURS), END, now=END)
    assert result.requests == 8 and result.new == len(served) and result.existing == 0
    assert [months_of(w) for w in written] == [[m] for m in months_of(served)]
    pd.testing.assert_frame_equal(store.read("BTC-USD"), served)
    files = sorted(p.stem for p in store.files("BTC-USD"))
    assert files == months_of(served)

    again = backfill(store, "BTC-USD", END - pd.Timedelta(hours=HOURS), END, now=END)
    assert (again.new, again.existing) == (0, len(served))
    pd.testing.assert_frame_equal(store.read("BTC-USD"), served)


def test_a_failing_backfill_keeps_every_page_fetched_before_the_failure(exchange):
    """Page 6 holds an invalid candle: pages 1-5 (the month in progress too) stay stored."""
    store = CandleStore(get_settings().candles_dir)
    start = END - pd.Timedelta(hours=HOURS)
    page6 = start + pd.Timedelta(hours=5 * 300)
    served = exchange.candles("BTC-USD")
    bad = served.index[served["time"] == page6 + pd.Timedelta(hours=100)][0]
    served.loc[bad, "low"] = served.loc[bad, "high"] + 1
    exchange.set_candles("BTC-USD", served)
    with pytest.raises(CandleValidationError, match="low above open/close"):
        backfill(store, "BTC-USD", start, END, now=END)
    expected = served[served["time"] < page6].reset_index(drop=True)
    assert page6.day != 1  # the month in progress was held, not yet complete
    pd.testing.assert_frame_equal(store.read("BTC-USD"), expected)
