"""The dashboard's JSON (``bentos.dashboard``) on a real home: candle store, prediction
log, retrain history and heartbeat files, with fake features and models."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pandas as pd
import pytest

from bentos.dashboard import MAX_HOURS, Dashboard, check_hours
from bentos.errors import BadRequest, ServiceUnavailable, UnknownSymbol
from candlecast.prediction_log import PredictionLog
from candlecast.retrain_history import RetrainRecord, history
from candlecast.times import HOUR
from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore
from tests.fakes.predictions import forecast_rows
from tests.fakes.serving import LAST_CLOSE, FakeFeatures
from tests.unit.test_service_predictor import make

NOW = pd.Timestamp(LAST_CLOSE) + pd.Timedelta(minutes=30)


def board(features=None, stale_after: float = 7200) -> Dashboard:
    predictor = make(features=features)
    predictor.stale_after_seconds = stale_after
    return Dashboard(predictor, clock=lambda: NOW.to_pydatetime())


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def candles(settings):
    frame = synthetic_candles("BTC-USD", 400, seed=3, end=pd.Timestamp(LAST_CLOSE))
    CandleStore(settings.candles_dir).write(frame)
    return frame


@pytest.mark.parametrize("hours", [0, -1, MAX_HOURS + 1, "x", None, 2.5])
def test_hours_out_of_range_is_a_bad_request_naming_the_range(hours):
    if hours == 2.5:
        assert check_hours(hours) == 2
        return
    with pytest.raises(BadRequest, match=f"1 to {MAX_HOURS}"):
        check_hours(hours)


def test_candles_are_the_last_hours_up_to_the_newest_stored(candles):
    body = run(board().candles("btc-usd", 24))
    assert body["symbol"] == "BTC-USD" and body["hours"] == 24
    times = [pd.Timestamp(c["time"]) for c in body["candles"]]
    assert len(times) == 24 and times == sorted(times)
    assert times[-1] == candles["time"].max()
    last = candles.iloc[-1]
    assert body["candles"][-1]["close"] == last["close"]
    assert body["candles"][-1]["volume"] == last["volume"]


def test_candles_of_a_symbol_with_none_stored_is_empty(settings):
    assert run(board().candles("BTC-USD", 24))["candles"] == []


def test_unknown_symbol_is_404_for_every_endpoint(settings):
    for call in (board().candles, board().forecasts, board().status):
        with pytest.raises(UnknownSymbol):
            run(call("DOGE-USD"))


def test_forecasts_are_the_logged_rows_of_the_last_hours_with_outcomes(candles, settings):
    log = PredictionLog(settings.predictions_dir)
    log.append(forecast_rows(candles.tail(48)))
    log.score(CandleStore(settings.candles_dir))
    body = run(board().forecasts("BTC-USD", 12))
    rows = body["forecasts"]
    assert {r["model"] for r in rows} == {"lasso", "naive"} and len(rows) == 24
    targets = [pd.Timestamp(r["target_time"]) for r in rows]
    assert targets == sorted(targets) and max(targets) - min(targets) == 11 * HOUR
    closed = [r for r in rows if r["actual_close"] is not None]
    assert closed and all(isinstance(r["is_default"], bool) for r in rows)
    assert rows[-1]["actual_close"] is None  # the newest target has not closed


def test_corrupt_log_is_503_naming_the_file(candles, settings):
    log = PredictionLog(settings.predictions_dir)
    log.append(forecast_rows(candles.tail(4)))
    path = log.files("BTC-USD")[0]
    path.write_bytes(b"not parquet")
    with pytest.raises(ServiceUnavailable, match=str(path.name)):
        run(board().forecasts("BTC-USD"))


def test_status_fresh_with_champions_and_no_loop(settings):
    status = run(board(FakeFeatures(last_close=LAST_CLOSE)).status("BTC-USD"))
    fresh = status["freshness"]
    assert fresh["as_of"] == LAST_CLOSE.isoformat() and fresh["age_seconds"] == 1800
    assert fresh["stale"] is False and fresh["message"] is None
    assert {c["model"] for c in status["champions"]} == {"lasso", "cnn"}
    assert [c["model"] for c in status["champions"] if c["default"]] == ["lasso"]
    assert status["live_loop"] is None and status["retrain"]["last"] is None
    assert "candlecast live" in status["retrain"]["message"]


def test_status_stale_says_how_old_and_the_threshold(settings):
    old = LAST_CLOSE - timedelta(hours=5)
    status = run(board(FakeFeatures(last_close=old)).status("BTC-USD"))
    assert status["freshness"]["stale"] is True
    assert "5.5 h old (threshold 2.0 h)" in status["freshness"]["message"]


def test_status_without_online_features_says_so(settings):
    status = run(board(FakeFeatures(symbols=())).status("BTC-USD"))
    assert status["freshness"]["as_of"] is None and status["freshness"]["stale"] is False
    assert "No online features for BTC-USD" in status["freshness"]["message"]


def test_next_retrain_is_the_last_retrain_plus_the_loops_interval(settings):
    at = pd.Timestamp(LAST_CLOSE) - pd.Timedelta(hours=3)
    history().append(
        [
            RetrainRecord(at, "BTC-USD", f, "schedule", "every 24 h", None, "kept", 1.0, True)
            for f in ("lasso", "cnn")
        ]
    )
    beat = settings.home / "live" / "heartbeat.json"
    beat.parent.mkdir(parents=True)
    body = {"at": NOW.isoformat(), "state": "waiting", "retrain_every_hours": 24.0}
    beat.write_text(json.dumps(body))
    status = run(board().status("BTC-USD"))
    assert status["retrain"]["next_due"] == (at + pd.Timedelta(hours=24)).isoformat()
    assert status["retrain"]["last"]["trigger"] == "schedule" and status["retrain"]["last"]["ok"]
    assert status["live_loop"]["state"] == "waiting" and status["live_loop"]["age_seconds"] == 0
