"""The candle store: schema, dedup, atomic writes, DuckDB reads, synthetic label."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from candlecast.symbols import InvalidSymbolError, normalize_symbol
from ingestion import store as store_module
from ingestion.store import CANDLE_SCHEMA, CandleStore


def frame(symbol: str, start: str, n: int, price: float = 100.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": symbol,
            "time": pd.date_range(start, periods=n, freq="h", tz="UTC"),
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price,
            "volume": 2.0,
        }
    )


@pytest.fixture
def store(tmp_path) -> CandleStore:
    return CandleStore(tmp_path / "candles")


def test_symbols_are_normalized_and_checked():
    assert normalize_symbol(" btc-usd ") == "BTC-USD"
    for bad in ["BTC", "BTC/USD", "", "B-USD", "../etc-x"]:
        with pytest.raises(InvalidSymbolError):
            normalize_symbol(bad)


def test_write_partitions_by_symbol_and_month_with_the_schema(store):
    result = store.write(frame("BTC-USD", "2024-01-31 20:00", 10))
    assert (result.offered, result.new, result.existing) == (10, 10, 0)
    names = [p.relative_to(store.root).as_posix() for p in store.files()]
    assert names == ["symbol=BTC-USD/2024-01.parquet", "symbol=BTC-USD/2024-02.parquet"]
    assert pq.read_schema(store.files()[0]).remove_metadata() == CANDLE_SCHEMA


def test_rewrite_is_a_no_op_and_stored_candles_win(store):
    store.write(frame("BTC-USD", "2024-01-01", 48))
    before = {p: p.stat().st_mtime_ns for p in store.files()}
    again = store.write(frame("BTC-USD", "2024-01-01", 48, price=999.0))
    assert (again.new, again.existing) == (0, 48)
    assert {p: p.stat().st_mtime_ns for p in store.files()} == before  # untouched
    assert (store.read("BTC-USD")["close"] == 100.0).all()


def test_overlapping_writes_merge_without_duplicates(store):
    store.write(frame("BTC-USD", "2024-01-01 00:00", 30))
    result = store.write(frame("BTC-USD", "2024-01-01 20:00", 30))
    assert (result.new, result.existing) == (20, 10)
    stored = store.read("BTC-USD")
    assert len(stored) == 50 and stored["time"].is_unique and stored["time"].is_monotonic_increasing


def test_read_filters_sorts_and_types(store):
    store.write(frame("ETH-USD", "2024-03-01", 5))
    store.write(frame("BTC-USD", "2024-03-01", 5))
    both = store.read()
    assert both["symbol"].tolist() == ["BTC-USD"] * 5 + ["ETH-USD"] * 5
    assert str(both["time"].dtype) == "datetime64[us, UTC]"
    window = store.read("ETH-USD", start="2024-03-01 01:00", end=pd.Timestamp("2024-03-01 03:00"))
    assert window["time"].dt.hour.tolist() == [1, 2]
    assert store.symbols() == ["BTC-USD", "ETH-USD"]
    assert store.read("SOL-USD").empty and list(store.read("SOL-USD").columns) == list(both.columns)


def test_failed_write_leaves_previous_file_and_no_temp_files(store, monkeypatch):
    store.write(frame("BTC-USD", "2024-01-01", 5))
    path = store.files()[0]
    original = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write(frame("BTC-USD", "2024-01-01 05:00", 5))
    assert path.read_bytes() == original
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert len(store.read("BTC-USD")) == 5


def test_synthetic_label_round_trips_and_is_not_a_symbol(store):
    assert store.synthetic_info("BTC-USD") is None
    store.mark_synthetic("BTC-USD", {"seed": 3})
    assert store.synthetic_info("BTC-USD") == {"synthetic": True, "seed": 3}
    assert store.symbols() == []  # a label alone holds no candles
    assert not any(name.endswith(".tmp") for name in os.listdir(store.symbol_dir("BTC-USD")))


def test_orphan_temp_files_of_a_killed_writer_are_removed_on_next_write(store):
    store.write(frame("BTC-USD", "2024-01-01", 5))
    orphan = store.symbol_dir("BTC-USD") / ".2024-01.parquet.x1y2.tmp"
    orphan.write_bytes(b"half a parquet")
    store.write(frame("BTC-USD", "2024-01-01 05:00", 5))
    assert not orphan.exists() and len(store.read("BTC-USD")) == 10
