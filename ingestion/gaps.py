"""Gap detection: hours with no candle, reported and never filled.

Coinbase publishes no candle for an hour without trades, so a missing hour is
a fact about the market (or an outage), not something to invent a candle for.
Backfill, ``status`` and the update job report gaps with these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from candlecast.times import HOUR
from ingestion.validate import describe_time


@dataclass(frozen=True)
class Gap:
    """A run of missing hourly candles: ``first`` .. ``last`` open times, inclusive."""

    first: pd.Timestamp
    last: pd.Timestamp

    @property
    def hours(self) -> int:
        return int((self.last - self.first) / HOUR) + 1

    def __str__(self) -> str:
        span = describe_time(self.first)
        if self.hours > 1:
            span += f" .. {describe_time(self.last)}"
        return f"{span} ({self.hours} h)"


def find_gaps(
    times: Iterable[pd.Timestamp] | pd.Series,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> list[Gap]:
    """Missing hours among ``times``, within ``[start, end)`` when given.

    Without ``start``/``end`` only holes between the first and last candle count;
    with them, missing hours at the edges of the window count too (a backfill
    asked for them and the exchange had none).
    """
    series = times if isinstance(times, pd.Series) else pd.Series(list(times))
    stamps = pd.DatetimeIndex(pd.to_datetime(series, utc=True)).unique()
    stamps = stamps.sort_values()
    edges = []
    if start is not None:
        edges.append(pd.DatetimeIndex([pd.Timestamp(start) - HOUR], tz="UTC"))
    edges.append(stamps)
    if end is not None:
        edges.append(pd.DatetimeIndex([pd.Timestamp(end)], tz="UTC"))
    points = edges[0].append(edges[1:]) if len(edges) > 1 else stamps
    if len(points) < 2:
        return []
    points = points.as_unit("us")
    holes = np.flatnonzero((points[1:] - points[:-1]) > HOUR)  # vectorised: 17,520 h a symbol
    return [Gap(first=points[i] + HOUR, last=points[i + 1] - HOUR) for i in holes]


def missing_hours(gaps: list[Gap]) -> int:
    return sum(gap.hours for gap in gaps)


def summarize_gaps(gaps: list[Gap], limit: int = 5) -> str:
    """``"3 gaps, 7 missing hours: <range>, <range>, ... (+1 more)"`` or ``"no gaps"``."""
    if not gaps:
        return "no gaps"
    shown = ", ".join(str(gap) for gap in gaps[:limit])
    more = f", ... (+{len(gaps) - limit} more)" if len(gaps) > limit else ""
    noun = "gap" if len(gaps) == 1 else "gaps"
    return f"{len(gaps)} {noun}, {missing_hours(gaps)} missing hours: {shown}{more}"
