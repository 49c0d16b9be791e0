"""HTTP through the PricePredictor ASGI app, in-process, with tiny models and fake features.

The model services resolve in-process here (no runner map), which is also the
single-process layout. The symbol is FAKE-USD so these models never collide
with champions other tests register for BTC-USD in the shared model store.
"""

from __future__ import annotations

import math

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from schemathesis.generation import GenerationMode

from candlecast.settings import reset_settings
from tests.fakes.serving import LAST_CLOSE, FakeFeatures, register_cnn, register_lasso

SYMBOL = "FAKE-USD"
FUZZ_EXAMPLES = 120
VOLATILE = ("request_timestamp", "features_age_seconds")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("prometheus")))
    mp.setenv("CANDLECAST_SERVE_SYMBOLS", SYMBOL)
    reset_settings()
    register_lasso(SYMBOL, ratio=0.97)
    register_lasso(SYMBOL, ratio=0.5, stage="candidate")  # never served: not a champion
    register_cnn(SYMBOL, ratio=1.04)
    import bentos.service as service

    mp.setattr(service, "FeatureSource", lambda: FakeFeatures((SYMBOL,)))
    with TestClient(service.PricePredictor.to_asgi()) as http:
        yield http
    mp.undo()
    reset_settings()


def test_get_and_post_predict_agree(client):
    got = client.get("/predict", params={"symbol": SYMBOL, "model": "cnn", "at": "now"})
    posted = client.post("/predict", json={"symbol": SYMBOL, "model": "cnn"})
    assert got.status_code == posted.status_code == 200
    a, b = got.json(), posted.json()
    assert a["model"] == "cnn" and a["mae_ratio_vs_persistence"] == 1.04
    assert math.isfinite(a["predicted_price"]) and a["predicted_price"] > 0
    assert {k: v for k, v in a.items() if k not in VOLATILE} == {
        k: v for k, v in b.items() if k not in VOLATILE
    }


def test_default_model_is_the_lasso_champion(client):
    body = client.get("/predict", params={"symbol": SYMBOL.lower()}).json()
    assert body["model"] == "lasso"
    assert body["mae_ratio_vs_persistence"] == 0.97
    assert body["as_of"] == LAST_CLOSE.isoformat()
    assert body["stale"] is True  # the fake's last candle is in 2024


def test_models_and_symbols(client):
    models = client.get("/models").json()["models"]
    assert {m["model"] for m in models} == {"lasso", "cnn", "naive"}
    assert next(m for m in models if m["model"] == "lasso")["mae_ratio_vs_persistence"] == 0.97
    assert client.get("/symbols").json() == {"symbols": [SYMBOL]}


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"symbol": "DOGE-USD"}, 404, "unknown_symbol"),
        ({"symbol": SYMBOL, "model": "lstm"}, 400, "unknown_model"),
        ({"symbol": SYMBOL, "at": "2999-01-01T00:00:00Z"}, 422, "bad_time"),
        ({"symbol": SYMBOL, "at": "2019-01-01T00:00:00Z"}, 422, "bad_time"),
        ({"symbol": SYMBOL, "at": "yesterday-ish"}, 422, "bad_time"),
    ],
)
def test_errors_are_json_with_status_for_get_and_post(client, params, status, error):
    for response in (client.get("/predict", params=params), client.post("/predict", json=params)):
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] == error and body["message"]


def test_unknown_symbol_names_known_ones(client):
    body = client.get("/predict", params={"symbol": "ETH-USD"}).json()
    assert SYMBOL in body["message"] and body["known_symbols"] == [SYMBOL]


def test_malformed_bodies_are_4xx(client):
    assert client.post("/predict", content=b"{not json").status_code < 500
    assert client.post("/predict", json={"symbol": 5, "model": []}).status_code == 400
    assert client.post("/predict", json=[1, 2]).status_code < 500


def test_infra_endpoints(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
    paths = client.get("/docs.json").json()["paths"]
    assert {"/predict", "/models", "/symbols"} <= set(paths)
    assert {"get", "post"} <= set(paths["/predict"])


def test_fuzzed_requests_never_get_a_5xx(client):
    """Schemathesis draws valid and invalid requests from /docs.json (app already started)."""
    schema = schemathesis.openapi.from_asgi("/docs.json", client.app)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {(op.method, op.path) for op in operations} >= {
        ("get", "/predict"),
        ("post", "/predict"),
        ("get", "/models"),
    }
    failures, statuses = [], set()

    @hypothesis.settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(data=hypothesis.strategies.data())
    def fuzz(data):
        op = data.draw(hypothesis.strategies.sampled_from(operations))
        mode = data.draw(hypothesis.strategies.sampled_from(list(GenerationMode)))
        case = data.draw(op.as_strategy(mode))  # valid and schema-violating requests
        response = case.call()
        statuses.add(response.status_code)
        if response.status_code >= 500:
            failures.append((case.method, case.path, case.query, case.body, response.text))

    fuzz()
    assert not failures, failures[:3]
    assert 200 in statuses and any(400 <= s < 500 for s in statuses), statuses
