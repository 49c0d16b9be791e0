"""HTTP through the PricePredictor ASGI app, in-process, with tiny models and fake features.

The model services resolve in-process here (no runner map), which is also the
single-process layout. The symbol is FAKE-USD so these models never collide
with champions other tests register for BTC-USD in the shared model store; the
home holds two days of its candles and forecasts, so every route answers rows.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import schemathesis
import schemathesis.engine
from fastapi.testclient import TestClient
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.python import asgi

from candlecast.settings import PROJECT_ROOT, reset_settings
from tests.fakes.serving import LAST_CLOSE, FakeFeatures, register_cnn, register_lasso

SYMBOL = "FAKE-USD"
FUZZ_EXAMPLES = 40  # per operation
VOLATILE = ("request_timestamp", "features_age_seconds")
HOUR = timedelta(hours=1)
load_all_checks()
#: What ``--checks all`` runs: the registered checks and the time limit (schemathesis.toml).
ALL_CHECKS = {*CHECKS.get_all_names(), "max_response_time"}


def seed_home(lasso: str) -> None:
    """Two days of candles, their forecasts (scored) and a drift report of ``lasso``, so
    /candles, /forecasts, /performance and /status answer with rows, not empty lists."""
    from candlecast import drift
    from candlecast.prediction_log import PredictionLog
    from candlecast.settings import get_settings
    from ingestion.store import CandleStore
    from tests.fakes.predictions import forecast_rows

    times = pd.date_range(end=LAST_CLOSE - HOUR, periods=48, freq="h")  # open times
    close = 60_000.0 + 50.0 * np.sin(np.arange(48))
    candles = pd.DataFrame(
        {"symbol": SYMBOL, "time": times, "open": close, "high": close + 9.0}
        | {"low": close - 9.0, "close": close, "volume": 2.0}
    )
    store = CandleStore(get_settings().candles_dir)
    store.write(candles)
    rows = forecast_rows(candles, models=("lasso", "naive"))
    rows["model_version"] = rows["model_version"].where(rows["model"] == "naive", lasso)
    log = PredictionLog(get_settings().predictions_dir)
    log.append(rows)
    log.score(store)  # all but the last hour's: its candle is not stored
    report = {"symbol": SYMBOL, "model": "lasso", "model_version": lasso, "verdict": "moderate"}
    drift.save([report | {"verdict_feature": "rsi_14", "verdict_psi": 0.15, "max_psi": 0.15}])


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("prometheus")))
    mp.setenv("CANDLECAST_HOME", str(tmp_path_factory.mktemp("home")))
    mp.setenv("CANDLECAST_SERVE_SYMBOLS", SYMBOL)
    reset_settings()
    lasso = register_lasso(SYMBOL, ratio=0.97)
    register_lasso(SYMBOL, ratio=0.5, stage="candidate")  # never served: not a champion
    register_cnn(SYMBOL, ratio=1.04)
    seed_home(lasso)
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
    doc = client.get("/docs.json").json()
    paths = doc["paths"]
    assert doc["openapi"] == "3.1.0"  # FastAPI's JSON Schemas are 3.1's
    assert {"/predict", "/models", "/symbols"} <= set(paths)
    assert {"get", "post"} <= set(paths["/predict"])
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_unsupported_methods_are_405_naming_every_allowed_one(client):
    for method in ("PUT", "DELETE", "OPTIONS"):
        response = client.request(method, "/predict")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
        assert response.json()["error"] == "method_not_allowed"
    assert client.request("PATCH", "/models").headers["allow"] == "GET"


def test_schemathesis_all_checks_pass(client, request):
    """``schemathesis run --checks all``, in-process: /docs.json is true of every status,
    media type, header and body; valid requests are accepted and invalid ones refused.
    Every phase that applies (no links: no stateful). Expected statuses: schemathesis.toml,
    shared with the run against a real server (tests/integration/test_openapi_served.py)."""
    config = SchemathesisConfig.from_path(PROJECT_ROOT / "schemathesis.toml")
    project = config.projects.get_default()
    project.checks.update(included_check_names=["all"])
    project.generation.update(max_examples=FUZZ_EXAMPLES)
    schema = schemathesis.openapi.from_asgi("/docs.json", client.app, config=config)
    # Schemathesis runs the app on an event loop thread of its own until the process
    # exits; stopped here instead, while the interpreter is whole: its worker threads,
    # each with a DuckDB connection, otherwise make the process abort as it exits.
    request.addfinalizer(asgi._shutdown)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    ran, statuses, failures, errors = set(), set(), [], []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                ran.update(check.name for check in checks)
                failures += [
                    (event.label, c.name, c.failure_info) for c in checks if c.failure_info
                ]
            statuses.update(
                i.response.status_code for i in event.recorder.interactions.values() if i.response
            )
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            errors.append(event.info.format() if hasattr(event, "info") else repr(event))
    assert not errors, errors
    assert not failures, f"seed {config.seed}\n\n" + "\n\n".join(
        f"{label} {name}: {info.failure.title}\n{info.failure.message}\n{info.code_sample}"
        for label, name, info in failures[:5]
    )
    assert ran == ALL_CHECKS, sorted(ALL_CHECKS ^ ran)
    assert {200, 400, 404, 405, 422} <= statuses, statuses
