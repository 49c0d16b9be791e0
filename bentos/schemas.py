"""Response bodies of the prediction API, as the OpenAPI document (``/docs.json``) states them.

Each route names its success model here and its error statuses in :data:`ERRORS`, so
the document lists every status the API can answer with the body it really sends
(``schemathesis run /docs.json --checks all`` checks that). The models describe the
bodies ``bentos.predictor``/``bentos.dashboard``/``candlecast.performance`` build;
they add no logic. Extra fields are allowed: a newer server may add fields, and old
clients ignore them. Each error code has its model, so a client knows which fields
come with it. :func:`any_case` states the names a parameter accepts.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


def any_case(*words: str, empty: bool = False) -> str:
    """A pattern for one of ``words`` in any letter case, blanks around it allowed, as the
    service reads names (stripped and lower-cased); ``empty``: the empty string too."""
    assert all(w.isalnum() for w in words), words
    names = "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in w) for w in words
    )
    word = rf"\s*(?:{names})\s*"
    return f"^(?:{word})?$" if empty else f"^{word}$"


class ErrorBody(_Body):
    """Every error: a stable code, a sentence for people, and fields that help fix it."""

    error: str = Field(description="Stable code, e.g. unknown_symbol, bad_time")
    message: str = Field(description="What went wrong and what to do about it")


class BadRequestBody(ErrorBody):
    error: Literal["bad_request"]
    detail: list[dict[str, Any]] | None = Field(
        None, description="The validation errors, when the request did not parse"
    )


class UnknownModelBody(ErrorBody):
    error: Literal["unknown_model"]
    choices: list[str] = Field(description="The models served for the symbol")


class UnknownWindowBody(ErrorBody):
    error: Literal["unknown_window"]
    choices: list[str]


class UnknownSymbolBody(ErrorBody):
    error: Literal["unknown_symbol"]
    known_symbols: list[str]


class BadTimeBody(ErrorBody):
    error: Literal["bad_time"]
    latest: str | None = Field(None, description="Close time of the last stored candle")


class UnavailableBody(ErrorBody):
    error: Literal["features_unavailable", "service_unavailable"]


class StoreUnavailableBody(ErrorBody):
    error: Literal["service_unavailable"]
    file: str = Field(description="The store file that cannot be read")


class InternalErrorBody(ErrorBody):
    error: Literal["internal_error"]


def _error(description: str, *models: type[ErrorBody]) -> dict[str, Any]:
    body = models[0] if len(models) == 1 else Union[models]  # noqa: UP007 (a runtime union)
    return {"model": body, "description": description}


NOT_FOUND = _error("Unknown symbol (unknown_symbol), with the known_symbols", UnknownSymbolBody)
STORE = _error("A store file cannot be read (service_unavailable)", StoreUnavailableBody)
INTERNAL = _error("A bug (internal_error), logged with its traceback", InternalErrorBody)
UNKNOWN_MODEL = "Unknown model (unknown_model), with the choices"
PREDICT = {
    400: _error(UNKNOWN_MODEL, UnknownModelBody),
    404: NOT_FOUND,
    422: _error(
        "A time that cannot be served (bad_time): unreadable, in the future, or with no "
        "stored data",
        BadTimeBody,
    ),
    503: _error(
        "No features for the hour (features_unavailable) or a model service failed "
        "(service_unavailable)",
        UnavailableBody,
    ),
    500: INTERNAL,
}

#: Every error status of each route and its body (a 504 on every route: bentos.docs).
ERRORS: dict[str, dict[int | str, dict[str, Any]]] = {
    "predict": PREDICT,
    "predict_body": {
        **PREDICT,
        400: _error(
            f"{UNKNOWN_MODEL}, or a body that does not parse (bad_request)",
            UnknownModelBody,
            BadRequestBody,
        ),
    },
    "performance": {
        400: _error("Unknown window (unknown_window), with the choices", UnknownWindowBody),
        404: NOT_FOUND,
        503: STORE,
        500: INTERNAL,
    },
    "hours": {
        400: _error("hours is not a whole number from 1 to 720 (bad_request)", BadRequestBody),
        404: NOT_FOUND,
        503: STORE,
        500: INTERNAL,
    },
    "symbol": {404: NOT_FOUND, 503: STORE, 500: INTERNAL},
    "plain": {500: INTERNAL},
}


class Prediction(_Body):
    symbol: str
    model: str = Field(description="lasso | cnn | naive")
    model_version: str
    mae_ratio_vs_persistence: float | None = Field(
        description="Walk-forward MAE / persistence MAE recorded with the model (< 1 beats it)"
    )
    feature_service: str
    as_of: str = Field(description="Close time (UTC) of the candle the forecast starts from")
    target_time: str = Field(description="Close time (UTC) of the forecast candle: as_of + 1 h")
    current_price: float
    predicted_price: float
    predicted_change: float
    predicted_change_pct: float
    interval_80: list[float] | None = Field(
        description="[low, high] central 80 % interval of the next close (conformal, scaled "
        "by the last 24 h volatility); null without a calibration or a known volatility"
    )
    interval_95: list[float] | None = Field(description="[low, high] central 95 % interval")
    p_up: float | None = Field(description="P(next close > current_price)")
    interval_clipped: bool = Field(
        description="A level had too few calibration errors and was clipped to the largest"
    )
    past_24_hour_prices: list[float | None]
    features_age_seconds: float
    stale: bool
    request_timestamp: str


class ModelInfo(_Body):
    symbol: str
    model: str
    model_version: str
    feature_service: str
    target: str
    mae_ratio_vs_persistence: float | None
    beats_persistence: bool
    default: bool
    metrics: dict[str, Any]


class Models(_Body):
    models: list[ModelInfo]


class Symbols(_Body):
    symbols: list[str]


class PerformanceRow(_Body):
    symbol: str
    model: str
    model_version: str
    is_default: bool
    window: str
    n: int = Field(description="Scored forecasts in the window")
    unscored: int = Field(description="Forecasts in the window with no outcome yet")
    mae: float | None
    persistence_mae: float | None = Field(description="Persistence's MAE on the same hours")
    mae_ratio_vs_persistence: float | None
    directional_accuracy: float | None
    directional_accuracy_ci95: list[float] | None = Field(description="95 % Wilson band")
    coverage_80: float | None = Field(
        description="Share of closes inside the logged 80 % intervals (null: none logged)"
    )
    coverage_95: float | None
    interval_width_80: float | None
    interval_width_95: float | None
    worst_target_time: str | None
    worst_abs_error: float | None
    first_target_time: str
    last_target_time: str
    drift: dict[str, Any] | None = Field(description="The version's latest drift report")


class Performance(_Body):
    window: str
    rows: list[PerformanceRow]


class Candle(_Body):
    time: str = Field(description="Open time (UTC), as Coinbase sends it; closes 1 h later")
    open: float
    high: float
    low: float
    close: float
    volume: float


class Candles(_Body):
    symbol: str
    hours: int
    candles: list[Candle] = Field(description="Oldest first; hours without trades are absent")


class LoggedForecast(_Body):
    model: str
    model_version: str
    is_default: bool
    as_of: str
    target_time: str
    current_price: float | None
    predicted_price: float | None
    lower_80: float | None
    upper_80: float | None
    lower_95: float | None
    upper_95: float | None
    p_up: float | None
    actual_close: float | None = Field(description="Null until the target hour is scored")


class Forecasts(_Body):
    symbol: str
    hours: int
    forecasts: list[LoggedForecast]


class Freshness(_Body):
    as_of: str | None = Field(description="Close time of the newest online features")
    age_seconds: float | None
    stale_after_seconds: float
    stale: bool
    message: str | None


class ChampionStatus(_Body):
    model: str
    model_version: str
    promoted_at: str | None
    mae_ratio_vs_persistence: float | None
    default: bool


class LastRetrain(_Body):
    at: str
    family: str
    trigger: str
    decision: str | None
    stage: str | None
    ok: bool


class RetrainStatus(_Body):
    last: LastRetrain | None
    next_due: str | None
    every_hours: float | None
    message: str | None


class LiveLoop(_Body):
    state: str
    heartbeat_at: str | None
    age_seconds: float | None


class DriftFlag(_Body):
    model: str
    model_version: str
    verdict: str | None = Field(description="none | moderate | major (PSI band, KS-tested)")
    feature: str | None
    psi: float | None
    computed_at: str | None


class Status(_Body):
    symbol: str
    now: str
    freshness: Freshness
    champions: list[ChampionStatus]
    retrain: RetrainStatus
    live_loop: LiveLoop | None
    drift: list[DriftFlag]
