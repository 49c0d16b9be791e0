"""Train→serve parity: the real service answers exactly what training's own model predicts.

One synthetic market home (GARCH candles, features through Feast), two symbols:
``PRTR-USD`` with every family trained on ``price_model_v2`` for the next-hour
log return, ``PRTP-USD`` on ``price_model_v1`` for the next-hour close. Each of
the eight models is walk-forwarded, fit and registered by the real training code
(``training.train.train_family``), then ONE real ``bentoml serve`` serves all
four families for both symbols. For a few past hours per model, the service's
``predicted_price`` must equal ``to_price(Fitted.predict(row), close, target)``
computed from the training frame's own feature row, to rtol 1e-6.
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import pytest

from candlecast.contract import FAMILIES
from deploy.serve import free_port, serve_in_background
from tests.fakes.homes import candlecast_home
from tests.fakes.parity_market import MarketSymbol, publish_market, train_market

#: ``make test-slow``: training eight models and a server start take ~2.5 min; the default suite
#: keeps the same contract in-process (tests/unit/test_contract_parity.py) and the served API
#: (tests/integration/test_service.py).
pytestmark = [pytest.mark.integration, pytest.mark.slow]

RTOL = 1e-6
HOURS = 1200  # 50 days: ~1,175 labelled rows after the feature warm-up
MARKET = [
    MarketSymbol("PRTR-USD", "price_model_v2", "return", seed=11),
    MarketSymbol("PRTP-USD", "price_model_v1", "price", seed=12),
]
BY_TARGET = {s.target: s.symbol for s in MARKET}
#: Positions in the labelled frame asked for: an early training row, one in the walk-forward
#: week and the last labelled hour (each past-hour call is an offline Feast query, ~1 s).
POSITIONS = (0.2, 0.9, 1.0)
#: Largest relative difference seen per (family, target), printed at the end (-s).
OBSERVED: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    from training.models import FitConfig

    cfg = FitConfig(max_epochs=2, patience=2, lgbm_estimators=60, lgbm_early_stopping=10)
    root = tmp_path_factory.mktemp("parity-home")
    # One thread per fit: LightGBM's OpenMP threads spin on a busy 2-core box (0.6 s -> 18 s).
    with pytest.MonkeyPatch.context() as mp, candlecast_home(root):
        mp.setenv("CANDLECAST_THREADS", "1")
        publish_market(MARKET, HOURS)
        yield root, train_market(MARKET, cfg)


@pytest.fixture(scope="module")
def client(trained):
    root, _ = trained
    env = {
        "CANDLECAST_HOME": str(root),
        "BENTOML_HOME": os.environ["BENTOML_HOME"],
        "CANDLECAST_SERVE_SYMBOLS": ",".join(s.symbol for s in MARKET),
        "CANDLECAST_SERVE_FAMILIES": ",".join(FAMILIES),
    }
    with serve_in_background(free_port(), env=env) as client:
        yield client
    if OBSERVED:
        print("\nmax relative difference service vs training (family, target):")
        for (family, target), diff in sorted(OBSERVED.items()):
            print(f"  {family:5s} {target:6s} {diff:.3e}")


def _hours(frame):
    """Rows of the labelled frame at POSITIONS (distinct, in time order)."""
    last = len(frame) - 1
    return frame.iloc[sorted({round(p * last) for p in POSITIONS})]


@pytest.mark.parametrize("target", ["return", "price"])
@pytest.mark.parametrize("family", FAMILIES)
def test_service_predicts_what_training_predicts(trained, client, family, target):
    from candlecast.contract import to_price
    from training.registry import load_fitted

    _, symbols = trained
    data, tag = symbols[BY_TARGET[target]].data, symbols[BY_TARGET[target]].tags[family]
    fitted, spec = load_fitted(tag)
    assert spec.target == target and list(spec.features) == data.features

    rows = _hours(data.frame)
    expected = to_price(
        fitted.predict(rows[data.features].to_numpy(float)), rows["price_now"], target
    )
    served, diffs = [], []
    for i, (_, row) in enumerate(rows.iterrows()):
        as_of = row["event_timestamp"].to_pydatetime()
        at = as_of + timedelta(minutes=17 * (i % 2))  # a time inside the hour too
        p = client.predict(BY_TARGET[target], model=family, at=at.isoformat())
        assert p.as_of == as_of, at
        assert (p.model, p.model_version, p.feature_service) == (family, tag, data.feature_service)
        assert p.current_price == pytest.approx(row["price_now"], rel=1e-12)
        served.append(p.predicted_price)
        diffs.append(abs(p.predicted_price - expected[i]) / abs(expected[i]))
    OBSERVED[(family, target)] = max(diffs)
    np.testing.assert_allclose(served, expected, rtol=RTOL, err_msg=f"{family} {target} {tag}")
    assert np.ptp(expected) > 0  # distinct hours, distinct forecasts: not a constant model


def test_models_lists_every_trained_version(trained, client):
    _, symbols = trained
    listed = {(m["symbol"], m["model"]): m for m in client.models()}
    for symbol, result in symbols.items():
        for family, tag in result.tags.items():
            entry = listed[(symbol, family)]
            assert entry["model_version"] == tag
            assert entry["target"] == result.market.target
            assert entry["feature_service"] == result.market.feature_service
