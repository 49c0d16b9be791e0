"""The ingestion CLI end to end against the fake exchange: summaries, exit codes, reruns."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from candlecast.settings import get_settings
from ingestion.cli import app
from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore

pytestmark = pytest.mark.integration
END = pd.Timestamp("2024-03-01", tz="UTC")
H = pd.Timedelta(hours=1)
START = END - 700 * H  # 2024-01-31T20:00


def run(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


def summary_row(output: str, symbol: str) -> list[str]:
    """Cells of the backfill summary table row for ``symbol``."""
    line = next(line for line in output.splitlines() if line.startswith(f"│ {symbol}"))
    return [cell.strip() for cell in line.strip("│").split("│")]


def store() -> CandleStore:
    return CandleStore(get_settings().candles_dir)


@pytest.fixture
def exchange(home, fake_coinbase):
    """BTC-USD with 3 missing hours and ETH-USD complete, 700 hours each."""
    btc = synthetic_candles("BTC-USD", 700, seed=1, end=END).drop(index=[10, 11, 400])
    fake_coinbase.set_candles("BTC-USD", btc)
    fake_coinbase.set_candles("ETH-USD", synthetic_candles("ETH-USD", 700, seed=2, end=END))
    return fake_coinbase


def backfill(*extra: str):
    return run(
        "backfill",
        "--symbol",
        "BTC-USD",
        "--symbol",
        "eth-usd",
        "--start",
        "2024-01-31T20:00",
        "--end",
        "2024-03-01",
        *extra,
    )


def test_backfill_stores_what_the_exchange_has_and_reports_gaps(exchange):
    result = backfill()
    assert result.exit_code == 0, result.output
    for symbol in ["BTC-USD", "ETH-USD"]:
        pd.testing.assert_frame_equal(store().read(symbol), exchange.candles(symbol))
    assert summary_row(result.output, "BTC-USD")[3:7] == ["697", "697", "0", "2 (3 h)"]
    assert summary_row(result.output, "ETH-USD")[3:7] == ["700", "700", "0", "0 (0 h)"]
    assert "BTC-USD: 2 gaps, 3 missing hours: 2024-02-01T06:00:00Z .. 2024-02-01T07:00:00Z" in (
        result.output
    )
    assert "(reported, not filled)" in result.output


def test_rerun_changes_nothing(exchange):
    assert backfill().exit_code == 0
    files = {p: p.stat().st_mtime_ns for p in store().files()}
    again = backfill()
    assert again.exit_code == 0
    assert summary_row(again.output, "BTC-USD")[3:6] == ["697", "0", "697"]
    assert {p: p.stat().st_mtime_ns for p in store().files()} == files
    assert len(store().read()) == 697 + 700


def test_bad_input_exits_2_with_a_message(exchange):
    cases = [
        (["--symbol", "BTCUSD", "--start", "2024-01-01"], "invalid symbol 'BTCUSD'"),
        (["--symbol", "BTC-USD", "--start", "2024-02-30"], "'2024-02-30' is not a date"),
        (["--symbol", "BTC-USD", "--start", "2024-02-02", "--end", "2024-02-01"], "after"),
        (["--symbol", "BTC-USD", "--start", "2999-01-01"], "future"),
        (["--symbol", "XRP-GBP", "--start", "2024-02-01"], "unknown symbol XRP-GBP"),
    ]
    for args, message in cases:
        result = run("backfill", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert store().files() == []


def test_invalid_exchange_candle_exits_1_naming_symbol_and_time(exchange):
    btc = exchange.candles("BTC-USD")
    btc.loc[500, "low"] = btc.loc[500, "high"] + 1  # in the 2nd page
    exchange.set_candles("BTC-USD", btc)
    result = run(
        "backfill", "--symbol", "BTC-USD", "--start", "2024-01-31T20:00", "--end", "2024-03-01"
    )
    bad_time = btc.loc[500, "time"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result.exit_code == 1
    assert f"invalid candle for BTC-USD at {bad_time}: low above open/close" in " ".join(
        result.output.split()
    )
    stored = store().read("BTC-USD")
    assert stored["time"].max() < START + 300 * H  # page 1 kept, bad page never stored


def test_exhausted_retries_exit_1_naming_symbol_and_window(exchange):
    exchange.inject(503, times=20)
    result = run("backfill", "--symbol", "ETH-USD", "--start", "2024-02-20", "--end", "2024-02-21")
    text = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "giving up on ETH-USD candles 2024-02-20T00:00:00Z .. 2024-02-21T00:00:00Z" in text


def test_sample_is_labelled_and_status_reports_it(home):
    result = run(
        "sample", "--symbol", "SIM-USD", "--hours", "48", "--seed", "5", "--end", "2024-01-03"
    )
    assert result.exit_code == 0 and "SYNTHETIC SIM-USD: 48 generated candles" in result.output
    status = run("status")
    row = next(line for line in status.output.splitlines() if "SIM-USD" in line)
    assert "SYNTHETIC" in row and "2024-01-01 00:00" in row and "2024-01-02 23:00" in row
    assert " 48 " in row


def test_status_counts_and_gaps(exchange):
    assert run("status").output.startswith("no candles stored")
    backfill()
    result = run("status", "--json")
    rows = {row["symbol"]: row for row in __import__("json").loads(result.output)}
    assert rows["BTC-USD"]["count"] == 697 and rows["BTC-USD"]["missing_hours"] == 3
    assert (
        rows["BTC-USD"]["first"] == "2024-01-31T20:00:00+00:00" and not rows["BTC-USD"]["synthetic"]
    )
    assert rows["ETH-USD"]["gaps"] == [] and rows["ETH-USD"]["last"] == "2024-02-29T23:00:00+00:00"
    assert "BTC-USD: 2 gaps, 3 missing hours" in run("status").output


def test_load_csv_bad_rows_exit_2_with_file_and_line(home, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("time,low,high,open,close,volume\n1704067200,1,2,1.5,1.5,1\n1704070800,1,2\n")
    result = run("load-csv", str(path), "--symbol", "BTC-USD")
    assert result.exit_code == 2
    assert f"{path}:3: expected 6 fields, got 3" in result.output
    assert store().files() == []


def test_symbols_done_before_a_failure_are_stored_and_summarised(exchange):
    result = run("backfill", "-s", "ETH-USD", "-s", "XRP-GBP", "--start", "2024-02-28")
    assert result.exit_code == 2 and "unknown symbol XRP-GBP" in result.output
    assert summary_row(result.output, "ETH-USD")[4] == "48"  # new candles, kept
    assert store().symbols() == ["ETH-USD"]
