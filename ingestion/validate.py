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
    with its number, while :func:`validate_candles` raises on the first.
    """
    reasons = pd.Series("", index=frame.index, dtype=object)
    values = frame[NUMBER_COLUMNS].astype("float64")
    checks = [
        (~np.isfinite(values).all(axis=1), "non-finite value"),
        ((values[PRICE_COLUMNS] <= 0).any(axis=1), "price <= 0"),
        (values["low"] > values[["open", "close"]].min(axis=1), "low above open/close"),
        (values["high"] < values[["open", "close"]].max(axis=1), "high below open/close"),
        (values["volume"] < 0, "negative volume"),
        (frame["time"] != frame["time"].dt.floor("h"), "time not on the hour"),
    ]
    if now is not None:
        checks.append((frame["time"] + HOUR > now, "candle not closed yet (still-open hour)"))
    for mask, reason in checks:
        reasons[mask & (reasons == "")] = reason
    return reasons


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
