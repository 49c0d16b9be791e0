"""Forecast metrics: one formula for the walk-forward evaluation and the live log.

Training judges every model with :func:`forecast_metrics` (``training.evaluate``),
and live performance (``candlecast.performance``) scores logged forecasts with the
same function, so an MAE or a directional accuracy means the same thing in a
report, in the registry and in ``candlecast performance``. Plain numpy, no stage.
"""

from __future__ import annotations

import math

import numpy as np

_Z95 = 1.959963984540054


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
