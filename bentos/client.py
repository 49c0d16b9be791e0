"""A small typed client for the candlecast prediction API.

    from bentos.client import CandlecastClient
    with CandlecastClient("http://127.0.0.1:3000") as client:
        p = client.predict("BTC-USD", model="lasso")
        print(p.predicted_price, p.mae_ratio_vs_persistence)

Errors come back as the server's own classes (``bentos.errors``): ``UnknownSymbol``,
``UnknownModel``, ``BadTime``, ``FeaturesUnavailable``, ``BadRequest``; an
unreachable server raises ``ServiceUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import requests

from bentos.errors import (
    BadRequest,
    BadTime,
    CandlecastError,
    FeaturesUnavailable,
    ServiceUnavailable,
    UnknownModel,
    UnknownSymbol,
    from_response,
)

__all__ = [
    "BadRequest",
    "BadTime",
    "CandlecastClient",
    "CandlecastError",
    "FeaturesUnavailable",
    "Prediction",
    "ServiceUnavailable",
    "UnknownModel",
    "UnknownSymbol",
]


@dataclass(frozen=True)
class Prediction:
    """One forecast as the API returns it (times are timezone-aware UTC)."""

    symbol: str
    model: str
    model_version: str
    mae_ratio_vs_persistence: float | None
    feature_service: str
    as_of: datetime
    target_time: datetime
    current_price: float
    predicted_price: float
    predicted_change: float
    predicted_change_pct: float
    past_24_hour_prices: list[float | None]
    features_age_seconds: float
    stale: bool
    request_timestamp: datetime
    #: Central intervals ``[low, high]`` and P(next close > current); None when the model
    #: has no calibration (versions trained before intervals) or the volatility is unknown.
    interval_80: tuple[float, float] | None = None
    interval_95: tuple[float, float] | None = None
    p_up: float | None = None
    interval_clipped: bool = False

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Prediction:
        times = ("as_of", "target_time", "request_timestamp")
        kwargs = {f.name: body[f.name] for f in fields(cls) if f.name in body}
        for key in ("interval_80", "interval_95"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        kwargs.update({k: datetime.fromisoformat(body[k]) for k in times})
        return cls(**kwargs)


class CandlecastClient:
    """Calls one server; reuses its HTTP connection (``requests.Session``)."""

    def __init__(self, base_url: str = "http://127.0.0.1:3000", timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def __enter__(self) -> CandlecastClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def predict(
        self, symbol: str = "BTC-USD", model: str | None = None, at: datetime | str | None = None
    ) -> Prediction:
        """Next-hour forecast; ``model`` None = the server's default, ``at`` None = now."""
        at_text = at.isoformat() if isinstance(at, datetime) else at
        body = {"symbol": symbol, "model": model, "at": at_text}
        return Prediction.from_json(self._call("POST", "/predict", json=body))

    def models(self) -> list[dict[str, Any]]:
        """Servable models per symbol with version, walk-forward metrics and the default flag."""
        return self._call("GET", "/models")["models"]

    def symbols(self) -> list[str]:
        return self._call("GET", "/symbols")["symbols"]

    def ready(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/readyz", timeout=self.timeout).ok
        except requests.RequestException:
            return False

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"{self.base_url} unreachable: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise from_response(response.status_code, body)
        return body
