"""The real 2024 H1 BTC-USD file: load-csv, and the same candles through the client."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from candlecast.settings import get_settings
from ingestion.cli import app
from ingestion.coinbase import fetch_candles
from ingestion.store import CandleStore

pytestmark = [pytest.mark.integration, pytest.mark.data]


def test_load_csv_of_the_real_file_is_complete_and_idempotent(home, btc_csv):
    runner = CliRunner(env={"COLUMNS": "200"})
    first = runner.invoke(app, ["load-csv", str(btc_csv), "--symbol", "BTC-USD"])
    assert first.exit_code == 0, first.output
    assert "4369 candles read" in first.output and "4369 new" in first.output
    assert "no gaps" in first.output
    candles = CandleStore(get_settings().candles_dir).read("BTC-USD")
    assert len(candles) == 4369 and candles["time"].is_unique
    assert candles["time"].iloc[0] == pd.Timestamp("2023-12-31 23:00", tz="UTC")
    assert candles["time"].iloc[-1] == pd.Timestamp("2024-06-30 23:00", tz="UTC")
    naive_mae = candles["close"].diff().abs().mean()
    assert naive_mae == pytest.approx(218.47, abs=0.01)
    again = runner.invoke(app, ["load-csv", str(btc_csv), "--symbol", "BTC-USD"])
    assert "0 new, 4369 already stored" in again.output


def test_client_returns_the_real_candles_the_exchange_serves(home, btc_csv, fake_coinbase):
    raw = pd.read_csv(btc_csv)
    real = raw.assign(symbol="BTC-USD", time=pd.to_datetime(raw["time"], unit="s", utc=True))
    fake_coinbase.set_candles("BTC-USD", real)
    result = fetch_candles(
        "BTC-USD", pd.Timestamp("2023-12-31 23:00", tz="UTC"), pd.Timestamp("2024-07-01", tz="UTC")
    )
    assert result.requests == 15 and result.gaps == []
    pd.testing.assert_frame_equal(result.candles, fake_coinbase.candles("BTC-USD"))
