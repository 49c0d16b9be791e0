"""Forecast metrics, always beside the persistence forecast on the same rows.

Persistence ("the next close equals the current close") is the floor every
model must beat: on hourly prices it is hard to beat, and a model that beats
it by a wide margin is more likely leaking the future than forecasting it.
"""

from __future__ import annotations

import math

import numpy as np

#: A model whose MAE is more than this fraction below persistence is suspect.
LEAKAGE_MARGIN = 0.05
_Z95 = 1.959963984540054
#: The metric keys every report and registry entry carries (contract with the service).
METRIC_KEYS = ("mae", "rmse", "mape", "directional_accuracy", "mae_ratio_vs_persistence", "n")


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


def compare_to_persistence(actual: np.ndarray, predicted: np.ndarray, current: np.ndarray) -> dict:
    """Metrics of a model and of persistence on the same rows, with the ratio and flags."""
    model = forecast_metrics(actual, predicted, current)
    naive = forecast_metrics(actual, current, current)
    ratio = model["mae"] / naive["mae"] if naive["mae"] > 0 else math.nan
    model["mae_ratio_vs_persistence"] = ratio
    naive["mae_ratio_vs_persistence"] = 1.0
    return {
        "metrics": model,
        "persistence": naive,
        "beats_persistence": bool(ratio < 1),
        "leakage_suspect": is_leakage_suspect(ratio),
    }


def is_leakage_suspect(mae_ratio: float) -> bool:
    """More than 5% better than persistence on hourly prices: check for a peek ahead."""
    return bool(mae_ratio < 1 - LEAKAGE_MARGIN)
