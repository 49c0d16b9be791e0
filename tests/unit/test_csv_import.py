"""load-csv parsing: all rows validated first, bad rows named by file and line."""

from __future__ import annotations

import pandas as pd
import pytest

from ingestion.csv_import import CsvImportError, load_csv, read_candle_csv
from ingestion.sample import SyntheticConflictError
from ingestion.store import CandleStore

HEADER = "time,low,high,open,close,volume\n"
GOOD = [
    "1704067200,42000,42500,42100,42400,10.5",
    "1704070800,42300,42600,42400,42550,8.25",
    "1704078000,42400,42700,42550,42600,7",
]


def write(tmp_path, rows, header=HEADER):
    path = tmp_path / "candles.csv"
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def test_good_file_becomes_sorted_store_rows_and_reports_gaps(tmp_path):
    store = CandleStore(tmp_path / "candles")
    result = load_csv(store, write(tmp_path, list(reversed(GOOD))), "btc-usd")
    stored = store.read("BTC-USD")
    assert result.rows == 3 and result.write.new == 3
    assert stored["time"].tolist() == list(
        pd.to_datetime([1704067200, 1704070800, 1704078000], unit="s", utc=True)
    )
    assert stored["close"].tolist() == [42400.0, 42550.0, 42600.0]
    assert [(str(g.first), g.hours) for g in result.gaps] == [("2024-01-01 02:00:00+00:00", 1)]
    assert load_csv(store, write(tmp_path, GOOD), "BTC-USD").write.existing == 3


def test_column_order_follows_the_header(tmp_path):
    path = write(
        tmp_path,
        ["42100,42400,42000,42500,10.5,1704067200"],
        header="open,close,low,high,volume,time\n",
    )
    row = read_candle_csv(path, "BTC-USD").iloc[0]
    assert (row["open"], row["close"], row["low"], row["high"]) == (42100, 42400, 42000, 42500)


def test_every_bad_row_is_reported_with_line_and_nothing_is_stored(tmp_path):
    rows = [
        GOOD[0],
        "1704070800,42300,42600,42400",  # line 3: short
        "1704074400,abc,42600,42400,42550,8",  # line 4: not a number
        "1704078000,42800,42700,42550,42600,7",  # line 5: low > high
        "1704067200,42000,42500,42100,42400,10.5",  # line 6: duplicate of line 2
        "1704081600.5,42400,42700,42550,42600,7",  # line 7: fractional time
    ]
    store = CandleStore(tmp_path / "candles")
    path = write(tmp_path, rows)
    with pytest.raises(CsvImportError) as info:
        load_csv(store, path, "BTC-USD")
    message = str(info.value)
    assert "5 bad rows, nothing stored" in message
    for line, reason in [
        (3, "expected 6 fields, got 4"),
        (4, "low is not a number: 'abc'"),
        (5, "low above open/close (2024-01-01T03:00:00Z)"),
        (6, "duplicate time, first on line 2"),
        (7, "time is not whole Unix seconds"),
    ]:
        assert f"{path}:{line}: {reason}" in message
    assert store.files() == []


def test_bad_header_missing_file_and_future_candles(tmp_path):
    with pytest.raises(CsvImportError, match="line 1: expected header"):
        read_candle_csv(write(tmp_path, GOOD, header="t,l,h,o,c,v\n"), "BTC-USD")
    with pytest.raises(CsvImportError, match="no such file"):
        read_candle_csv(tmp_path / "nope.csv", "BTC-USD")
    now = pd.Timestamp("2024-01-01 01:30", tz="UTC")
    with pytest.raises(CsvImportError, match="not closed yet"):
        read_candle_csv(write(tmp_path, GOOD), "BTC-USD", now=now)


def test_refuses_to_mix_real_rows_into_a_synthetic_symbol(tmp_path):
    store = CandleStore(tmp_path / "candles")
    store.mark_synthetic("BTC-USD", {"seed": 1})
    with pytest.raises(SyntheticConflictError, match="synthetic"):
        load_csv(store, write(tmp_path, GOOD), "BTC-USD")
