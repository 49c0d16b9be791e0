"""``PricePredictor``: the HTTP front door, composing the model services.

``bentoml serve`` (or the Bento) starts this service. The model services, one per
served family (``CANDLECAST_SERVE_FAMILIES``, default ``LassoModel`` and
``CNNModel``; ``bentos.runners.service_for``), run where ``CANDLECAST_SERVING_LAYOUT``
says: ``inprocess`` (default) inside each API worker, called directly (no hop, no
batching wait: on a few cores that is what holds the latency goals), or ``split``,
each a BentoML service of its own in its own processes (``bentoml.depends``), for
scaling the models apart from the API. Either way the Bento packs every champion. The
routes (GET and POST ``/predict``, ``/models``, ``/symbols``, ``/performance``) are
a FastAPI app mounted on the BentoML server: BentoML merges its OpenAPI into
``/docs.json`` by path, so a BentoML API at ``/predict`` would be hidden by the GET
route. Every error is a JSON body from ``bentos.errors`` with its own status code.

Each API worker runs two background loops (started with the worker, never on a
request's path): the champion reload (``bentos.reload``: a newly promoted champion
is served within ``CANDLECAST_RELOAD_SECONDS``, without a restart or a failed
request) and the live-performance gauges on ``/metrics`` (``bentos.gauges``, every
``CANDLECAST_METRICS_SECONDS``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial
from typing import Any

import bentoml
from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from bentos import docs, schemas
from bentos.dashboard import MAX_HOURS, STATIC, Dashboard
from bentos.errors import CandlecastError
from bentos.features import FeatureSource
from bentos.gauges import Gauges
from bentos.live import LivePerformance
from bentos.predictor import Predictor, ServedFamily
from bentos.registry import (
    Champion,
    LiveChampions,
    reference_models,
    served_families,
    served_symbols,
)
from bentos.reload import ChampionWatch, Snapshot, every
from bentos.runners import service_for
from candlecast import logs
from candlecast.contract import NAIVE
from candlecast.performance import WINDOWS
from candlecast.settings import get_settings

log = logging.getLogger(__name__)
http = FastAPI(title="candlecast", docs_url=None, redoc_url=None, openapi_url=None)
http.mount("/static", StaticFiles(directory=STATIC), name="static")
ERRORS = schemas.ERRORS
#: Served families, fixed when the service is imported (BentoML resolves dependencies then).
FAMILIES = served_families()
#: Where the models run (``Settings.serving_layout``), fixed at import like the families.
SPLIT = get_settings().serving_layout == "split"
# Constraints stated in /docs.json but checked by the predictor and dashboard, whose 400s
# name the choices or the range (unknown_model, unknown_window, bad_request).
MODEL = {"pattern": schemas.any_case(*FAMILIES, NAIVE, empty=True)}
WINDOW = {"pattern": schemas.any_case(*WINDOWS)}
HOURS = {"minimum": 1, "maximum": MAX_HOURS}
MODELS = " | ".join([*FAMILIES, NAIVE])
SYMBOLS = served_symbols()  # the examples of a symbol in /docs.json


class PredictRequest(BaseModel):
    symbol: str = Field(
        "BTC-USD", description="Symbol, e.g. BTC-USD (see GET /symbols)", examples=SYMBOLS
    )
    model: str | None = Field(
        None, description=f"{MODELS}; default: best champion", json_schema_extra=MODEL
    )
    at: str | None = Field(None, description="'now' (default) or an ISO-8601 time in the past")


@http.exception_handler(CandlecastError)
async def _candlecast_error(request: Request, exc: CandlecastError) -> JSONResponse:
    if exc.status >= 500:  # the server's fault: never silent
        cause = exc.__cause__
        log.error(
            "%s %s -> %d %s: %s%s",
            request.method,
            request.url.path,
            exc.status,
            exc.code,
            exc.message,
            f" (cause: {type(cause).__name__}: {cause})" if cause else "",
        )
    return JSONResponse(exc.to_body(), status_code=exc.status)


@http.exception_handler(Exception)
async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered as a JSON 500 rather than a bare page."""
    log.exception("%s %s -> 500: unexpected %s", request.method, request.url.path, exc)
    body = {"error": "internal_error", "message": f"internal error: {type(exc).__name__}"}
    return JSONResponse(body, status_code=500)


@http.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    body = {"error": "bad_request", "message": "Invalid request", "detail": exc.errors()}
    return JSONResponse(jsonable_encoder(body), status_code=400)


@http.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (a method the path lacks, a missing static file) as JSON."""
    headers = dict(exc.headers or {})
    if "Allow" in headers:  # a route's 405: Starlette names the first route's methods only
        headers["Allow"] = ", ".join(allowed_methods(request))
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    body = {"error": code, "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers at the request's path (GET, POST for /predict)."""
    routes = [r for r in http.routes if not isinstance(r, Mount)]

    def routed(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] == Match.FULL for route in routes)

    return [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE") if routed(m)]


async def call(dependency: Any, rows: Any) -> Any:
    """Call a model service's batchable ``predict`` (remote proxy or in-process instance).

    Looked up per call: a remote proxy only gets its endpoints once started.
    """
    return await dependency.to_async.predict(rows)


async def call_inline(model_service: Any, rows: Any) -> Any:
    """In-process layout: the forward pass on the event loop when its version is loaded.

    Lasso takes microseconds and the CNN about half a millisecond, less than a hop to a
    thread and back; a version still to load (seconds) goes to a thread instead.
    """
    if model_service.ready(rows):
        return model_service.predict_rows(rows)
    return await model_service.to_async.predict(rows)


async def load(dependency: Any, tags: list[str]) -> Any:
    """Have a model service load versions (``load`` API) before they are served."""
    return await dependency.to_async.load(tags=tags)


def read_champions(watchers: dict[str, LiveChampions]) -> Snapshot:
    """family -> symbol -> spec of the champions to serve now."""
    return {f: {s: c.spec for s, c in w.read().items()} for f, w in watchers.items()}


class PricePredictor:
    """Next-hour price forecasts from the Feast online store and the champion models.

    In the split layout one ``bentoml.depends`` attribute per served family (named after
    it) is set below; in the default in-process layout, one model reference per champion.
    """

    def __init__(self) -> None:
        logs.configure()
        settings = get_settings()
        settings.export_env()
        # One-row forward passes: TensorFlow's thread hand-offs cost more than they save
        # (CNN ~2.3 vs ~3.2 ms per request on 2 cores). Before the first model loads TF.
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
        packed = {family: service_for(family).inner.champions for family in FAMILIES}
        # split: BentoML's proxies to the model services' processes (class attributes set
        # below); inprocess: an instance of each model service in this worker.
        self.model_services = {
            family: getattr(self, family) if SPLIT else service_for(family)() for family in FAMILIES
        }
        self.predictor = Predictor(
            served_symbols(), self._families(packed), FeatureSource(), settings.stale_after_seconds
        )
        self.dashboard = Dashboard(self.predictor)
        self.gauges = Gauges()
        self.gauges.served(self.predictor.snapshot)
        self.live = LivePerformance(served_symbols(), self.gauges)
        watchers = {family: LiveChampions(family, champs) for family, champs in packed.items()}
        read = partial(read_champions, watchers)
        self.watch = ChampionWatch(self.predictor, read, self.gauges.served)
        self.loops: list[asyncio.Task] = []

    def _families(self, packed: dict[str, dict[str, Champion]]) -> dict[str, ServedFamily]:
        """Each model service: the champions it started with and the calls into it."""
        return {
            family: ServedFamily(
                {symbol: c.spec for symbol, c in champions.items()},
                partial(call if SPLIT else call_inline, self.model_services[family]),
                partial(load, self.model_services[family]),
            )
            for family, champions in packed.items()
        }

    @bentoml.on_startup
    async def start_loops(self) -> None:
        """Start this worker's champion reload and gauge refresh (0 seconds: off)."""
        settings = get_settings()
        loops = []
        if settings.reload_seconds > 0:
            loops.append(every(settings.reload_seconds, self.watch.check, "champion reload"))
        if settings.metrics_seconds > 0:
            gauges = every(settings.metrics_seconds, self.live.refresh, "live gauges", first=0)
            loops.append(gauges)
        # Cancelled with the worker's event loop. No on_shutdown hook: BentoML calls it on
        # an instance it may have dropped already (a second lifespan, as in the tests).
        self.loops = [asyncio.create_task(loop) for loop in loops]

    @http.get("/", include_in_schema=False)
    async def index(self) -> FileResponse:
        """The dashboard: one page reading the JSON endpoints below."""
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @http.get("/docs", include_in_schema=False)
    async def api_docs(self) -> Response:
        """Swagger UI from the service's own assets (no third-party requests)."""
        if not get_settings().api_docs:
            return docs.switched_off()
        return HTMLResponse(docs.SWAGGER_PAGE)

    @http.get("/docs.json", include_in_schema=False)
    async def openapi(self) -> Response:
        """The OpenAPI document of these routes and BentoML's infra endpoints."""
        if not get_settings().api_docs:
            return docs.switched_off()
        return JSONResponse(docs.openapi(PricePredictor, http))

    @http.post("/predict", response_model=schemas.Prediction, responses=ERRORS["predict_body"])
    async def predict(self, request: PredictRequest) -> dict[str, Any]:
        """Forecast SYMBOL's close one hour after the latest (or the ``at``) candle."""
        return await self.predictor.predict(request.symbol, request.model, request.at)

    @http.get("/predict", response_model=schemas.Prediction, responses=ERRORS["predict"])
    async def predict_get(
        self,
        symbol: str = Query("BTC-USD", description="Symbol, e.g. BTC-USD", examples=SYMBOLS),
        model: str = Query(
            "", description=f"{MODELS}; default: best champion", json_schema_extra=MODEL
        ),
        at: str = Query("now", description="'now' or ISO-8601 in the past"),
    ) -> dict[str, Any]:
        """Forecast SYMBOL's close one hour after the latest (or the ``at``) candle."""
        return await self.predictor.predict(symbol, model, at)

    @http.get("/models", response_model=schemas.Models, responses=ERRORS["plain"])
    async def models(self) -> dict[str, Any]:
        """Every served model per symbol, with its walk-forward figures."""
        return {"models": self.predictor.models()}

    @http.get("/symbols", response_model=schemas.Symbols, responses=ERRORS["plain"])
    async def symbols(self) -> dict[str, Any]:
        """The served symbols."""
        return {"symbols": self.predictor.symbols}

    @http.get("/performance", response_model=schemas.Performance, responses=ERRORS["performance"])
    async def performance(
        self,
        symbol: str = Query("", description="Symbol, e.g. BTC-USD; empty: all", examples=SYMBOLS),
        window: str = Query("7d", description="24h | 7d | 30d | all", json_schema_extra=WINDOW),
    ) -> dict[str, Any]:
        """Live figures of each model version on the hours that closed in the window."""
        return await self.live.answer(symbol, window)

    @http.get("/candles", response_model=schemas.Candles, responses=ERRORS["hours"])
    async def candles(
        self,
        symbol: str = Query("BTC-USD", description="Symbol, e.g. BTC-USD", examples=SYMBOLS),
        hours: int = Query(
            168, description="Hours back from the newest stored candle", json_schema_extra=HOURS
        ),
    ) -> dict[str, Any]:
        """The stored candles of the last HOURS hours, oldest first."""
        return await self.dashboard.candles(symbol, hours)

    @http.get("/forecasts", response_model=schemas.Forecasts, responses=ERRORS["hours"])
    async def forecasts(
        self,
        symbol: str = Query("BTC-USD", description="Symbol, e.g. BTC-USD", examples=SYMBOLS),
        hours: int = Query(
            168, description="Hours back from the newest logged target", json_schema_extra=HOURS
        ),
    ) -> dict[str, Any]:
        """Logged forecasts (every model) with their outcomes, oldest target first."""
        return await self.dashboard.forecasts(symbol, hours)

    @http.get("/status", response_model=schemas.Status, responses=ERRORS["symbol"])
    async def status(
        self, symbol: str = Query("BTC-USD", description="Symbol, e.g. BTC-USD", examples=SYMBOLS)
    ) -> dict[str, Any]:
        """Data freshness, champions, retrains, the live loop and drift of SYMBOL."""
        return await self.dashboard.status(symbol)


for _family in FAMILIES:
    if SPLIT:  # BentoML finds dependencies among the class attributes
        setattr(PricePredictor, _family, bentoml.depends(service_for(_family)))
    else:  # BentoML packs the models a served service names at class scope
        reference_models(PricePredictor, service_for(_family).inner.champions, f"{_family}_")
#: Routes BentoML's OpenTelemetry middleware skips by default: spans for every forecast,
#: probe and scrape cost ~10 % of a request's CPU here and, with no exporter configured
#: (the default), nobody reads them. Override with ``tracing.excluded_urls`` in
#: BENTOML_CONFIG_OPTIONS (e.g. ``tracing.excluded_urls=/readyz,/livez``) to trace them.
UNTRACED = "/predict,/readyz,/livez,/metrics"

PricePredictor = bentoml.service(
    name="PricePredictor",
    workers=get_settings().api_workers,
    traffic={"timeout": 30},
    tracing={"excluded_urls": UNTRACED},
)(bentoml.asgi_app(http, path="/")(PricePredictor))
