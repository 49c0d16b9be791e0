"""Time in candlecast: UTC everywhere, one parser, one ``HOUR``.

Candles are keyed by their open time; features, labels and forecasts by the
close time (open + ``HOUR``). Every time a user, a file or the exchange gives
us goes through :func:`utc`, so naive values mean UTC in every stage.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

HOUR = pd.Timedelta(hours=1)


def utc(value: str | datetime | pd.Timestamp | int | float) -> pd.Timestamp:
    """``value`` as a timezone-aware UTC timestamp; naive input is taken to be UTC.

    Numbers are Unix seconds (Feast and the exchange use them). Raises
    ``ValueError`` naming the value when it is not a time.
    """
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            stamp = pd.Timestamp(value, unit="s", tz="UTC")
        else:
            stamp = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    if stamp is pd.NaT or pd.isna(stamp):
        raise ValueError(f"{value!r} is not a date (use 2024-01-01 or ISO-8601)")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def utc_now() -> pd.Timestamp:
    """The current instant in UTC."""
    return pd.Timestamp.now(tz="UTC")
