"""Candle sanity checks shared by every way candles enter the store.

The exchange client, ``load-csv`` and ``sample`` all pass through here, so a
candle that is not finite, not internally consistent, not on the hour or not
yet closed is rejected the same way whatever its source: with the symbol and
time named, never silently stored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from candlecast.errors import Failure
from candlecast.times import HOUR, utc_now

PRICE_COLUMNS = ["open", "high", "low", "close"]
NUMBER_COLUMNS = [*PRICE_COLUMNS, "volume"]


class CandleValidationError(Failure, ValueError):
    """A candle that must not be stored; the message names symbol, time and reason."""


def row_problems(frame: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.Series:
    """One reason string per row ("" when the candle is sound), aligned with ``frame``.

    Returning reasons rather than raising lets ``load-csv`` report every bad line
    with its number, while :func:`validate_candles` raises on the first. A row's
    reason is its first failed check. The checks run on NumPy arrays: a backfill
    validates every page of 300 candles, and pandas' per-column operations made that
    ~45 % of a backfill's client time.
    """
    values = frame[NUMBER_COLUMNS].to_numpy(dtype="float64")
    opens, highs, lows, closes, volumes = values.T
    times = frame["time"]
    with np.errstate(invalid="ignore"):  # NaN compares False; such rows fail check 1
        checks = [
            (~np.isfinite(values).all(axis=1), "non-finite value"),
            ((values[:, :4] <= 0).any(axis=1), "price <= 0"),
            (lows > np.fmin(opens, closes), "low above open/close"),  # fmin skips NaN
            (highs < np.fmax(opens, closes), "high below open/close"),
            (volumes < 0, "negative volume"),
            ((times != times.dt.floor("h")).to_numpy(), "time not on the hour"),
        ]
    if now is not None:
        closed = (times + HOUR > now).to_numpy()
        checks.append((closed, "candle not closed yet (still-open hour)"))
    masks, reasons = zip(*checks, strict=True)
    first = np.select(masks, reasons, default="")
    return pd.Series(first, index=frame.index, dtype=object)


def validate_candles(frame: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Return ``frame`` unchanged if every candle is sound, else raise naming the first bad one."""
    if frame.empty:
        return frame
    reasons = row_problems(frame, now)
    bad = reasons[reasons != ""]
    if not bad.empty:
        row = frame.loc[bad.index[0]]
        raise CandleValidationError(
            f"invalid candle for {row['symbol']} at {describe_time(row['time'])}: {bad.iloc[0]}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
        )
    return frame


def describe_time(value: pd.Timestamp) -> str:
    """ISO-8601 UTC text used in every message about a candle."""
    return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_closed_end(now: pd.Timestamp | None = None) -> pd.Timestamp:
    """Exclusive end of the closed candles: the open time of the still-open hour."""
    return (now or utc_now()).floor("h")
