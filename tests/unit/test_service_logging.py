"""Every 5xx the service answers is logged at ERROR with its path, status and cause.

In-process through the PricePredictor ASGI app (as ``test_service_http``), with a
tiny registered models, fake features, and failures injected at the model call and
at the feature read.
"""

from __future__ import annotations

import importlib
import logging
import sys

import pytest
from fastapi.testclient import TestClient

from bentos.errors import FeaturesUnavailable
from candlecast.settings import reset_settings
from tests.fakes.serving import FakeFeatures, register_cnn, register_lasso

SYMBOL = "LOGS-USD"  # its own champion: no collision with other tests' models
MISSING = "NOFEAT-USD"  # served, but the feature source has nothing for it
BROKEN = "BROKEN-USD"  # served; the feature read fails underneath
WEIRD = "WEIRD-USD"  # served; the feature read hits a bug


class Features(FakeFeatures):
    """FakeFeatures whose reads fail for BROKEN (OSError cause) and WEIRD (a bug)."""

    def online(self, symbol, service):
        if symbol == BROKEN:
            try:
                raise OSError("online store: database is locked")
            except OSError as exc:
                raise FeaturesUnavailable(f"online read failed for {symbol}") from exc
        if symbol == WEIRD:
            raise KeyError("close")
        return super().online(symbol, service)


def forget_bentoml_metrics() -> None:
    """Unregister BentoML's HTTP metrics: each ASGI start-up registers them in the global
    Prometheus registry and none unregisters, so a second app in one process would fail
    ("Duplicated timeseries"), e.g. after ``test_service_http``."""
    from prometheus_client import REGISTRY

    for collector, names in list(REGISTRY._collector_to_names.items()):
        if any(name.startswith("bentoml_") for name in names):
            REGISTRY.unregister(collector)


def fresh_service_module():
    """``bentos.service`` built for this module's symbols, whoever imported it before.

    The service wires its model services (``bentos.runners.service_for``, cached) when
    imported, with the served symbols and champions of that moment.
    """
    from bentos import runners

    runners.service_for.cache_clear()
    sys.modules.pop("bentos.service", None)
    return importlib.import_module("bentos.service")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("prometheus")))
    mp.setenv("CANDLECAST_SERVE_SYMBOLS", ",".join((SYMBOL, MISSING, BROKEN, WEIRD)))
    reset_settings()
    for symbol in (SYMBOL, MISSING, BROKEN, WEIRD):
        register_lasso(symbol, ratio=0.97)
        register_cnn(symbol, ratio=1.04)  # every served family needs a champion
    previous = sys.modules.get("bentos.service")
    service = fresh_service_module()

    async def failing_model(dependency, rows):
        raise ConnectionError("model runner at 127.0.0.1:3001 refused the connection")

    mp.setattr(service, "FeatureSource", lambda: Features((SYMBOL,)))
    mp.setattr(service, "call", failing_model)  # bound into PricePredictor at start-up
    mp.setattr(service, "call_inline", failing_model)  # the in-process layout's call
    forget_bentoml_metrics()
    # raise_server_exceptions=False: answer a bug with the handler's 500, as a server does
    with TestClient(service.PricePredictor.to_asgi(), raise_server_exceptions=False) as http:
        yield http
    forget_bentoml_metrics()
    mp.undo()
    reset_settings()
    from bentos import runners

    runners.service_for.cache_clear()  # the next importer wires its own symbols
    sys.modules.pop("bentos.service", None)
    if previous is not None:
        sys.modules["bentos.service"] = previous


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_failing_model_service_is_a_logged_503(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/predict", params={"symbol": SYMBOL, "model": "lasso"})
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "service_unavailable"
    [line] = errors(caplog)
    assert line.startswith("GET /predict -> 503 service_unavailable: model service lasso failed")
    assert "(cause: ConnectionError: model runner at 127.0.0.1:3001 refused the connection)" in line
    record = next(r for r in caplog.records if r.levelno >= logging.ERROR)
    assert record.name == "bentos.service"


def test_missing_features_are_a_logged_503(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.post("/predict", json={"symbol": MISSING, "model": "lasso"})
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "features_unavailable"
    [line] = errors(caplog)
    # no exception underneath: the message is the cause
    assert line == (
        f"POST /predict -> 503 features_unavailable: No online features for {MISSING} "
        "(price_model_v1)"
    )


def test_a_failed_feature_read_is_logged_with_its_cause(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/predict", params={"symbol": BROKEN, "model": "lasso"})
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "features_unavailable"
    [line] = errors(caplog)
    assert line == (
        f"GET /predict -> 503 features_unavailable: online read failed for {BROKEN} "
        "(cause: OSError: online store: database is locked)"
    )


def test_an_unexpected_error_is_a_logged_500_with_its_traceback(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/predict", params={"symbol": WEIRD, "model": "lasso"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "internal error: KeyError"}
    record = next(r for r in caplog.records if r.levelno >= logging.ERROR)
    assert record.getMessage() == "GET /predict -> 500: unexpected 'close'"
    assert record.exc_info and record.exc_info[0] is KeyError


def test_4xx_answers_are_not_logged_as_errors(client, caplog):
    with caplog.at_level(logging.INFO):
        assert client.get("/predict", params={"symbol": "DOGE-USD"}).status_code == 404
        assert client.get("/predict", params={"symbol": SYMBOL, "model": "x"}).status_code == 400
    assert errors(caplog) == []
