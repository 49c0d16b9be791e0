"""``make demo``: the steps are the documented CLI commands for BTC-USD and ETH-USD, one
service serves both, and each symbol's forecast table is honest."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from bentos.client import Prediction
from deploy import demo
from deploy.demo import DEMO_SYMBOLS, pipeline, prediction_table

BOTH = ["BTC-USD", "ETH-USD"]


def test_demo_runs_the_documented_commands_in_order_for_both_symbols() -> None:
    assert list(DEMO_SYMBOLS) == BOTH
    steps = [args[2:] for _, args in pipeline("sample", BOTH)]
    assert [a[0] for a in steps] == ["sample", "sample", "status", "features", "train", "train"]
    # each symbol its own synthetic market: its own seed (and price level, in the sampler)
    assert steps[0] == ["sample", "--symbol", "BTC-USD", "--hours", "2400", "--seed", "0"]
    assert steps[1] == ["sample", "--symbol", "ETH-USD", "--hours", "2400", "--seed", "1"]
    assert steps[3] == ["features", "--symbol", "BTC-USD", "--symbol", "ETH-USD", "--materialize"]
    assert steps[4] == ["train", "--symbol", "BTC-USD", "--models", "lasso,cnn"]
    assert steps[5] == ["train", "--symbol", "ETH-USD", "--models", "lasso,cnn"]


def test_coinbase_backfills_both_symbols_in_one_command() -> None:
    steps = [args[2:] for _, args in pipeline("coinbase", BOTH)]
    assert [a[0] for a in steps] == ["backfill", "status", "features", "train", "train"]
    backfill = steps[0]
    assert backfill[:5] == ["backfill", "--symbol", "BTC-USD", "--symbol", "ETH-USD"]
    assert backfill[5] == "--start"


def test_demo_rejects_an_unknown_source() -> None:
    with pytest.raises(typer.BadParameter, match="choose sample or coinbase"):
        pipeline("binance", BOTH)


def test_cli_defaults_to_both_symbols_and_takes_repeated_ones(monkeypatch) -> None:
    from deploy.cli import app

    calls = []
    monkeypatch.setattr(demo, "run", lambda *args: calls.append(args))
    runner = CliRunner()
    assert runner.invoke(app, ["demo"]).exit_code == 0
    assert runner.invoke(app, ["demo", "-s", "eth-usd", "--symbol", "SOL-USD"]).exit_code == 0
    assert calls == [("sample", None, False, 3000), ("sample", ["ETH-USD", "SOL-USD"], False, 3000)]
    assert runner.invoke(app, ["demo", "--symbol", "BTCUSD"]).exit_code == 2


class FakeClient:
    """Answers like the service: every symbol, naive the default."""

    base_url = "http://127.0.0.1:3999"

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def predict(self, symbol: str, model: str | None = None) -> Prediction:
        self.asked.append((symbol, model))
        price = {"BTC-USD": 41_000.0, "ETH-USD": 2_500.0}[symbol]
        return _prediction(model or "naive", 1.0, symbol, price)


def test_one_service_serves_both_and_prints_a_table_per_symbol(monkeypatch) -> None:
    import deploy.serve

    client, envs = FakeClient(), []

    @contextmanager
    def fake_serve(port: int, env: dict[str, str]):
        envs.append(env)
        yield client

    console = Console(width=200, record=True)
    monkeypatch.setattr(deploy.serve, "serve_in_background", fake_serve)
    monkeypatch.setattr(demo, "console", console)
    demo.serve_and_predict(BOTH)
    assert envs == [{"CANDLECAST_SERVE_SYMBOLS": "BTC-USD,ETH-USD"}]  # one service, both
    assert {s for s, _ in client.asked} == set(BOTH)
    assert [m for s, m in client.asked if s == "ETH-USD"] == [None, "naive", "lasso", "cnn"]
    text = console.export_text()
    assert "BTC-USD next-hour forecasts" in text and "ETH-USD next-hour forecasts" in text
    assert text.index("BTC-USD next-hour") < text.index("ETH-USD next-hour")
    assert "2,500.00" in text and "41,000.00" in text
    assert text.strip().splitlines()[-1].startswith("Dashboard: http://127.0.0.1:3000/")


def _prediction(model: str, ratio: float, symbol: str = "BTC-USD", price: float = 100.0):
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    return Prediction(
        symbol=symbol,
        model=model,
        model_version=f"{model}:v1",
        mae_ratio_vs_persistence=ratio,
        feature_service="price_model_v2",
        as_of=now,
        target_time=now,
        current_price=price,
        predicted_price=price + 1.0,
        predicted_change=1.0,
        predicted_change_pct=1.0,
        past_24_hour_prices=[],
        features_age_seconds=0.0,
        stale=False,
        request_timestamp=now,
    )


def test_forecast_table_shows_every_ratio_and_marks_the_default() -> None:
    console = Console(width=200, record=True)
    console.print(
        prediction_table([_prediction("naive", 1.0), _prediction("lasso", 1.0017)], "naive")
    )
    text = console.export_text()
    assert "naive (default)" in text and "1.0017" in text and "lasso (default)" not in text
