"""Forecast metrics: one formula for the walk-forward evaluation and the live log.

Training judges every model with :func:`forecast_metrics` (``training.evaluate``),
its intervals with :func:`interval_metrics` and ``p_up`` with :func:`brier`, and
tests it against persistence with :func:`diebold_mariano`;
and live performance (``candlecast.performance``) scores logged forecasts with the
same function, so an MAE or a directional accuracy means the same thing in a
report, in the registry and in ``candlecast performance``. Plain numpy, no stage.
"""

from __future__ import annotations

import math

import numpy as np

_Z95 = 1.959963984540054
#: A ratio below 1 beats persistence only with a Diebold-Mariano p-value below this.
DM_ALPHA = 0.05


def wilson_band(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (valid near 0, 1 and small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def forecast_metrics(actual: np.ndarray, predicted: np.ndarray, current: np.ndarray) -> dict:
    """MAE, RMSE, MAPE (%), directional accuracy and its 95% band for price forecasts.

    ``current`` is the last known close when the forecast is made; direction is
    "up or not" relative to it. A forecast of exactly no change makes no
    direction call and counts as half right, so persistence sits at chance (0.5).
    """
    actual, predicted, current = (np.asarray(a, dtype=float) for a in (actual, predicted, current))
    error = predicted - actual
    n = int(actual.size)
    true_move = np.sign(actual - current)
    pred_move = np.sign(predicted - current)
    hits = np.where(pred_move == 0, 0.5, (pred_move == true_move).astype(float))
    correct = float(hits.sum())
    low, high = wilson_band(round(correct), n)
    return {
        "mae": float(np.mean(np.abs(error))) if n else math.nan,
        "rmse": float(np.sqrt(np.mean(error**2))) if n else math.nan,
        "mape": float(np.mean(np.abs(error) / np.abs(actual)) * 100) if n else math.nan,
        "directional_accuracy": correct / n if n else math.nan,
        "directional_accuracy_ci95": [low, high],
        "up_rate": float(np.mean(true_move > 0)) if n else math.nan,
        "n": n,
    }


def interval_metrics(actual, lower, upper, level: float) -> dict:
    """Coverage, mean width and the Winkler (interval) score of central intervals.

    Rows without an interval (NaN bounds) are left out; ``n`` counts the rest. The
    interval score adds ``2 / (1 - level)`` times the miss to the width, so a narrow
    interval that misses pays for it (lower is better; Gneiting & Raftery 2007).
    """
    actual, lower, upper = (np.asarray(a, dtype=float) for a in (actual, lower, upper))
    keep = np.isfinite(lower) & np.isfinite(upper) & np.isfinite(actual)
    actual, lower, upper = actual[keep], lower[keep], upper[keep]
    n = int(actual.size)
    if not n:
        return {"coverage": math.nan, "width": math.nan, "interval_score": math.nan, "n": 0}
    width = upper - lower
    penalty = 2.0 / (1.0 - level)
    miss = np.maximum(lower - actual, 0.0) + np.maximum(actual - upper, 0.0)
    return {
        "coverage": float(np.mean((actual >= lower) & (actual <= upper))),
        "width": float(np.mean(width)),
        "interval_score": float(np.mean(width + penalty * miss)),
        "n": n,
    }


def brier(p_up, actual, current) -> float:
    """Brier score of P(next close > current) against what happened (NaN p: left out)."""
    p_up, actual, current = (np.asarray(a, dtype=float) for a in (p_up, actual, current))
    keep = np.isfinite(p_up)
    if not keep.any():
        return math.nan
    up = (actual[keep] > current[keep]).astype(float)
    return float(np.mean((p_up[keep] - up) ** 2))


def diebold_mariano(model_errors, naive_errors) -> float:
    """Two-sided p-value of the Diebold-Mariano test of equal mean absolute error.

    One-step forecasts: the loss differential ``|e_model| - |e_naive|`` with a
    Newey-West (HAC, Bartlett) variance at ``floor(4 (n / 100) ** (2 / 9))`` lags, the
    Harvey-Leybourne-Newbold small-sample factor and Student's t with n - 1 degrees
    of freedom. NaN with fewer than 10 pairs.
    """
    from scipy import stats

    d = np.abs(np.asarray(model_errors, dtype=float)) - np.abs(np.asarray(naive_errors, float))
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n < 10:
        return math.nan
    centred = d - d.mean()
    lags = int(4 * (n / 100) ** (2 / 9))
    variance = float(centred @ centred) / n
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1.0 - lag / (lags + 1)
        variance += 2.0 * weight * float(centred[lag:] @ centred[:-lag]) / n
    if variance <= 0:  # the same differential every hour: certain, unless it is zero
        return 1.0 if d.mean() == 0 else 0.0
    statistic = d.mean() / math.sqrt(variance / n) * math.sqrt((n - 1) / n)
    return float(2.0 * stats.t.sf(abs(statistic), df=n - 1))


def beats_persistence(ratio: float | None, dm_pvalue: float | None) -> bool:
    """A lower MAE than persistence that the Diebold-Mariano test says is not luck.

    A ratio of 0.9991 with p = 0.6 is a tie, not a win. Training records it; serving
    makes only such a champion the default.
    """
    try:
        ratio, dm_pvalue = float(ratio), float(dm_pvalue)
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(ratio) and math.isfinite(dm_pvalue)):
        return False
    return bool(ratio < 1 and dm_pvalue < DM_ALPHA)
