"""A 49-hour replay of the living system against the fake exchange, checked hour by hour.

``candlecast live --replay`` runs as its own process on a new home: it fetches
30 days of history, trains first champions (lasso, cnn), then replays each hour
(fetch, publish, forecast, score) with a retrain every 24 h (two, after the first
champions). The log it leaves must hold every hour once per model, scored against the
exchange's closes, made by the champion of the moment and never by a model trained past
the hour.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from candlecast.prediction_log import PredictionLog
from candlecast.retrain_history import RetrainHistory
from candlecast.times import HOUR
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.live import close_of, live_env, replay
from tests.fakes.training_data import gapped_market_candles

pytestmark = pytest.mark.integration
START = pd.Timestamp("2024-06-22T00:00", tz="UTC")  # no exchange gap within 48 h before or after
END = pd.Timestamp("2024-06-24T00:00", tz="UTC")  # 49 hours: make test time
HOURS = pd.date_range(START, END, freq="h", tz="UTC")
MODELS = {"lasso", "cnn", "naive"}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """(home, exchange candles, the replay's process result)."""
    home = tmp_path_factory.mktemp("live-replay") / "home"
    candles = gapped_market_candles()
    with FakeCoinbase() as fake:
        fake.set_candles("BTC-USD", candles)
        env = live_env(home, fake)
        result = replay(env, START, END, "--retrain-every", "24h")
    assert result.returncode == 0, result.stderr[-4000:]
    return home, candles, env, result


@pytest.fixture(scope="module")
def logged(replayed) -> pd.DataFrame:
    return PredictionLog(replayed[0] / "predictions").read()


def test_every_hour_is_forecast_once_by_every_served_model(logged):
    assert set(logged["model"]) == MODELS
    counts = logged.groupby(["as_of", "model"]).size()
    assert (counts == 1).all()
    for model in MODELS:
        hours = pd.DatetimeIndex(logged.loc[logged["model"] == model, "as_of"])
        assert hours.equals(HOURS.astype(hours.dtype)), f"{model} misses or adds hours"
    assert (logged["target_time"] == logged["as_of"] + HOUR).all()
    # One default per hour, and issued at the simulated hour's close plus the publish delay.
    assert (logged.groupby("as_of")["is_default"].sum() == 1).all()
    delay = logged["issued_at"] - logged["as_of"]
    assert ((delay >= pd.Timedelta(0)) & (delay < pd.Timedelta(minutes=1))).all()


def test_every_closed_hour_is_scored_against_the_exchange_close(replayed, logged):
    closes = close_of(replayed[1])
    done = logged[logged["target_time"] <= END]
    assert done["actual_close"].notna().all()
    np.testing.assert_allclose(
        done["actual_close"].to_numpy(), closes.loc[done["target_time"]].to_numpy()
    )
    last = logged[logged["target_time"] > END]
    assert last["actual_close"].isna().all() and len(last) == len(MODELS)  # not closed yet
    assert np.allclose(done["abs_error"], (done["predicted_price"] - done["actual_close"]).abs())
    naive = logged[logged["model"] == "naive"]
    assert np.allclose(naive["predicted_price"], closes.loc[naive["as_of"]].to_numpy())


def test_no_forecast_comes_from_a_model_trained_past_its_hour(logged):
    models = logged[logged["model"] != "naive"]
    assert models["model_trained_until"].notna().all()
    assert (models["model_trained_until"] <= models["as_of"]).all()


def test_retrains_on_schedule_and_forecasts_use_the_champion_of_the_hour(replayed, logged):
    history = RetrainHistory(replayed[0] / "retrains").read()
    assert history["ok"].all(), history[["family", "decision"]]
    for family in ("lasso", "cnn"):
        mine = history[history["family"] == family]
        assert list(mine["trigger"]) == ["initial", "schedule", "schedule"]
        assert list(mine["at"].dt.floor("h")) == [START + pd.Timedelta(days=d) for d in range(3)]
        assert (mine["cut"] == mine["at"].dt.floor("h")).all()
        # The champion of an hour: the last version promoted at or before that hour.
        promoted = mine[mine["stage"] == "champion"]
        rows = logged[logged["model"] == family]
        for as_of, version in zip(rows["as_of"], rows["model_version"], strict=True):
            expected = promoted.loc[promoted["at"].dt.floor("h") < as_of, "tag"]
            expected = promoted["tag"].iloc[0] if as_of == START else expected.iloc[-1]
            assert version == expected, (as_of, version, expected)


def test_models_history_lists_every_retrain(replayed):
    _, _, env, _ = replayed
    cmd = [sys.executable, "-m", "candlecast", "models", "--history", "--json"]
    shown = json.loads(subprocess.run(cmd, env=env, capture_output=True, check=True).stdout)
    assert len(shown) == 6
    assert {"at", "cut", "trigger", "reason", "tag", "stage", "decision", "mae"} <= set(shown[0])
    assert all(r["reason"] for r in shown) and all(r["decision"] for r in shown)


def test_performance_mae_equals_a_recomputation_from_log_and_candles(replayed, logged):
    _, candles, env, _ = replayed
    cmd = [sys.executable, "-m", "candlecast", "performance", "--window", "all", "--json"]
    rows = json.loads(subprocess.run(cmd, env=env, capture_output=True, check=True).stdout)
    closes = close_of(candles)
    assert {r["model"] for r in rows} == MODELS
    for row in rows:
        mine = logged[(logged["model"] == row["model"])]
        mine = mine[(mine["model_version"] == row["model_version"]) & (mine["target_time"] <= END)]
        actual = closes.loc[mine["target_time"]].to_numpy()
        assert row["n"] == len(mine)
        assert row["mae"] == pytest.approx(np.abs(mine["predicted_price"] - actual).mean())
        persistence = np.abs(mine["current_price"].to_numpy() - actual).mean()
        assert row["persistence_mae"] == pytest.approx(persistence)
