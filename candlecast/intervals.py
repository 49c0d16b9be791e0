"""Calibrated uncertainty of a next-hour forecast: central intervals and P(up).

A next-hour point forecast is rarely better than the current price; what does move
at one hour is volatility. So every forecast carries conformal intervals scaled by
a volatility forecast, and ``p_up``, the probability that the next close is above
the current one:

* The **scale** ``sigma`` is the sample standard deviation of the hourly log returns
  over the 24 hours before the forecast (:func:`scale`, from the 25 closes every
  served row carries: ``price_24_hour_ago`` .. ``close``). Training computes it from
  the dataset's closes with the same function.
* The **score** of a past forecast is its error in units of that scale:
  ``(actual - predicted) / (current * sigma)``, so a calm hour and a wild hour
  weigh the same.
* **Calibration** (:func:`calibrate`) takes the scores of out-of-sample forecasts
  whose outcome was known before the period it serves (walk-forward, past only) and
  asks MAPIE's split-conformal regressor for the quantiles of their absolute values
  at 80 % and 95 %; it also keeps the signed scores' percentiles, from which
  :func:`p_up` reads the chance that the error lifts the price above the current one.
* A forecast's interval is ``predicted ± q * current * sigma`` (:func:`interval`).

Too few scores for a level (MAPIE needs more than 1 / (1 - level)) would give an
infinite bound: the quantile is then clipped to the largest score seen and the
calibration says so (``clipped``). Plain numpy at serving time; MAPIE is imported
only to calibrate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LEVELS = (0.8, 0.95)
#: Closes :func:`scale` reads (24 hourly returns) and the fewest returns it accepts.
WINDOW = 25
MIN_RETURNS = 12
#: Percentiles of the signed scores kept for :func:`p_up`.
PERCENTILES = np.linspace(0.0, 100.0, 101)
#: The fewest scores a calibration accepts.
MIN_SCORES = 48


def level_key(level: float) -> str:
    """``"80"`` for 0.8: the suffix of ``interval_80`` and of the metrics."""
    return f"{round(level * 100):d}"


@dataclass(frozen=True)
class Calibration:
    """What a served model needs to turn a point forecast into intervals and P(up)."""

    n: int
    quantiles: Mapping[str, float]  # level key -> quantile of |score|
    percentiles: tuple[float, ...]  # signed scores at PERCENTILES
    clipped: tuple[str, ...] = ()  # levels whose quantile was clipped (too few scores)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "quantiles": dict(self.quantiles),
            "percentiles": [float(p) for p in self.percentiles],
            "clipped": list(self.clipped),
            **dict(self.extra),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any] | None) -> Calibration | None:
        """The stored calibration, or None when the model has none (older versions)."""
        if not body or "quantiles" not in body:
            return None
        known = {"n", "quantiles", "percentiles", "clipped"}
        return cls(
            n=int(body["n"]),
            quantiles={str(k): float(v) for k, v in body["quantiles"].items()},
            percentiles=tuple(float(p) for p in body["percentiles"]),
            clipped=tuple(body.get("clipped", ())),
            extra={k: v for k, v in body.items() if k not in known},
        )


def scale(closes: Sequence[float | None] | np.ndarray) -> float | None:
    """Std (ddof 1) of the hourly log returns among ``closes`` (oldest first, hourly).

    A missing close (None/NaN: an hour without trades) drops the two returns around
    it; with fewer than :data:`MIN_RETURNS` returns left the scale is unknown (None).
    """
    values = np.array([math.nan if c is None else float(c) for c in closes], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = np.diff(np.log(values))
    returns = returns[np.isfinite(returns)]
    if returns.size < MIN_RETURNS:
        return None
    sigma = float(np.std(returns, ddof=1))
    return sigma if sigma > 0 else None


def rolling_scale(closes: np.ndarray) -> np.ndarray:
    """:func:`scale` of each hour's window ``closes[t - 24 .. t]`` (NaN when unknown).

    ``closes`` is an hourly series (NaN for missing hours); the first 24 hours are NaN.
    """
    closes = np.asarray(closes, dtype=float)
    out = np.full(closes.shape, math.nan)
    for t in range(WINDOW - 1, closes.size):
        sigma = scale(closes[t - WINDOW + 1 : t + 1])
        out[t] = math.nan if sigma is None else sigma
    return out


def scores(actual, predicted, current, sigma) -> np.ndarray:
    """Errors in units of the volatility scale: ``(actual - predicted) / (current * sigma)``."""
    actual, predicted, current, sigma = (
        np.asarray(a, dtype=float) for a in (actual, predicted, current, sigma)
    )
    return (actual - predicted) / (current * sigma)


def calibrate(values: np.ndarray, levels: Sequence[float] = LEVELS) -> Calibration | None:
    """Split-conformal quantiles (MAPIE) of ``values`` (finite scores); None if too few."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < MIN_SCORES:
        return None
    found = _conformal_quantiles(values, levels)
    quantiles, clipped = {}, []
    for level in levels:
        q = found.get(level)
        if q is None:
            q = float(np.max(np.abs(values)))
            clipped.append(level_key(level))
        quantiles[level_key(level)] = q
    percentiles = tuple(float(p) for p in np.percentile(values, PERCENTILES))
    return Calibration(int(values.size), quantiles, percentiles, tuple(clipped))


def _conformal_quantiles(values: np.ndarray, levels: Sequence[float]) -> dict[float, float]:
    """MAPIE's split-conformal half-width per level for a forecast equal to 0.

    Levels with too few scores (MAPIE's bound would be infinite) are left out.
    """
    from mapie.regression import SplitConformalRegressor

    usable = [lv for lv in levels if values.size > max(1 / (1 - lv), 1 / lv)]
    if not usable:
        return {}
    zeros = np.zeros((values.size, 1))
    regressor = SplitConformalRegressor(_given(), confidence_level=usable, prefit=True)
    regressor.conformalize(zeros, values)
    _, bounds = regressor.predict_interval(np.zeros((1, 1)))
    found = {lv: float(bounds[0, 1, i]) for i, lv in enumerate(usable)}
    return {lv: q for lv, q in found.items() if math.isfinite(q)}


def interval(
    calibration: Calibration, predicted: float, current: float, sigma: float
) -> dict[str, tuple[float, float]]:
    """Central intervals by level key: ``predicted ± q * current * sigma``."""
    unit = current * sigma
    return {
        k: (predicted - q * unit, predicted + q * unit) for k, q in calibration.quantiles.items()
    }


def p_up(calibration: Calibration, predicted: float, current: float, sigma: float) -> float:
    """P(next close > current): the share of scores above ``(current - predicted) / unit``."""
    threshold = (current - predicted) / (current * sigma)
    below = np.interp(threshold, calibration.percentiles, PERCENTILES / 100.0, left=0.0, right=1.0)
    return float(1.0 - below)


def describe(
    calibration: Calibration | None, predicted: float, current: float, sigma: float | None
) -> dict[str, Any]:
    """The fields a forecast carries: ``interval_80``, ``interval_95``, ``p_up`` (None
    when the model has no calibration or the scale is unknown) and ``interval_clipped``."""
    fields_: dict[str, Any] = {f"interval_{level_key(lv)}": None for lv in LEVELS}
    fields_["p_up"] = None
    fields_["interval_clipped"] = False
    if calibration is None or sigma is None or not (current > 0):
        return fields_
    for key, (low, high) in interval(calibration, predicted, current, sigma).items():
        fields_[f"interval_{key}"] = [float(low), float(high)]
    fields_["p_up"] = p_up(calibration, predicted, current, sigma)
    fields_["interval_clipped"] = bool(calibration.clipped)
    return fields_


def _given():
    """A fitted "prefit" regressor whose prediction is its input (MAPIE then scores y - 0).

    Built on first use: sklearn is imported only when a calibration is computed.
    """
    global _GIVEN
    if _GIVEN is None:
        from sklearn.base import BaseEstimator, RegressorMixin

        class Given(RegressorMixin, BaseEstimator):
            def fit(self, x, y):
                self.n_features_in_ = 1
                return self

            def predict(self, x):
                return np.asarray(x, dtype=float)[:, 0]

        _GIVEN = Given().fit(np.zeros((2, 1)), np.zeros(2))
    return _GIVEN


_GIVEN = None
