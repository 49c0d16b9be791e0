"""``make demo``: the steps are the documented CLI commands, and the forecast table is honest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer
from rich.console import Console

from bentos.client import Prediction
from deploy.demo import pipeline, prediction_table


def test_demo_runs_the_documented_commands_in_order() -> None:
    steps = [args for _, args in pipeline("sample", "BTC-USD")]
    assert [a[:3] for a in steps] == [
        ["-m", "candlecast", "sample"],
        ["-m", "candlecast", "status"],
        ["-m", "candlecast", "features"],
        ["-m", "candlecast", "train"],
    ]
    assert "--materialize" in steps[2]


def test_demo_rejects_an_unknown_source() -> None:
    with pytest.raises(typer.BadParameter, match="choose sample or coinbase"):
        pipeline("binance", "BTC-USD")


def _prediction(model: str, ratio: float) -> Prediction:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    return Prediction(
        symbol="BTC-USD",
        model=model,
        model_version=f"{model}:v1",
        mae_ratio_vs_persistence=ratio,
        feature_service="price_model_v2",
        as_of=now,
        target_time=now,
        current_price=100.0,
        predicted_price=101.0,
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
