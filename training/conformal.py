"""Walk-forward intervals: calibrated on the past only, exactly as they would have been served.

The walk-forward predictions of a period get a volatility scale per hour
(:func:`attach_scale`, :func:`candlecast.intervals.rolling_scale` over the dataset's
closes). :func:`sequential` then replays the calibration a day at a time: the hours
of day ``D`` get intervals from the scores of the out-of-sample forecasts whose
outcome was known when ``D`` began, over the :data:`WINDOW` before it. The first
days of a period have too few such scores and get no interval; the metrics count the
hours that have one. Persistence is calibrated the same way on its own errors, so
every interval is judged beside the baseline's on the same hours.

:func:`final` is the calibration stored with a model: the scores of the whole
walk-forward period (all known by its cut), so serving uses only the past too.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from candlecast import intervals
from candlecast.intervals import LEVELS, Calibration, level_key
from candlecast.metrics import brier, interval_metrics
from candlecast.times import HOUR

#: How far back a calibration reads, and how often the walk-forward recalibrates
#: (the live loop retrains, and so recalibrates, every 24 h by default).
WINDOW = pd.Timedelta(days=30)
RECALIBRATE = pd.Timedelta(hours=24)
#: The forecasts that get intervals: the model's (``predicted``) and persistence's.
FORECASTS = {"model": "predicted", "persistence": "price_now"}


def attach_scale(predictions: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` with ``sigma``: the volatility scale at each prediction hour.

    ``frame`` is the dataset (``event_timestamp``, ``price_now``): its closes, placed on
    an hourly grid (missing hours NaN), feed :func:`candlecast.intervals.rolling_scale`.
    """
    closes = frame.set_index("event_timestamp")["price_now"].sort_index()
    closes = closes[~closes.index.duplicated()]
    grid = pd.date_range(closes.index.min(), closes.index.max(), freq="h")
    hourly = closes.reindex(grid)
    sigma = pd.Series(intervals.rolling_scale(hourly.to_numpy()), index=grid)
    out = predictions.copy()
    out["sigma"] = sigma.reindex(pd.DatetimeIndex(out["event_timestamp"])).to_numpy()
    return out


def scores(predictions: pd.DataFrame, column: str) -> np.ndarray:
    """Scale-free errors of the forecast in ``column`` (see :mod:`candlecast.intervals`)."""
    p = predictions
    return intervals.scores(p["next_close"], p[column], p["price_now"], p["sigma"])


def sequential(predictions: pd.DataFrame) -> pd.DataFrame:
    """Intervals and ``p_up`` of every forecast in :data:`FORECASTS`, calibrated day by day.

    Adds ``{name}_lower_80`` .. ``{name}_upper_95`` and ``{name}_p_up`` (NaN where no
    calibration was possible yet, or the scale is unknown).
    """
    out = predictions.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    stamps = out["event_timestamp"]
    for name, column in FORECASTS.items():
        values = {c: np.full(len(out), math.nan) for c in _columns(name)}
        score = scores(out, column)
        start = stamps.min().floor("D")
        for block in pd.date_range(start, stamps.max() + HOUR, freq=RECALIBRATE):
            known = (stamps + HOUR <= block) & (stamps > block - WINDOW)
            calibration = intervals.calibrate(score[known.to_numpy()])
            rows = np.flatnonzero(((stamps >= block) & (stamps < block + RECALIBRATE)).to_numpy())
            if calibration is not None and rows.size:
                _fill(values, rows, calibration, out.iloc[rows], column)
        for key, array in values.items():
            out[key] = array
    return out


def _columns(name: str) -> list[str]:
    bounds = [f"{name}_{side}_{level_key(lv)}" for lv in LEVELS for side in ("lower", "upper")]
    return [*bounds, f"{name}_p_up"]


def _fill(values, rows, calibration: Calibration, part: pd.DataFrame, column: str) -> None:
    predicted, current = part[column].to_numpy(float), part["price_now"].to_numpy(float)
    sigma = part["sigma"].to_numpy(float)
    name = next(n for n, c in FORECASTS.items() if c == column)
    for i, row in enumerate(rows):
        if not math.isfinite(sigma[i]):
            continue
        for key, (low, high) in intervals.interval(
            calibration, predicted[i], current[i], sigma[i]
        ).items():
            values[f"{name}_lower_{key}"][row] = low
            values[f"{name}_upper_{key}"][row] = high
        values[f"{name}_p_up"][row] = intervals.p_up(
            calibration, predicted[i], current[i], sigma[i]
        )


def summary(predictions: pd.DataFrame) -> dict[str, dict]:
    """Interval metrics of the model and of persistence on the same hours.

    Per forecast: ``coverage_80``, ``coverage_95``, ``interval_width_80``,
    ``interval_width_95``, ``interval_score_80``, ``interval_score_95``, ``brier_up``
    and ``interval_n`` (hours with an interval for both, so the two are comparable).
    """
    done = sequential(predictions)
    both = np.ones(len(done), dtype=bool)
    for name in FORECASTS:
        both &= np.isfinite(done[f"{name}_lower_80"].to_numpy())
    rows = done[both]
    found = {}
    for name in FORECASTS:
        figures: dict = {"interval_n": len(rows)}
        for level in LEVELS:
            key = level_key(level)
            m = interval_metrics(
                rows["next_close"], rows[f"{name}_lower_{key}"], rows[f"{name}_upper_{key}"], level
            )
            figures[f"coverage_{key}"] = m["coverage"]
            figures[f"interval_width_{key}"] = m["width"]
            figures[f"interval_score_{key}"] = m["interval_score"]
        figures["brier_up"] = brier(rows[f"{name}_p_up"], rows["next_close"], rows["price_now"])
        found[name] = figures
    return found


def final(predictions: pd.DataFrame) -> dict[str, Calibration | None]:
    """The calibrations stored with a model: its and persistence's, from the last WINDOW."""
    latest = predictions["event_timestamp"].max()
    recent = predictions[predictions["event_timestamp"] > latest - WINDOW]
    return {name: intervals.calibrate(scores(recent, column)) for name, column in FORECASTS.items()}
