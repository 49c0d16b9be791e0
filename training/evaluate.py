"""Forecast metrics, always beside the persistence forecast on the same rows.

Persistence ("the next close equals the current close") is the floor every
model must beat: on hourly prices it is hard to beat, and a model that beats
it by a wide margin is more likely leaking the future than forecasting it.
The metric formulas themselves live in the core (:mod:`candlecast.metrics`), so the
live log (``candlecast performance``) computes them exactly as the walk-forward does.
"""

from __future__ import annotations

import math

import numpy as np

from candlecast.metrics import (
    DM_ALPHA,
    beats_persistence,
    diebold_mariano,
    forecast_metrics,
    wilson_band,
)

__all__ = [
    "DM_ALPHA",
    "INTERVAL_KEYS",
    "LEAKAGE_MARGIN",
    "METRIC_KEYS",
    "beats_persistence",
    "compare_to_persistence",
    "forecast_metrics",
    "is_leakage_suspect",
    "wilson_band",
]

#: A model whose MAE is more than this fraction below persistence is suspect.
LEAKAGE_MARGIN = 0.05
#: The metric keys every report and registry entry carries (contract with the service).
METRIC_KEYS = ("mae", "rmse", "mape", "directional_accuracy", "mae_ratio_vs_persistence", "n")
#: Interval metrics (``training.conformal.summary``), beside persistence's on the same hours.
INTERVAL_KEYS = (
    "coverage_80",
    "coverage_95",
    "interval_width_80",
    "interval_width_95",
    "interval_score_80",
    "interval_score_95",
    "brier_up",
    "interval_n",
)


def compare_to_persistence(actual: np.ndarray, predicted: np.ndarray, current: np.ndarray) -> dict:
    """Metrics of a model and of persistence on the same rows, with the ratio and flags."""
    model = forecast_metrics(actual, predicted, current)
    naive = forecast_metrics(actual, current, current)
    ratio = model["mae"] / naive["mae"] if naive["mae"] > 0 else math.nan
    model["mae_ratio_vs_persistence"] = ratio
    naive["mae_ratio_vs_persistence"] = 1.0
    actual, predicted, current = (np.asarray(a, dtype=float) for a in (actual, predicted, current))
    model["dm_pvalue"] = diebold_mariano(predicted - actual, current - actual)
    return {
        "metrics": model,
        "persistence": naive,
        "beats_persistence": beats_persistence(ratio, model["dm_pvalue"]),
        "leakage_suspect": is_leakage_suspect(ratio),
    }


def is_leakage_suspect(mae_ratio: float) -> bool:
    """More than 5% better than persistence on hourly prices: check for a peek ahead."""
    return bool(mae_ratio < 1 - LEAKAGE_MARGIN)
