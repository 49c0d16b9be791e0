"""The loop's clock: the wall clock live, a simulated one in a replay.

Every step of a cycle reads time from here, never from the system, so a replay
runs the very same code with the clock set to each hour's close plus the publish
delay. ``sleep`` returns False when the loop was asked to stop (SIGTERM) during
the wait; a replay's sleep advances simulated time without waiting.
"""

from __future__ import annotations

import threading
from datetime import datetime

import pandas as pd

from candlecast.times import utc, utc_now


class Clock:
    """Wall-clock time, with a wait that a stop request interrupts."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    def now(self) -> pd.Timestamp:
        return utc_now()

    def now_datetime(self) -> datetime:
        return self.now().to_pydatetime()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; False if a stop was requested meanwhile."""
        return not self.stop.wait(max(0.0, seconds))


class ReplayClock(Clock):
    """Simulated time: ``set`` it to an instant; ``sleep`` moves it forward at once."""

    def __init__(self, start: pd.Timestamp, stop: threading.Event | None = None) -> None:
        super().__init__(stop)
        self.current = utc(start)

    def now(self) -> pd.Timestamp:
        return self.current

    def set(self, when: pd.Timestamp) -> None:
        self.current = utc(when)

    def sleep(self, seconds: float) -> bool:
        self.current += pd.Timedelta(seconds=max(0.0, seconds))
        return not self.stop.is_set()
