"""``candlecast live``: the hourly loop, one cycle now, or a replay of past hours.

* :func:`run_forever` starts each cycle ``publish_delay`` seconds after the hour
  and stops cleanly on SIGTERM/SIGINT (the wait is interrupted at once; a cycle
  in progress stops between two steps, every write being atomic).
* :func:`run_once` runs one cycle at the current time.
* :func:`replay` runs the same cycle for each hour of a past period, the clock
  set to the hour's close plus the publish delay; it needs the home's candles to
  end before the period (it fetches the weeks before it for a new home) and
  resumes after its last stored hour when re-run.

One loop per home: ``$CANDLECAST_HOME/live/live.lock`` is held with ``flock`` and
names its PID; a second process refuses to start. Each cycle, and every minute
of a wait, rewrites ``live/heartbeat.json`` (atomically); the healthcheck
(:func:`check_heartbeat`) reads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from candlecast import heartbeat
from candlecast.errors import BadInput, Failure
from candlecast.heartbeat import live_dir
from candlecast.settings import get_settings
from candlecast.times import HOUR, utc, utc_now
from deploy.clock import Clock, ReplayClock
from deploy.cycle import Cycle, CycleReport, LiveConfig, first_cycle_time

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 60.0
#: A replay computes drift once per simulated day (the loop live: every cycle).
REPLAY_DRIFT_EVERY = 24
#: A cycle running longer than this stops the heartbeat: the healthcheck then fails.
CYCLE_LIMIT = 3000.0


class LoopLockedError(Failure, RuntimeError):
    """Another ``candlecast live`` holds this home's lock."""


class ReplayRangeError(BadInput, ValueError):
    """A replay period the home's data cannot honestly replay."""


@contextlib.contextmanager
def loop_lock() -> Iterator[Path]:
    """Hold ``live/live.lock`` for the loop's lifetime; raise LoopLockedError if taken."""
    path = live_dir() / "live.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise LoopLockedError(
                f"another candlecast live (PID {holder}) is running on {get_settings().home} "
                f"(lock {path}); stop it first, or give this one its own CANDLECAST_HOME"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield path  # leaving closes the file, which releases the flock


def loop_facts(config: LiveConfig) -> dict:
    """What the heartbeat says of the loop itself (``GET /status`` shows it)."""
    every = config.retrain.every
    return {
        "symbols": list(config.symbols),
        "families": list(config.families),
        "retrain_every_hours": None if every is None else every / HOUR,
    }


def write_heartbeat(state: str, report: CycleReport | None = None, **extra) -> Path:
    """Atomically rewrite ``live/heartbeat.json``: wall time, PID, state, last cycle."""
    body = {"pid": os.getpid(), "state": state, **extra}
    if report is not None:
        body["last_cycle"] = report.summary()
    return heartbeat.write(body)


def check_heartbeat(max_age: float) -> str:
    """One line on the loop's health; raise Failure when the heartbeat is old or absent."""
    path = heartbeat.heartbeat_path()
    try:
        body = heartbeat.read()
    except ValueError as exc:
        raise Failure(str(exc)) from None
    if body is None:
        raise Failure(f"no heartbeat at {path}: is `candlecast live` running?")
    age = heartbeat.age_seconds(body)
    if age > max_age:
        raise Failure(f"heartbeat {path} is {age:.0f} s old (limit {max_age:.0f} s)")
    return f"live loop PID {body.get('pid')} {body.get('state')}, heartbeat {age:.0f} s ago"


@contextlib.contextmanager
def beating(report: CycleReport | None, limit: float = CYCLE_LIMIT, **extra) -> Iterator[None]:
    """Keep the heartbeat fresh while a cycle runs (a retrain can take many minutes).

    It stops beating after ``limit`` seconds, so a hung cycle turns the healthcheck red.
    """
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.is_set() and time.monotonic() - started < limit:
            write_heartbeat("cycle", report, **extra)
            done.wait(HEARTBEAT_EVERY)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop`` (in the main thread; elsewhere nothing is installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, _frame) -> None:
        log.info("received %s: stopping after the current step", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_once(config: LiveConfig) -> CycleReport:
    """One cycle at the wall clock's time (``candlecast live --once``)."""
    with loop_lock():
        report = Cycle(config, Clock()).run()
        write_heartbeat("once", report, **loop_facts(config))
        return report


def run_forever(
    config: LiveConfig, stop: threading.Event | None = None, serve_port: int | None = None
) -> int:
    """Catch up now, then cycle every hour until stopped; returns the number of cycles.

    ``serve_port``: also run the HTTP API (``bentoml serve`` on 127.0.0.1) from the
    first cycle on, stopped with the loop (``make live``).
    """
    stop = stop or threading.Event()
    clock = Clock(stop)
    cycles = 0
    with loop_lock(), stop_on_signals(stop), contextlib.ExitStack() as services:
        cycle, facts = Cycle(config, clock), loop_facts(config)
        log.info(
            "live loop PID %d on %s: %s, models %s + naive",
            os.getpid(),
            get_settings().home,
            ", ".join(config.symbols),
            ", ".join(config.families),
        )
        report, start = None, clock.now()  # the first cycle runs at once: it catches up
        while not stop.is_set():
            while not stop.is_set() and clock.now() < start:
                write_heartbeat("waiting", report, next_cycle=start.isoformat(), **facts)
                left = (start - clock.now()).total_seconds()
                clock.sleep(min(HEARTBEAT_EVERY, left))
            if stop.is_set():
                break
            with beating(report, hour=clock.now().floor("h").isoformat(), **facts):
                report = cycle.run(should_stop=stop.is_set)
            cycles += 1
            if serve_port is not None and cycles == 1 and not stop.is_set():
                services.enter_context(_serving(serve_port))
            start = first_cycle_time(clock.now(), config.publish_delay)
        write_heartbeat("stopped", report, **facts)
        log.info("live loop stopped after %d cycles", cycles)
    return cycles


@contextlib.contextmanager
def _serving(port: int) -> Iterator[None]:
    from deploy.serve import serve_in_background

    log_path = live_dir() / "serve.log"
    with serve_in_background(port, log_path=log_path) as client:
        log.info("serving %s (dashboard and API; log %s)", client.base_url, log_path)
        yield


def replay(
    config: LiveConfig,
    start: pd.Timestamp,
    end: pd.Timestamp,
    history_days: int = 60,
    stop: threading.Event | None = None,
) -> list[CycleReport]:
    """Run the cycle for each close hour in ``[start, end]`` on a simulated clock."""
    start, end = utc(start).ceil("h"), utc(end).floor("h")
    if start > end:
        raise ReplayRangeError(f"replay start {start} is after its end {end}")
    if end + HOUR > utc_now():
        raise ReplayRangeError(f"replay end {end} is not in the past; use `candlecast live`")
    stop = stop or threading.Event()
    if config.drift_every_hours == 1:
        config = dataclasses.replace(config, drift_every_hours=REPLAY_DRIFT_EVERY)
    reports: list[CycleReport] = []
    with loop_lock(), stop_on_signals(stop):
        first = prepare_replay(config, start, history_days)
        clock = ReplayClock(first, stop)
        cycle = Cycle(config, clock)
        hours = pd.date_range(first, end, freq="h", tz="UTC")
        log.info("replay %s .. %s: %d hours", first, end, len(hours))
        started = time.perf_counter()
        for hour in hours:
            if stop.is_set():
                break
            clock.set(hour + pd.Timedelta(seconds=config.publish_delay))
            reports.append(cycle.run(should_stop=stop.is_set))
            write_heartbeat("replay", reports[-1], end=end.isoformat(), **loop_facts(config))
        wall = time.perf_counter() - started
        training = sum(r.seconds.get("retrain", 0) + r.seconds.get("initial", 0) for r in reports)
        rate = len(reports) / max(wall - training, 1e-9) * 60
        log.info(
            "replay done: %d hours in %.1f s (%.1f s training): %.0f simulated hours/min",
            len(reports),
            wall,
            training,
            rate,
        )
    return reports


def prepare_replay(config: LiveConfig, start: pd.Timestamp, history_days: int) -> pd.Timestamp:
    """First hour to replay: ``start``, or the last stored hour when resuming.

    A home whose candles end before ``start`` (or an empty one, which gets
    ``history_days`` of candles fetched) replays from ``start``. One whose candles
    end inside the period resumes at its last stored close (that cycle is re-run;
    it adds only what is missing). Candles after the period's start that the
    replay did not write would be the future: refused unless resuming.
    """
    from ingestion.backfill import backfill
    from ingestion.store import CandleStore

    store = CandleStore(get_settings().candles_dir)
    resume = []
    for symbol in config.symbols:
        stored = store.read(symbol)
        if stored.empty:
            log.info("%s: fetching %d days before the replay", symbol, history_days)
            begin = start - pd.Timedelta(days=history_days)
            backfill(store, symbol, begin, start - HOUR, now=start)
            continue
        last_close = stored["time"].max() + HOUR
        if last_close > start:
            resume.append(last_close)
            log.info("%s: candles stored to %s: resuming the replay there", symbol, last_close)
    if not resume:
        return start
    first = min(resume)
    _check_resumable(first)
    return first


def _check_resumable(first: pd.Timestamp) -> None:
    """A resume must continue a replay: the log reaches the hour before ``first``."""
    from candlecast.prediction_log import PredictionLog

    logged = PredictionLog(get_settings().predictions_dir).read()
    if logged.empty or logged["as_of"].max() < first - HOUR * 2:
        raise ReplayRangeError(
            f"the home's candles run to {first}, inside the replay period, but its prediction "
            "log does not: this home was not built by this replay. Replay into a fresh "
            "CANDLECAST_HOME (features from the future would leak into every forecast)"
        )
