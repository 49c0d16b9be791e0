"""Metrics against hand-computed values, the binomial band and the leakage flag."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluate import compare_to_persistence, forecast_metrics, wilson_band


def test_metrics_match_hand_computation() -> None:
    current = np.array([100.0, 100.0, 100.0, 100.0])
    actual = np.array([110.0, 90.0, 100.0, 105.0])
    predicted = np.array([105.0, 95.0, 102.0, 100.0])
    m = forecast_metrics(actual, predicted, current)
    # errors: -5, +5, +2, -5
    assert m["mae"] == pytest.approx(17 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((25 + 25 + 4 + 25) / 4))
    assert m["mape"] == pytest.approx(100 * (5 / 110 + 5 / 90 + 2 / 100 + 5 / 105) / 4)
    # up/up hit, down/down hit, up vs flat miss, no call (0.5)
    assert m["directional_accuracy"] == pytest.approx(2.5 / 4)
    assert m["n"] == 4
    assert m["up_rate"] == pytest.approx(0.5)


def test_persistence_is_ratio_one_and_chance_direction() -> None:
    rng = np.random.default_rng(1)
    current = 100 + rng.normal(0, 1, 200)
    actual = current + rng.normal(0, 1, 200)
    out = compare_to_persistence(actual, current, current)
    assert out["metrics"]["mae_ratio_vs_persistence"] == pytest.approx(1.0)
    assert out["persistence"]["directional_accuracy"] == pytest.approx(0.5)
    assert not out["beats_persistence"]
    assert not out["leakage_suspect"]


def test_ratio_beats_and_leakage_flag() -> None:
    current = np.full(100, 100.0)
    actual = current + np.where(np.arange(100) % 2 == 0, 10.0, -10.0)
    slightly = compare_to_persistence(actual, current + 0.04 * (actual - current), current)
    assert slightly["metrics"]["mae_ratio_vs_persistence"] == pytest.approx(0.96)
    assert slightly["beats_persistence"] and not slightly["leakage_suspect"]
    peeking = compare_to_persistence(actual, actual + 0.5, current)
    assert peeking["metrics"]["mae_ratio_vs_persistence"] == pytest.approx(0.05)
    assert peeking["leakage_suspect"]


def test_wilson_band_known_values() -> None:
    low, high = wilson_band(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = wilson_band(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
