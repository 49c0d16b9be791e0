"""A small typed client for the candlecast prediction API, and a way to run the server.

    from bentos.client import CandlecastClient
    with CandlecastClient("http://127.0.0.1:3000") as client:
        p = client.predict("BTC-USD", model="lasso")
        print(p.predicted_price, p.mae_ratio_vs_persistence)

Errors come back as the server's own classes (``bentos.errors``): ``UnknownSymbol``,
``UnknownModel``, ``BadTime``, ``FeaturesUnavailable``, ``BadRequest``; an
unreachable server raises ``ServiceUnavailable``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
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
    "serve_in_background",
]

SERVICE = "bentos.service:PricePredictor"


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

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Prediction:
        times = ("as_of", "target_time", "request_timestamp")
        kwargs = {f.name: body[f.name] for f in fields(cls)}
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


def free_port() -> int:
    """An unused loopback port, so a server started here never collides with another."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_background(
    port: int = 3000,
    *,
    fused: bool = False,
    api_workers: int = 1,
    startup_timeout: float = 180.0,
    env: dict[str, str] | None = None,
    log_path: str | Path | None = None,
) -> Iterator[CandlecastClient]:
    """Run ``bentoml serve`` on 127.0.0.1:PORT until the block ends; yield a ready client.

    ``fused=True`` runs the model services inside the API process (``--development``:
    no per-call HTTP hop); ``api_workers`` sets PricePredictor's worker processes.
    The server reads CANDLECAST_HOME/BENTOML_HOME from the environment and logs to
    ``log_path`` (a temporary file by default). If it exits early (e.g. no champion
    model) or never gets ready, RuntimeError carries the end of its log.
    """
    from ingestion.settings import PROJECT_ROOT

    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), *(["--development"] if fused else [])]
    child_env = {**os.environ, **(env or {})}
    if api_workers != 1:  # appended to any options the caller passed in ``env``
        options = child_env.get("BENTOML_CONFIG_OPTIONS", "")
        workers = f"services.PricePredictor.workers={api_workers}"
        child_env["BENTOML_CONFIG_OPTIONS"] = f"{options} {workers}".strip()
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="candlecast-serve-")) / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = CandlecastClient(f"http://127.0.0.1:{port}")
    try:
        _wait_ready(proc, client, startup_timeout, Path(log_path))
        yield client
    finally:
        client.close()
        stop(proc)


def _wait_ready(proc: subprocess.Popen, client: CandlecastClient, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prediction server exited ({proc.returncode}):\n{_tail(log)}")
        if client.ready():
            return
        time.sleep(0.5)
    raise RuntimeError(f"prediction server not ready after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:]


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the server's process group (arbiter and workers), then SIGKILL if needed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
