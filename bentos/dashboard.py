"""The dashboard's data: candles, logged forecasts and the system's status, as JSON.

``GET /`` serves one static page (``bentos/static``); it reads everything from the
public JSON endpoints: ``/candles``, ``/forecasts`` and ``/status`` answered here,
and ``/predict``, ``/models`` and ``/performance``. Independent of BentoML and HTTP,
like ``bentos.predictor``: the service wires a :class:`Dashboard` to its predictor.

Windows end at the symbol's newest stored hour, not at the wall clock, so a home
replaying or holding past data (the 2024 sample) still shows its last week.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pandas as pd

from bentos.errors import BadRequest, FeaturesUnavailable, ServiceUnavailable
from bentos.predictor import Predictor
from candlecast import drift, heartbeat, model_store
from candlecast.candles import CandleReader
from candlecast.contract import NAIVE
from candlecast.errors import CorruptFileError
from candlecast.prediction_log import PredictionLog
from candlecast.retrain_history import history
from candlecast.settings import get_settings
from candlecast.times import HOUR, utc

STATIC = Path(__file__).parent / "static"
MAX_HOURS = 24 * 30
FORECAST_COLUMNS = [
    "model",
    "model_version",
    "is_default",
    "as_of",
    "target_time",
    "current_price",
    "predicted_price",
    "lower_80",
    "upper_80",
    "lower_95",
    "upper_95",
    "p_up",
    "actual_close",
]


def check_hours(hours: Any) -> int:
    """``hours`` as an int in [1, MAX_HOURS], or BadRequest saying the range."""
    try:
        value = int(hours)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= MAX_HOURS:
        raise BadRequest(f"hours={hours!r}: expected a whole number from 1 to {MAX_HOURS}")
    return value


class Dashboard:
    """Answers ``/candles``, ``/forecasts`` and ``/status`` for the served symbols."""

    def __init__(
        self,
        predictor: Predictor,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.predictor = predictor
        self.clock = clock

    async def candles(self, symbol: Any, hours: Any = 168) -> dict[str, Any]:
        """The last ``hours`` hours of stored candles, oldest first (open times)."""
        name, hours = self.predictor.check_symbol(symbol), check_hours(hours)
        frame = await anyio.to_thread.run_sync(self._candles, name, hours)
        rows = [
            {
                "time": t.isoformat(),
                "open": float(o),
                "high": float(h),
                "low": float(lo),
                "close": float(c),
                "volume": float(v),
            }
            for t, o, h, lo, c, v in frame[
                ["time", "open", "high", "low", "close", "volume"]
            ].itertuples(index=False)
        ]
        return {"symbol": name, "hours": hours, "candles": rows}

    def _candles(self, symbol: str, hours: int) -> pd.DataFrame:
        reader = CandleReader(get_settings().candles_dir)
        with _readable("candle store"):
            last = reader.last_time(symbol)
            if last is None:
                return reader.read(symbol)  # empty, with the columns
            return reader.read(symbol, start=last - (hours - 1) * HOUR)

    async def forecasts(self, symbol: Any, hours: Any = 168) -> dict[str, Any]:
        """Logged forecasts whose target hour is in the last ``hours`` logged hours."""
        name, hours = self.predictor.check_symbol(symbol), check_hours(hours)
        frame = await anyio.to_thread.run_sync(self._forecasts, name, hours)
        rows = []
        for row in frame[FORECAST_COLUMNS].itertuples(index=False):
            item = dict(zip(FORECAST_COLUMNS, row, strict=True))
            for key in ("as_of", "target_time"):
                item[key] = utc(item[key]).isoformat()
            for key in FORECAST_COLUMNS[5:]:  # prices, bounds, p_up: null when absent
                item[key] = _number(item[key])
            item["is_default"] = bool(item["is_default"])
            rows.append(item)
        return {"symbol": name, "hours": hours, "forecasts": rows}

    def _forecasts(self, symbol: str, hours: int) -> pd.DataFrame:
        log = PredictionLog(get_settings().predictions_dir)
        with _readable("prediction log"):
            frame = log.read(symbol)
        if frame.empty:
            return frame
        start = frame["target_time"].max() - hours * HOUR
        frame = frame[frame["target_time"] > start]
        return frame.sort_values(["target_time", "model"], kind="stable")

    async def status(self, symbol: Any) -> dict[str, Any]:
        """Freshness, champions, retrains, the live loop and drift of one symbol."""
        name = self.predictor.check_symbol(symbol)
        now = self.clock()
        return {
            "symbol": name,
            "now": now.isoformat(),
            "freshness": await anyio.to_thread.run_sync(self._freshness, name, now),
            **await anyio.to_thread.run_sync(self._models, name, now),
        }

    def _freshness(self, symbol: str, now: datetime) -> dict[str, Any]:
        limit = self.predictor.stale_after_seconds
        try:
            as_of = self.predictor.features.prices(symbol).as_of
        except FeaturesUnavailable as exc:
            return {  # not stale: absent (the message says which command makes them)
                "as_of": None,
                "age_seconds": None,
                "stale_after_seconds": limit,
                "stale": False,
                "message": exc.message,
            }
        age = max(0.0, (now - as_of).total_seconds())
        stale = age > limit
        message = (
            f"Features of {symbol} are {_duration(age)} old (threshold {_duration(limit)}): "
            "is `candlecast live` running?"
            if stale
            else None
        )
        return {
            "as_of": as_of.isoformat(),
            "age_seconds": age,
            "stale_after_seconds": limit,
            "stale": stale,
            "message": message,
        }

    def _models(self, symbol: str, now: datetime) -> dict[str, Any]:
        snapshot = self.predictor.snapshot
        specs = self.predictor.specs(symbol, snapshot)
        default = self.predictor.default(symbol, snapshot)
        with _readable("retrain history"):
            past = history().read(symbol)
        beat = _heartbeat(now)
        champions = [
            {
                "model": family,
                "model_version": spec.version,
                "promoted_at": _promoted_at(spec.version, past),
                "mae_ratio_vs_persistence": spec.mae_ratio_vs_persistence,
                "default": family == default,
            }
            for family, spec in specs.items()
            if family != NAIVE
        ]
        return {
            "champions": champions,
            "retrain": _retrain(past, champions, specs, beat),
            "live_loop": beat,
            "drift": _drift(symbol, specs),
        }


@contextlib.contextmanager
def _readable(what: str) -> Iterator[None]:
    """Answer an unreadable store file as 503, naming the file and its remedy."""
    try:
        yield
    except CorruptFileError as exc:
        raise ServiceUnavailable(f"The {what} cannot be read: {exc}", file=str(exc.path)) from exc


def _promoted_at(tag: str, past: pd.DataFrame) -> str | None:
    """When ``tag`` became champion: its retrain's time, else its creation in the store."""
    rows = past[(past["tag"] == tag) & (past["stage"] == "champion")]
    if len(rows):
        return utc(rows["at"].iloc[-1]).isoformat()
    try:
        return utc(model_store.get(tag).created).isoformat()
    except Exception:  # NotFound: a packed model the live store does not hold
        return None


def _heartbeat(now: datetime) -> dict[str, Any] | None:
    """The live loop's last heartbeat (state, age, retrain schedule), or None."""
    try:
        body = heartbeat.read()
    except ValueError as exc:
        return {"state": "unreadable", "heartbeat_at": None, "age_seconds": None, "error": str(exc)}
    if body is None:
        return None
    return {
        "state": str(body.get("state", "")),
        "heartbeat_at": body["at"],
        "age_seconds": heartbeat.age_seconds(body, pd.Timestamp(now)),
        "retrain_every_hours": body.get("retrain_every_hours"),
    }


def _retrain(past, champions, specs, beat) -> dict[str, Any]:
    """The last retrain and its decision, and when the live loop's schedule is due next."""
    last = None
    if len(past):
        row = past.iloc[-1]
        last = {
            "at": utc(row["at"]).isoformat(),
            "family": str(row["family"]),
            "trigger": str(row["trigger"]),
            "decision": None if pd.isna(row["decision"]) else str(row["decision"]),
            "stage": None if pd.isna(row["stage"]) else str(row["stage"]),
            "ok": bool(row["ok"]),
        }
    every = None if beat is None else beat.get("retrain_every_hours")
    if beat is None:
        message = "No live loop has run here: retrains run with `candlecast live`."
    elif every is None:
        message = "The live loop runs with scheduled retrains off (--retrain-every 0)."
    else:
        message = None
    next_due = None
    if every is not None and champions:
        dues = []
        for champion in champions:
            mine = past.loc[past["family"] == champion["model"], "at"]
            spec = specs[champion["model"]]
            since = mine.max() if len(mine) else _since(spec, champion)
            if since is not None:
                dues.append(utc(since) + pd.Timedelta(hours=float(every)))
        next_due = min(dues).isoformat() if dues else None
    return {"last": last, "next_due": next_due, "every_hours": every, "message": message}


def _since(spec, champion) -> pd.Timestamp | None:
    """The schedule's start for a family never retrained: its champion's cut."""
    when = spec.cut or champion["promoted_at"]
    return None if when is None else utc(when)


def _drift(symbol: str, specs) -> list[dict[str, Any]]:
    """Each served version's latest drift verdict (none | moderate | major)."""
    try:
        reports = drift.load()
    except CorruptFileError:
        reports = {}
    rows = []
    for family, spec in specs.items():
        found = reports.get((symbol, family, spec.version))
        if found is not None:
            rows.append(
                {
                    "model": family,
                    "model_version": spec.version,
                    "verdict": found.get("verdict"),
                    "feature": found.get("verdict_feature"),
                    "psi": found.get("verdict_psi"),
                    "computed_at": found.get("computed_at"),
                }
            )
    return rows


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _duration(seconds: float) -> str:
    """A person's reading of a duration: minutes, hours, then days."""
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
