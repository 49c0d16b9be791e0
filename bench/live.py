"""The live loop: seconds from the exchange publishing an hour to its forecast, and replay speed.

**Latency.** A fake Coinbase on 127.0.0.1 publishes the candle that just closed
``delay`` seconds after the loop's cycle started polling for it (the exchange is
late, as it is live). The loop runs on a clock shifted to that hour, against a
real ``bentoml serve`` of the same home. For each hour: seconds from publishing
to the forecast being **logged** (the cycle's forecast step done) and to it being
**served** (GET /predict answers ``as_of`` = that hour). Goal: both <= 10 s.
Baseline, measured in the same run: the schedule it replaces, ``update`` at minute
5 of every hour (300 s after the close, plus the update's own time), so the ratio
says how much sooner a forecast is out.

**Replay.** ``candlecast live --replay`` over 48 hours (no retrains), simulated hours
per minute of wall time. Goal: >= 100. Baseline, same run: ``update`` alone for each
hour (fetch, store, features, online push: the floor of a cycle).

Always builds temporary homes on the project's synthetic market (Lasso and CNN
champions trained by the real training code on a few epochs).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from candlecast.times import HOUR

SYMBOL = "BTC-USD"
FIRST = pd.Timestamp("2024-07-01T00:00", tz="UTC")  # close of the first measured hour
DELAYS = (0.5, 3.0, 7.0)  # seconds after the cycle starts that the exchange publishes
GOAL_SECONDS, GOAL_REPLAY = 10.0, 100.0
CRON_MINUTE = 5
REPLAY_HOURS = 48


class ShiftedClock:
    """The wall clock moved to the measured hour (the loop's ``deploy.clock.Clock``)."""

    def __init__(self, stop: threading.Event) -> None:
        from deploy.clock import Clock

        self.inner, self.offset = Clock(stop), pd.Timedelta(0)

    def set(self, when: pd.Timestamp) -> None:
        self.offset = when - self.inner.now()

    def now(self) -> pd.Timestamp:
        return self.inner.now() + self.offset

    def now_datetime(self):
        return self.now().to_pydatetime()

    def sleep(self, seconds: float) -> bool:
        return self.inner.sleep(seconds)


def _use_home(root: Path) -> None:
    from candlecast.settings import reset_settings

    os.environ["CANDLECAST_HOME"] = str(root)
    os.environ["BENTOML_HOME"] = str(root / "bentoml")
    reset_settings()


def _config(**extra):
    from deploy.cycle import LiveConfig
    from deploy.schedule import RetrainPolicy

    policy = RetrainPolicy(every=None, early_window=None, eval_days=7, max_epochs=3)
    return LiveConfig(symbols=[SYMBOL], families=["lasso", "cnn"], retrain=policy, **extra)


def _market() -> pd.DataFrame:
    from ingestion.sample import synthetic_candles

    return synthetic_candles(SYMBOL, 1500, seed=0, end=FIRST + len(DELAYS) * HOUR)


def latency(fake, candles: pd.DataFrame) -> list[dict]:
    """Publish-to-logged and publish-to-served seconds for each of ``DELAYS``."""
    from deploy.cycle import Cycle
    from deploy.serve import free_port, serve_in_background

    held = candles[candles["time"] + HOUR < FIRST]
    fake.set_candles(SYMBOL, held)
    stop = threading.Event()
    clock = ShiftedClock(stop)
    cycle = Cycle(_config(drift=False), clock)
    clock.set(FIRST - HOUR + pd.Timedelta(seconds=5))
    _backfill(FIRST - HOUR - pd.Timedelta(days=40), FIRST - 2 * HOUR, FIRST - HOUR)
    cycle.run()  # trains the first champions and forecasts the hour before
    results = []
    with serve_in_background(free_port(), startup_timeout=300) as client:
        for i, delay in enumerate(DELAYS):
            close = FIRST + i * HOUR
            clock.set(close + pd.Timedelta(seconds=1))
            started = time.perf_counter()
            published = started + delay
            publish = (SYMBOL, candles[candles["time"] < close])
            threading.Timer(delay, fake.set_candles, publish).start()
            served: list[float] = []
            watcher = threading.Thread(target=_watch, args=(client, close, served, stop))
            watcher.start()
            report = cycle.run()
            steps = report.seconds
            logged = started + steps["fetch"] + steps["initial"] + steps["forecast"]
            watcher.join(timeout=60)
            results.append(
                {
                    "hour": close,
                    "delay": delay,
                    "logged": logged - published,
                    "served": (served[0] - published) if served else float("nan"),
                    "logged_rows": report.logged,
                }
            )
    stop.set()
    return results


def _watch(client, close: pd.Timestamp, served: list[float], stop: threading.Event) -> None:
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and not stop.is_set():
        try:
            if pd.Timestamp(client.predict(SYMBOL).as_of) >= close:
                served.append(time.perf_counter())
                return
        except Exception:  # a failed poll is retried; the figure says if it never came
            pass
        time.sleep(0.1)


def _backfill(start: pd.Timestamp, end: pd.Timestamp, now: pd.Timestamp) -> None:
    from candlecast.settings import get_settings
    from ingestion.backfill import backfill
    from ingestion.store import CandleStore

    backfill(CandleStore(get_settings().candles_dir), SYMBOL, start, end, now=now)


def replay_rate(fake, candles: pd.DataFrame, root: Path) -> tuple[float, float]:
    """(replay hours/min without training, update-only hours/min) over REPLAY_HOURS."""
    from deploy.clock import ReplayClock
    from deploy.live import replay
    from ingestion.feature_jobs import update_job

    fake.set_candles(SYMBOL, candles)
    start = FIRST - REPLAY_HOURS * HOUR
    _use_home(root / "replay")
    reports = replay(_config(), start, FIRST - HOUR, history_days=40)
    training = ("initial", "retrain")
    work = sum(sum(v for k, v in r.seconds.items() if k not in training) for r in reports)
    rate = len(reports) / work * 60
    _use_home(root / "update-only")
    clock = ReplayClock(start)
    _backfill(start - pd.Timedelta(days=40), start - HOUR, start)
    update_job([SYMBOL], now=start)  # features and Feast applied: not timed
    began = time.perf_counter()
    for hour in pd.date_range(start + HOUR, FIRST - HOUR, freq="h", tz="UTC"):
        clock.set(hour + pd.Timedelta(seconds=5))
        update_job([SYMBOL], now=clock.now())
    floor = (REPLAY_HOURS - 1) / (time.perf_counter() - began) * 60
    return rate, floor


def main() -> None:
    from tests.fakes.coinbase import FakeCoinbase, client_env

    root = Path(tempfile.mkdtemp(prefix="candlecast-bench-live-"))
    candles = _market()
    with FakeCoinbase() as fake:
        os.environ.update(client_env(fake.url))
        _use_home(root / "latency")
        hours = latency(fake, candles)
        rate, floor = replay_rate(fake, candles, root)
    print(f"homes under {root} (temporary, synthetic market)")
    print(f"{'hour':<17} {'publish delay':>13} {'to logged s':>11} {'to served s':>11} "
          f"{'cron :05 s':>10} {'ratio':>6}")  # fmt: skip
    for h in hours:
        cron = CRON_MINUTE * 60 - h["delay"] + h["logged"]
        worst = max(h["logged"], h["served"])
        print(
            f"{h['hour']:%Y-%m-%d %H:%M} {h['delay']:>13.1f} {h['logged']:>11.2f} "
            f"{h['served']:>11.2f} {cron:>10.1f} {worst / cron:>6.3f}"
        )
    worst = max(max(h["logged"], h["served"]) for h in hours)
    verdict = "meets" if worst <= GOAL_SECONDS else "MISSES"
    print(f"worst publish-to-served {worst:.2f} s: {verdict} the {GOAL_SECONDS:.0f} s goal")
    verdict = "meets" if rate >= GOAL_REPLAY else "MISSES"
    print(
        f"replay {rate:.0f} simulated h/min (without training) vs update-only {floor:.0f} h/min "
        f"(ratio {rate / floor:.2f}): {verdict} the {GOAL_REPLAY:.0f} h/min goal"
    )
