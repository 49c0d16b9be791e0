"""Response bodies of the prediction API, as the OpenAPI document (``/docs.json``) states them.

Each route names its success model here and its error statuses in :data:`ERRORS`, so
the document lists every status the API can answer with the body it really sends
(``schemathesis run /docs.json --checks all`` checks that). The models describe the
bodies ``bentos.predictor``/``bentos.dashboard``/``candlecast.performance`` build;
they add no logic. Extra fields are allowed: a newer server may add fields, and old
clients ignore them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(_Body):
    """Every error: a stable code, a sentence for people, and fields that help fix it."""

    error: str = Field(description="Stable code, e.g. unknown_symbol, bad_time")
    message: str = Field(description="What went wrong and what to do about it")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


BAD_REQUEST = _error("Invalid parameters (unknown_model, unknown_window, bad_request)")
NOT_FOUND = _error("Unknown symbol (unknown_symbol): the body lists known_symbols")
BAD_TIME = _error("A time that cannot be served (bad_time): unreadable, future, no data")
UNAVAILABLE = _error(
    "Features or a model service unavailable (features_unavailable, service_unavailable)"
)
INTERNAL = _error("A bug (internal_error), logged with its traceback")

#: Error statuses by route family; every route can also answer 500.
ERRORS: dict[str, dict[int | str, dict[str, Any]]] = {
    "predict": {400: BAD_REQUEST, 404: NOT_FOUND, 422: BAD_TIME, 503: UNAVAILABLE, 500: INTERNAL},
    "symbol": {400: BAD_REQUEST, 404: NOT_FOUND, 503: UNAVAILABLE, 500: INTERNAL},
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
