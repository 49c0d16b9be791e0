"""The live loop beside a real ``bentoml serve``: the same answers, and a champion swapped live.

* ``live --once`` logs what ``GET /predict`` (at=now) answers for that hour.
* A champion that does far worse than persistence is injected into a running
  system: the loop's early retrain replaces it, and the running server serves the
  new champion without a restart while a client sends requests throughout, with
  zero failed requests.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import requests

from candlecast.prediction_log import PredictionLog
from candlecast.retrain_history import RetrainHistory
from candlecast.times import utc_now
from deploy.serve import free_port, serve_in_background
from ingestion.sample import synthetic_candles
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.live import live_command, live_env, replay
from tests.fakes.training_data import gapped_market_candles

pytestmark = pytest.mark.integration


def test_live_once_logs_what_the_api_answers_at_now(tmp_path):
    home = tmp_path / "home"
    now = utc_now().floor("h")
    with FakeCoinbase() as fake:
        fake.set_candles("BTC-USD", synthetic_candles("BTC-USD", 24 * 40, seed=5, end=now))
        env = live_env(home, fake, families="lasso")
        start = (now - pd.Timedelta(days=35)).isoformat()
        backfill = [sys.executable, "-m", "candlecast", "backfill", "-s", "BTC-USD"]
        subprocess.run([*backfill, "--start", start], env=env, check=True, capture_output=True)
        once = subprocess.run(
            live_command("--once", "--max-wait", "0"), env=env, capture_output=True, text=True
        )
        assert once.returncode == 0, once.stderr[-3000:]
    logged = PredictionLog(home / "predictions").read()
    assert set(logged["model"]) == {"lasso", "naive"}
    assert logged["as_of"].nunique() == 1
    with serve_in_background(free_port(), env=env) as client:
        for row in logged.itertuples():
            answer = client.predict("BTC-USD", model=row.model)
            assert pd.Timestamp(answer.as_of) == row.as_of
            assert answer.model_version == row.model_version
            assert answer.predicted_price == pytest.approx(row.predicted_price, rel=1e-9)
            assert answer.current_price == row.current_price
        default = client.predict("BTC-USD")
    assert logged.loc[logged["is_default"], "model"].tolist() == [default.model]


INJECT = """
from sklearn.dummy import DummyRegressor
import numpy as np
from candlecast import model_store
from candlecast.contract import CHAMPION
from training.models import Fitted
from training.registry import Decision, register

good = model_store.champion("lasso", "BTC-USD")
# +2 % every hour: its walk-forward record (copied) says fine, its live errors say otherwise.
bad = DummyRegressor(strategy="constant", constant=0.02).fit(np.zeros((2, 1)), [0.0, 0.0])
fitted = Fitted("lasso", bad, good.spec.scaling)
print(register(fitted, good.spec, Decision(CHAMPION, "injected by the test")))
"""


class Hammer(threading.Thread):
    """GET /predict?model=lasso as fast as one client can, recording every answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = f"{url}/predict", threading.Event()
        self.versions: list[str] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    answer = session.get(self.url, params={"model": "lasso"}, timeout=30)
                except requests.RequestException as exc:
                    self.failures.append(repr(exc))
                    continue
                if answer.status_code != 200:
                    self.failures.append(f"{answer.status_code} {answer.text[:200]}")
                else:
                    self.versions.append(answer.json()["model_version"])
                time.sleep(0.02)


@pytest.mark.slow  # ~1 min: `make test-slow` (hot reload under load: test_hot_reload)
def test_a_champion_losing_live_is_retrained_early_and_swapped_under_load(tmp_path):
    home = tmp_path / "home"
    start = pd.Timestamp("2024-06-22T00:00Z")
    with FakeCoinbase() as fake:
        fake.set_candles("BTC-USD", gapped_market_candles())
        env = live_env(home, fake, families="lasso")
        early = ("--early-window", "6h", "--retrain-every", "0")
        first = replay(env, start, start + pd.Timedelta(hours=5), *early)
        assert first.returncode == 0, first.stderr[-3000:]
        cmd = [sys.executable, "-c", INJECT]
        bad = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        bad_tag = bad.stdout.strip().splitlines()[-1]
        with serve_in_background(free_port(), env=env) as client:
            hammer = Hammer(client.base_url)
            hammer.start()
            second = replay(env, start, start + pd.Timedelta(hours=14), *early)
            deadline = time.monotonic() + 60
            history = RetrainHistory(home / "retrains").read()
            new_tag = history["tag"].iloc[-1]
            while new_tag not in hammer.versions[-5:] and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
            hammer.stop.set()
            hammer.join(timeout=40)
    assert second.returncode == 0, second.stderr[-3000:]
    last = history.iloc[-1]
    assert last["trigger"] == "early" and last["stage"] == "champion", history.to_dict("records")
    assert bad_tag in last["reason"] and "live MAE ratio" in last["reason"]
    assert "loses to persistence" in last["decision"]
    assert hammer.failures == []
    assert len(hammer.versions) > 50
    assert hammer.versions[0] == bad_tag
    switched = hammer.versions.index(new_tag)
    assert set(hammer.versions[switched:]) == {new_tag}, "the old champion came back"
    logged = PredictionLog(home / "predictions").read()
    lasso = logged[logged["model"] == "lasso"].set_index("as_of")["model_version"]
    assert (lasso[lasso.index > last["at"]] == new_tag).all()
    assert (lasso[(lasso.index > start + pd.Timedelta(hours=5)) & (lasso.index <= last["at"])]
            == bad_tag).all()  # fmt: skip
