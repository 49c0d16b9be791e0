"""One hour of the living system: fetch, publish, forecast, log, score, retrain.

:func:`run_cycle` does, for every served symbol, at the loop's clock ``now``:

1. **Fetch** the candle that just closed through ``update`` (the real-time job:
   candle store -> features -> online store), polling with backoff until the
   exchange publishes it or ``max_wait`` runs out. The open candle is never
   fetched (``ingestion.coinbase.closed_window``). An hour the exchange never
   publishes is logged as missing, never invented; the next cycle's fetch starts
   after the last stored candle, so hours lost to an outage are caught up.
2. **Publish**: if the online store lags the newest feature row (a process
   killed between the two writes), the missing range is materialized.
3. **Forecast** every hour since the last logged one (capped at ``catch_up``)
   with every served model, through the API's code (:mod:`deploy.forecasts`).
4. **Score** every logged forecast whose target hour's candle is stored.
5. **Drift** of each champion's inputs and errors (``candlecast.drift``), every
   ``drift_every_hours``.
6. **Retrain** when due (:mod:`deploy.schedule`).

Every write is atomic and idempotent, so re-running a cycle (after a crash, or
twice for the same hour) adds nothing twice and loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from candlecast.errors import BadInput, Failure
from candlecast.prediction_log import PredictionLog
from candlecast.settings import get_settings
from candlecast.times import HOUR, utc
from deploy.clock import Clock
from deploy.schedule import RetrainPolicy, due_retrains, initial_retrains

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveConfig:
    """How the loop runs; the CLI's options."""

    symbols: list[str]
    families: list[str]
    publish_delay: float = 5.0  # seconds after the hour before the first fetch
    max_wait: float = 900.0  # give up on an hour's candle after this long
    poll_first: float = 1.0
    poll_max: float = 5.0  # an hour published late is still seen within 5 s
    catch_up_hours: int = 168
    history_days: int = 60  # fetched before a first champion is trained
    retrain: RetrainPolicy = field(default_factory=RetrainPolicy)
    drift: bool = True
    #: Drift is computed at cycles whose hour is a multiple of this (1: every cycle, live;
    #: a replay uses 24: a 7-day window barely moves in an hour, and it costs ~0.5 s).
    drift_every_hours: int = 1


@dataclass
class CycleReport:
    """What a cycle did, for the log line, the heartbeat and the tests."""

    now: pd.Timestamp
    closed: pd.Timestamp  # close time of the hour the cycle is for
    latest: dict[str, pd.Timestamp | None] = field(default_factory=dict)
    missing: dict[str, bool] = field(default_factory=dict)  # symbol -> hour not published
    errors: list[str] = field(default_factory=list)
    logged: int = 0
    scored: int = 0
    retrains: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "now": self.now.isoformat(),
            "hour": self.closed.isoformat(),
            "latest": {k: None if v is None else v.isoformat() for k, v in self.latest.items()},
            "missing": self.missing,
            "errors": self.errors,
            "logged": self.logged,
            "scored": self.scored,
            "retrains": self.retrains,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


class Cycle:
    """The loop's state across cycles: the config, the clock, the forecaster."""

    def __init__(self, config: LiveConfig, clock: Clock) -> None:
        from deploy.forecasts import Forecaster  # BentoML and Feast: not for the healthcheck

        self.config = config
        self.clock = clock
        self.forecaster = Forecaster(config.symbols, config.families, clock.now_datetime)
        self.predictions = PredictionLog(get_settings().predictions_dir)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> CycleReport:
        now = self.clock.now()
        report = CycleReport(now=now, closed=now.floor("h"))
        steps = [
            ("fetch", self.fetch),
            ("initial", self.initial),
            ("forecast", self.forecast),
            ("score", self.score),
            ("drift", self.drift),
            ("retrain", self.retrain),
        ]
        for name, step in steps:
            if should_stop():
                report.errors.append(f"stopped before {name}")
                break
            started = time.perf_counter()
            try:
                step(report)
            except (BadInput, Failure) as exc:  # expected: a corrupt file, a dead exchange
                log.error("cycle %s: %s failed: %s", report.closed, name, exc)
                report.errors.append(f"{name}: {exc}")
            except Exception as exc:  # a bug: its traceback, and the loop goes on
                log.exception("cycle %s: %s failed", report.closed, name)
                report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            report.seconds[name] = time.perf_counter() - started
        self._log(report)
        return report

    # -- steps ---------------------------------------------------------------------
    def fetch(self, report: CycleReport) -> None:
        for symbol in self.config.symbols:
            latest = self._fetch_symbol(symbol, report)
            report.latest[symbol] = latest
            report.missing[symbol] = latest is None or latest < report.closed

    def _fetch_symbol(self, symbol: str, report: CycleReport) -> pd.Timestamp | None:
        """Poll ``update`` until the hour's candle is online or ``max_wait`` passes."""
        from ingestion.feature_jobs import update_job

        waited, pause, latest = 0.0, self.config.poll_first, None
        while True:
            try:
                result = update_job([symbol], now=self.clock.now())[0]
                latest = result.latest_close
                self._repair_online(symbol, result)
            except Exception as exc:
                log.error("%s: fetch failed (%s); serving what is stored", symbol, exc)
                report.errors.append(f"fetch {symbol}: {exc}")
                latest = self._stored_latest(symbol)
            if latest is not None and latest >= report.closed:
                return latest
            if waited >= self.config.max_wait:
                log.warning(
                    "%s: no candle for the hour closing %s after %.0f s (no trades, or the "
                    "exchange is down); the next cycle catches up",
                    symbol,
                    f"{report.closed:%Y-%m-%d %H:%M}",
                    waited,
                )
                return latest
            pause = min(pause, self.config.max_wait - waited)
            if not self.clock.sleep(pause):
                return latest
            waited += pause
            pause = min(pause * 2, self.config.poll_max)

    def _stored_latest(self, symbol: str) -> pd.Timestamp | None:
        from ingestion.feature_dataset import FeatureDataset

        return FeatureDataset(get_settings().features_dir).stats(symbol)[0]

    def _repair_online(self, symbol: str, result) -> None:
        """Materialize the rows a killed cycle wrote offline but never pushed online."""
        from candlecast import feast_store

        behind = result.online_as_of is None or result.online_as_of < result.latest_close
        if result.latest_close is None or not behind:
            return
        start = (result.online_as_of or result.latest_close - HOUR * 48) - HOUR
        log.info("%s: online store at %s, republishing to %s", symbol, start, result.latest_close)
        feast_store.materialize(start, result.latest_close + HOUR)

    def initial(self, report: CycleReport) -> None:
        """Train a first champion of each served family that has none (a new install).

        A new home holds one day of candles (``update`` seeds that much): the
        ``history_days`` before now are fetched first (existing candles win, so a
        home that has them makes a few requests and writes nothing).
        """
        for symbol in self.config.symbols:
            families = initial_retrains(symbol, self.config.families, self.forecaster.champion)
            if families:
                self._ensure_history(symbol, report.now)
                report.retrains += self._train(symbol, families, "initial", "no champion yet")

    def _ensure_history(self, symbol: str, now: pd.Timestamp) -> None:
        from ingestion.backfill import backfill
        from ingestion.feature_dataset import FeatureDataset, extend_features
        from ingestion.store import CandleStore

        settings = get_settings()
        candles = CandleStore(settings.candles_dir)
        start = now.floor("h") - pd.Timedelta(days=self.config.history_days)
        if backfill(candles, symbol, start, now.floor("h"), now=now).new:
            extend_features(candles, FeatureDataset(settings.features_dir), symbol)

    def forecast(self, report: CycleReport) -> None:
        rows = []
        for symbol in self.config.symbols:
            latest = report.latest.get(symbol) or self._stored_latest(symbol)
            if latest is None:
                continue
            hours = self._hours_to_forecast(symbol, latest)
            rows += self.forecaster.forecast(symbol, hours, latest)
        report.logged = self.predictions.append(rows).new

    def _hours_to_forecast(self, symbol: str, latest: pd.Timestamp) -> list[pd.Timestamp]:
        """Close hours after the last logged one, to ``latest`` (capped at ``catch_up_hours``).

        One cycle's rows share a target month, and a catch-up writes its months in
        time order, so a kill mid-append leaves a prefix of the hours logged: the
        hours after the last logged one are exactly the ones to ask for. A new
        log starts at ``latest``: the past is what ``--replay`` is for.
        """
        first = latest - HOUR * (self.config.catch_up_hours - 1)
        logged = self.predictions.read(symbol, since=first + HOUR)
        if logged.empty:
            return [latest]
        after = logged["as_of"].max() + HOUR
        return list(pd.date_range(max(first, after), latest, freq="h", tz="UTC"))

    def score(self, report: CycleReport) -> None:
        from ingestion.store import CandleStore

        result = self.predictions.score(CandleStore(get_settings().candles_dir))
        report.scored = result.scored

    def drift(self, report: CycleReport) -> None:
        every = max(1, self.config.drift_every_hours)
        if not self.config.drift or (report.closed.value // HOUR.value) % every:
            return
        from candlecast import drift

        drift.update(self.config.symbols, report.now)

    def retrain(self, report: CycleReport) -> None:
        for symbol in self.config.symbols:
            for trigger, families, reason, live in due_retrains(
                symbol,
                self.config.families,
                report.now,
                self.config.retrain,
                self.predictions,
                self.forecaster.champion,
            ):
                report.retrains += self._train(symbol, families, trigger, reason, live)

    def _train(self, symbol, families, trigger, reason, live=None) -> list[str]:
        from training.models import FitConfig
        from training.retrain import retrain

        policy, now = self.config.retrain, self.clock.now()
        records = retrain(
            symbol,
            families,
            now.floor("h"),
            trigger,
            reason,
            at=now,
            eval_days=policy.eval_days,
            cfg=FitConfig(max_epochs=policy.max_epochs),
            live=live,
        )
        return [f"{r.family}:{trigger}:{r.stage or 'failed'}" for r in records]

    def _log(self, report: CycleReport) -> None:
        late = [s for s, missing in report.missing.items() if missing]
        log.info(
            "cycle %s: %d forecasts logged, %d scored, retrains %s%s%s (%.2f s)",
            f"{report.closed:%Y-%m-%d %H:%M}",
            report.logged,
            report.scored,
            report.retrains or "none",
            f", no candle yet for {', '.join(late)}" if late else "",
            f", {len(report.errors)} errors" if report.errors else "",
            sum(report.seconds.values()),
        )


def first_cycle_time(now: pd.Timestamp, delay: float) -> pd.Timestamp:
    """When the next cycle starts: ``delay`` seconds after the next hour (or this one)."""
    start = utc(now).floor("h") + pd.Timedelta(seconds=delay)
    return start if start >= now else start + HOUR
