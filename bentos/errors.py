"""Errors shared by the service and the client.

One set of classes: the server raises them and renders ``to_body()``; the client
rebuilds the same class from the HTTP status and body (``from_response``), so a
caller catches ``UnknownSymbol`` whether it called in-process or over HTTP.
This module imports nothing heavy: the client depends on it.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CandlecastError(Exception):
    """Base for every error the prediction API answers with a JSON body."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class UnknownSymbol(CandlecastError):  # noqa: N818 (names of the API contract)
    status = 404
    code = "unknown_symbol"


class UnknownModel(CandlecastError):  # noqa: N818 (names of the API contract)
    status = 400
    code = "unknown_model"


class UnknownWindow(CandlecastError):  # noqa: N818 (names of the API contract)
    status = 400
    code = "unknown_window"


class BadTime(CandlecastError):  # noqa: N818 (names of the API contract)
    status = 422
    code = "bad_time"


class BadRequest(CandlecastError):  # noqa: N818 (names of the API contract)
    status = 400
    code = "bad_request"


class FeaturesUnavailable(CandlecastError):  # noqa: N818 (names of the API contract)
    status = 503
    code = "features_unavailable"


class ServiceUnavailable(CandlecastError):  # noqa: N818 (names of the API contract)
    """Anything else the server could not answer (network, 5xx): the client's catch-all."""

    status = 503
    code = "service_unavailable"


_BY_CODE: dict[str, type[CandlecastError]] = {
    cls.code: cls
    for cls in (
        UnknownSymbol,
        UnknownModel,
        UnknownWindow,
        BadTime,
        BadRequest,
        FeaturesUnavailable,
        ServiceUnavailable,
    )
}


def from_response(status: int, body: Any) -> CandlecastError:
    """Rebuild the server's error from an HTTP status and (possibly non-JSON) body."""
    if isinstance(body, dict) and body.get("error") in _BY_CODE:
        extra = {k: v for k, v in body.items() if k not in ("error", "message")}
        return _BY_CODE[body["error"]](str(body.get("message", "")), **extra)
    message = body.get("message") or body.get("error") if isinstance(body, dict) else body
    cls = BadRequest if 400 <= status < 500 else ServiceUnavailable
    return cls(f"HTTP {status}: {message}")
