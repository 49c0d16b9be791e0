"""Hot reload on a real ``bentoml serve``: a promotion is served without a restart or a
failed request.

The synthetic market's home (features through Feast) with tiny BTC-USD champions;
a client thread keeps asking GET /predict (``model=lasso`` and the default) while
the test registers a new lasso champion through the real registry (the old one is
relabelled candidate). The new version reads its features in another order, so
the two versions forecast different prices, and each answer can be checked
against the version it names.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import requests

from deploy.serve import free_port, serve_in_background
from tests.fakes.homes import candlecast_home
from tests.fakes.serving import register_cnn, register_lasso

pytestmark = pytest.mark.integration
SYMBOL = "BTC-USD"
SWITCH_WITHIN = 30.0  # seconds from the promotion to the first answer of the new version
RELOAD_SECONDS = 5


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when it arrived
    asked: str  # "lasso" or "default"
    status: int | None  # None: no HTTP answer at all
    body: dict | str


class Traffic(threading.Thread):
    """Sends GET /predict back to back, alternating model=lasso and the default."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}/predict"
        self.answers: list[Answer] = []
        self.done = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.done.is_set():
                asked = ("lasso", "default")[len(self.answers) % 2]
                params = {"symbol": SYMBOL, **({"model": "lasso"} if asked == "lasso" else {})}
                try:
                    r = session.get(self.url, params=params, timeout=30)
                    body = r.json() if r.ok else r.text
                    self.answers.append(Answer(time.monotonic(), asked, r.status_code, body))
                except requests.RequestException as exc:  # counted, never hidden
                    self.answers.append(Answer(time.monotonic(), asked, None, repr(exc)))

    def wait_for(self, test, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if test(list(self.answers)):
                return True
            time.sleep(0.1)
        return False


@pytest.fixture(scope="module")
def served(synthetic_feature_home):
    from candlecast.feast_store import feature_names

    with candlecast_home(synthetic_feature_home.root):
        names = feature_names("price_model_v2")
        old = register_lasso(SYMBOL, ratio=0.98, features=names)
        register_cnn(SYMBOL, ratio=1.03, features=names, output_scale=1e-7)
        env = {"CANDLECAST_SERVE_SYMBOLS": SYMBOL, "CANDLECAST_RELOAD_SECONDS": "5"}
        with serve_in_background(free_port(), env=env) as client:
            yield client, old, names


def computed_by(tag: str) -> float:
    """The forecast ``tag`` makes from the online features, computed here, in-process."""
    from bentos.features import FeatureSource
    from candlecast import contract, model_store

    stored = model_store.get(tag)
    prices, row = FeatureSource().live(SYMBOL, stored.spec.feature_service)
    x = contract.feature_vector(stored.spec, row.values)
    raw = stored.forward()(contract.model_input(stored.spec, x[None, :]))
    return float(contract.forecast_prices(stored.spec, raw, np.array([prices.values["close"]]))[0])


def test_a_promoted_champion_is_served_without_a_restart_or_a_failed_request(served):
    client, old, names = served
    traffic = Traffic(client.base_url)
    traffic.start()
    try:
        assert traffic.wait_for(lambda a: len(a) >= 20, timeout=60), "no traffic"
        promoted = time.monotonic()
        new = register_lasso(SYMBOL, ratio=0.95, features=[*names[1:], names[0]])

        def switched(answers: list[Answer]) -> bool:
            kinds = {a.asked for a in answers if a.status == 200 and a.body["model_version"] == new}
            return kinds == {"lasso", "default"}

        assert traffic.wait_for(switched, timeout=SWITCH_WITHIN + 5)
        time.sleep(2 * RELOAD_SECONDS)  # and then some: no answer may go back to the old version
    finally:
        traffic.done.set()
        traffic.join(60)
    answers = traffic.answers

    failed = [a for a in answers if a.status != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    versions = [a.body["model_version"] for a in answers]
    assert set(versions) == {old, new}
    first_new = versions.index(new)
    assert answers[first_new].at - promoted < SWITCH_WITHIN
    assert set(versions[first_new:]) == {new}, "an answer after the switch named the old version"
    assert versions[:first_new] and set(versions[:first_new]) == {old}

    # Each answer is the named version's own forecast, with that version's spec beside it.
    for tag, ratio in ((old, 0.98), (new, 0.95)):
        mine = [a.body for a in answers if a.body["model_version"] == tag]
        assert {b["mae_ratio_vs_persistence"] for b in mine} == {ratio}
        expected = [computed_by(tag)] * len(mine)
        assert [b["predicted_price"] for b in mine] == pytest.approx(expected, rel=1e-9)
    assert computed_by(old) != computed_by(new)

    lasso = next(m for m in client.models() if m["model"] == "lasso")
    assert lasso["model_version"] == new and lasso["mae_ratio_vs_persistence"] == 0.95
    assert lasso["default"]
