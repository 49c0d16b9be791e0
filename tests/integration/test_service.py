"""A real ``bentoml serve`` on 127.0.0.1, called with the client.

Features come from each market's home (``feature_home``): the synthetic gapped
market, always, and the real BTC-USD 2024 H1 data (``data``, in ``make test-slow``
only: the served path is the same, and its two server starts cost ~1.5 min); both end
with the candle closing 2024-07-01 00:00. The models are tiny champions registered per the
contract with the real v2 feature names. ETH-USD is served too but has no
features, for the 503 case.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from bentos.client import (
    BadRequest,
    BadTime,
    CandlecastClient,
    FeaturesUnavailable,
    UnknownModel,
    UnknownSymbol,
)
from deploy.serve import PROJECT_ROOT, free_port, serve_in_background
from tests.fakes.serving import register_cnn, register_lasso
from tests.integration.conftest import SLOW_ON_REAL, FeatureHome, _feature_home

pytestmark = pytest.mark.integration
SYMBOLS = "BTC-USD,ETH-USD"
#: Per market: an hour in the past, away from any gap, asked for with ``at``.
PAST_AT = {"real": "2024-03-05T10:42:00Z", "synthetic": "2024-05-05T10:42:00Z"}


def closes_by_close_time(feature_home: FeatureHome):
    """The market's closes keyed by candle close time (the service's ``as_of``)."""
    candles = feature_home.market.candles
    return candles.set_index(candles["time"] + timedelta(hours=1))["close"]


@pytest.fixture(scope="module", params=SLOW_ON_REAL)
def feature_home(request):
    yield from _feature_home(request)


@pytest.fixture(scope="module")
def registered(feature_home):
    from candlecast.feast_store import feature_names

    names = feature_names("price_model_v2")
    for symbol in SYMBOLS.split(","):
        register_lasso(symbol, ratio=0.98, features=names)
        register_cnn(symbol, ratio=1.03, features=names, output_scale=1e-7)
    return names


@pytest.fixture(scope="module")
def client(registered):
    env = {"CANDLECAST_SERVE_SYMBOLS": SYMBOLS}
    with serve_in_background(free_port(), env=env) as client:
        yield client


def test_the_service_starts_as_many_api_workers_as_configured(registered):
    """CANDLECAST_API_WORKERS is the service's own worker count, fixed at import."""
    code = "from bentos.service import PricePredictor; print(PricePredictor.config['workers'])"
    env = {**os.environ, "CANDLECAST_API_WORKERS": "3", "CANDLECAST_SERVE_SYMBOLS": SYMBOLS}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "3"


def test_predict_default_model_with_all_fields(client, feature_home):
    p = client.predict("BTC-USD")
    assert p.model == "lasso" and p.mae_ratio_vs_persistence is not None
    assert p.as_of == datetime(2024, 7, 1, tzinfo=UTC)  # close of the last 2024 H1 candle
    assert p.as_of == feature_home.market.last_close
    assert p.target_time == p.as_of + timedelta(hours=1)
    assert p.current_price > 10_000 and math.isfinite(p.predicted_price)
    closes = closes_by_close_time(feature_home)
    assert p.current_price == closes[p.as_of]
    assert p.predicted_change == pytest.approx(p.predicted_price - p.current_price)
    assert len(p.past_24_hour_prices) == 24 and all(x > 10_000 for x in p.past_24_hour_prices)
    past = [p.as_of - timedelta(hours=h) for h in range(24, 0, -1)]  # oldest first
    assert p.past_24_hour_prices == list(closes[past])
    assert p.stale and p.features_age_seconds > 7200
    assert p.feature_service == "price_model_v2"


def test_every_model_and_a_past_hour(client, feature_home):
    cnn = client.predict("BTC-USD", model="cnn")
    naive = client.predict("BTC-USD", model="naive")
    assert cnn.model == "cnn" and math.isfinite(cnn.predicted_price)
    assert naive.predicted_price == naive.current_price and naive.mae_ratio_vs_persistence == 1.0
    at = PAST_AT[feature_home.market.name]
    past = client.predict("BTC-USD", model="lasso", at=at)
    hour = datetime.fromisoformat(at).replace(minute=0)
    assert past.as_of == hour
    assert past.current_price != naive.current_price
    assert past.current_price == closes_by_close_time(feature_home)[hour]
    assert not past.stale


def test_gap_hours_are_refused_or_reported_never_filled(client, feature_home):
    """An hour without a candle has no prediction; the hour after a gap has incomplete
    features (503 for a model, the gap as nulls in the naive answer's past prices).

    The real file has no gaps (../shared/data/README.md), so there it checks just that.
    """
    gaps = feature_home.market.gaps
    if feature_home.market.name == "real":
        assert gaps.empty
        return
    first = gaps[0]  # open time of the first missing candle; no candle closes at first + 1h
    with pytest.raises(BadTime) as err:
        client.predict("BTC-USD", model="naive", at=(first + timedelta(minutes=90)).isoformat())
    assert "No stored features" in err.value.message
    run_end = first
    while run_end + timedelta(hours=1) in gaps:
        run_end += timedelta(hours=1)
    after = run_end + timedelta(hours=2)  # close of the first candle after the gap
    with pytest.raises(FeaturesUnavailable) as err:
        client.predict("BTC-USD", model="lasso", at=after.isoformat())
    assert "incomplete" in err.value.message
    naive = client.predict("BTC-USD", model="naive", at=after.isoformat())
    assert naive.as_of == after and naive.predicted_price == naive.current_price
    hours_missing = int((run_end - first) / timedelta(hours=1)) + 1  # the latest past hours
    assert naive.past_24_hour_prices[-hours_missing:] == [None] * hours_missing
    assert None not in naive.past_24_hour_prices[:-hours_missing]


def test_get_predict_with_query_parameters(client):
    r = client.session.get(
        f"{client.base_url}/predict", params={"symbol": "BTC-USD", "model": "naive"}
    )
    assert r.status_code == 200 and r.json()["model"] == "naive"


def test_models_and_symbols(client):
    assert client.symbols() == SYMBOLS.split(",")
    models = client.models()
    assert {(m["symbol"], m["model"]) for m in models} >= {("BTC-USD", "lasso"), ("BTC-USD", "cnn")}
    assert all(m["mae_ratio_vs_persistence"] is not None for m in models)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"symbol": "DOGE-USD"}, UnknownSymbol),
        ({"model": "lstm"}, UnknownModel),
        ({"at": "2999-01-01T00:00:00Z"}, BadTime),
        ({"at": "2019-01-01T00:00:00Z"}, BadTime),
        ({"at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}, BadTime),
        ({"at": "not a time"}, BadTime),
        ({"symbol": "ETH-USD"}, FeaturesUnavailable),
    ],
)
def test_errors_raise_typed_exceptions(client, kwargs, error):
    with pytest.raises(error) as err:
        client.predict(**kwargs)
    assert err.value.message


def test_error_statuses_and_messages(client):
    r = client.session.get(f"{client.base_url}/predict", params={"symbol": "DOGE-USD"})
    assert r.status_code == 404 and "BTC-USD" in r.json()["message"]
    r = client.session.post(f"{client.base_url}/predict", json={"model": "xgb"})
    assert r.status_code == 400 and r.json()["choices"] == ["lasso", "cnn", "naive"]
    r = client.session.get(f"{client.base_url}/predict", params={"symbol": "ETH-USD"})
    assert r.status_code == 503 and "candlecast features" in r.json()["message"]
    with pytest.raises(BadRequest):
        client._call(
            "POST", "/predict", data=b"{oops", headers={"Content-Type": "application/json"}
        )


def test_infra_endpoints(client):
    for path in ("/healthz", "/readyz", "/metrics", "/docs.json"):
        assert client.session.get(client.base_url + path).status_code == 200, path


def concurrent_load(client: CandlecastClient, clients: int, requests: int) -> list[str]:
    """``clients`` threads, each with its own connection, ``requests`` calls each."""

    def run(i: int) -> list[str]:
        errors = []
        with CandlecastClient(client.base_url) as own:
            for n in range(requests):
                model = ("lasso", "cnn")[(i + n) % 2]
                try:
                    own.predict("BTC-USD", model=model)
                except Exception as exc:  # every failure is counted, none hidden
                    errors.append(repr(exc))
        return errors

    with ThreadPoolExecutor(clients) as pool:
        return [e for errs in pool.map(run, range(clients)) for e in errs]


def test_concurrent_clients_without_errors(client):
    """Past 100 dependency calls: BentoML 1.4.39 recycles the session under load (#5540)."""
    assert concurrent_load(client, clients=8, requests=25) == []


@pytest.mark.slow
def test_load_16_clients_by_1000_requests_zero_errors(client):
    errors = concurrent_load(client, clients=16, requests=1000)
    assert errors == [], f"{len(errors)} errors, e.g. {errors[:3]}"


@pytest.mark.slow  # the scale-out option, not the default: one more server start (~45 s)
def test_the_split_layout_serves_the_same_forecasts_from_model_processes(
    client, registered, feature_home, tmp_path
):
    """CANDLECAST_SERVING_LAYOUT=split: each family in a BentoML service process of its own.

    On the synthetic market only (one more server start; the layouts share every line
    of the prediction path but the call into the model).
    """
    if feature_home.market.name != "synthetic":
        pytest.skip("the split layout is checked once, on the synthetic market")
    env = {"CANDLECAST_SERVE_SYMBOLS": SYMBOLS, "CANDLECAST_SERVING_LAYOUT": "split"}
    log = tmp_path / "split.log"
    with serve_in_background(free_port(), env=env, log_path=log) as split:
        for model in ("lasso", "cnn"):
            theirs, ours = split.predict("BTC-USD", model=model), client.predict("BTC-USD", model)
            assert (theirs.model_version, theirs.as_of) == (ours.model_version, ours.as_of)
            assert theirs.predicted_price == pytest.approx(ours.predicted_price, rel=1e-12)
            assert theirs.interval_80 == pytest.approx(ours.interval_80, rel=1e-12)
    started = log.read_text()
    assert "LassoModel" in started and "CNNModel" in started, started[-2000:]


def test_refuses_to_start_without_a_champion(feature_home):
    env = {"BENTOML_HOME": tempfile.mkdtemp(prefix="empty-bentoml-")}
    with (
        pytest.raises(RuntimeError) as err,
        serve_in_background(free_port(), env=env, startup_timeout=120),
    ):
        pass
    assert "candlecast train --symbol BTC-USD" in str(err.value)
    assert os.environ["BENTOML_HOME"] != env["BENTOML_HOME"]
