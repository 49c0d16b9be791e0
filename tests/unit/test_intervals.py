"""Calibrated intervals and P(up) (``candlecast.intervals``, ``training.conformal``) and the
metrics that judge them (``candlecast.metrics``): formulas on hand-made numbers, and the
walk-forward calibration's honesty (past only; coverage near nominal on the GARCH market)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from candlecast import intervals
from candlecast.metrics import beats_persistence, brier, diebold_mariano, interval_metrics
from ingestion.sample import synthetic_candles
from training import conformal


def test_scale_is_the_std_of_hourly_log_returns_and_skips_gaps():
    closes = 100 * np.exp(np.cumsum(np.r_[0, np.tile([0.01, -0.01], 12)]))
    assert intervals.scale(closes) == pytest.approx(np.std(np.diff(np.log(closes)), ddof=1))
    gapped = list(closes)
    gapped[5] = None  # an hour without trades drops the two returns around it
    kept = np.diff(np.log(np.asarray(closes, float)))
    kept = np.delete(kept, [4, 5])
    assert intervals.scale(gapped) == pytest.approx(np.std(kept, ddof=1))
    assert intervals.scale([100.0] * 5) is None  # too few returns
    assert intervals.scale([100.0] * 25) is None  # no movement: no scale


def test_calibration_quantiles_are_mapies_split_conformal_ones():
    scores = np.random.default_rng(1).standard_t(5, 400)
    calibration = intervals.calibrate(scores)
    n = scores.size
    for level, key in ((0.8, "80"), (0.95, "95")):
        rank = math.ceil((n + 1) * level)  # the finite-sample conformal quantile
        assert calibration.quantiles[key] == pytest.approx(np.sort(np.abs(scores))[rank - 1])
    assert calibration.n == n and calibration.clipped == ()
    assert intervals.calibrate(scores[:10]) is None  # fewer than MIN_SCORES


def test_a_level_without_enough_scores_is_clipped_and_says_so():
    scores = np.random.default_rng(2).normal(size=intervals.MIN_SCORES)
    calibration = intervals.calibrate(scores, levels=(0.8, 0.99))  # 0.99 needs > 100
    assert calibration.clipped == ("99",)
    assert calibration.quantiles["99"] == pytest.approx(np.max(np.abs(scores)))
    body = intervals.describe(calibration, 100.0, 100.0, 0.01)
    assert body["interval_clipped"] is True and math.isfinite(body["interval_80"][1])


def test_intervals_scale_with_volatility_and_p_up_follows_the_forecast():
    calibration = intervals.calibrate(np.random.default_rng(3).normal(size=2000))
    calm = intervals.describe(calibration, 100.0, 100.0, 0.005)
    wild = intervals.describe(calibration, 100.0, 100.0, 0.02)
    width = lambda body, key: body[key][1] - body[key][0]  # noqa: E731
    assert width(wild, "interval_80") == pytest.approx(4 * width(calm, "interval_80"))
    assert width(calm, "interval_95") > width(calm, "interval_80")
    assert calm["interval_80"][0] < 100.0 < calm["interval_80"][1]
    assert calm["p_up"] == pytest.approx(0.5, abs=0.03)
    up = intervals.describe(calibration, 100.5, 100.0, 0.005)["p_up"]
    down = intervals.describe(calibration, 99.5, 100.0, 0.005)["p_up"]
    assert down < 0.5 < up and up == pytest.approx(0.841, abs=0.03)  # Phi(1)
    missing = intervals.describe(calibration, 100.0, 100.0, None)
    assert missing["interval_80"] is None and missing["p_up"] is None


def test_calibration_round_trips_through_model_metadata():
    calibration = intervals.calibrate(np.random.default_rng(4).normal(size=300))
    again = intervals.Calibration.from_dict(calibration.to_dict())
    assert again == calibration
    assert intervals.Calibration.from_dict({}) is None


def test_interval_metrics_coverage_width_and_winkler_score():
    actual = np.array([10.0, 12.0, 7.0, np.nan])
    lower, upper = np.array([9.0, 9.0, 9.0, 9.0]), np.array([11.0, 11.0, 11.0, 11.0])
    m = interval_metrics(actual, lower, upper, level=0.8)
    assert m["n"] == 3 and m["coverage"] == pytest.approx(1 / 3) and m["width"] == 2.0
    # misses of 1 and 2 cost 2 / 0.2 = 10 times each
    assert m["interval_score"] == pytest.approx(2.0 + 10 * (0 + 1 + 2) / 3)


def test_brier_score_of_p_up():
    assert brier([1.0, 0.0, 0.5, np.nan], [11, 9, 11, 11], [10, 10, 10, 10]) == pytest.approx(
        (0 + 0 + 0.25) / 3
    )


def test_diebold_mariano_sees_a_real_gain_and_calls_noise_a_tie():
    rng = np.random.default_rng(5)
    naive = rng.normal(0, 1, 2000)
    better = naive * 0.8  # always smaller errors
    noise = naive * rng.choice([0.95, 1.05], 2000)  # the same errors, jittered both ways
    assert diebold_mariano(better, naive) < 1e-6
    assert diebold_mariano(noise, naive) > 0.05
    assert math.isnan(diebold_mariano(naive[:5], naive[:5]))
    assert beats_persistence(0.99, 0.01) and not beats_persistence(0.9991, 0.6)
    assert not beats_persistence(1.01, 0.001) and not beats_persistence(0.98, None)


def _walk_forward_rows(hours: int = 24 * 70, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Persistence-like forecasts on the GARCH market: (dataset frame, predictions)."""
    candles = synthetic_candles("BTC-USD", hours, seed, end=pd.Timestamp("2024-07-01", tz="UTC"))
    stamps = candles["time"] + pd.Timedelta(hours=1)
    frame = pd.DataFrame({"event_timestamp": stamps, "price_now": candles["close"].to_numpy()})
    nxt = frame["price_now"].shift(-1)
    keep = nxt.notna()
    predictions = pd.DataFrame(
        {
            "event_timestamp": stamps[keep].to_numpy(),
            "price_now": frame["price_now"][keep].to_numpy(),
            "next_close": nxt[keep].to_numpy(),
            "predicted": frame["price_now"][keep].to_numpy() * (1 + 1e-5),
        }
    )
    predictions["event_timestamp"] = pd.to_datetime(predictions["event_timestamp"], utc=True)
    tail = predictions["event_timestamp"] >= predictions["event_timestamp"].max() - pd.Timedelta(
        days=56
    )
    return frame, conformal.attach_scale(predictions[tail].reset_index(drop=True), frame)


def test_walk_forward_intervals_cover_near_nominal_beside_persistence():
    _, predictions = _walk_forward_rows()
    found = conformal.summary(predictions)
    model, naive = found["model"], found["persistence"]
    assert model["interval_n"] > 24 * 50  # 8 weeks, less the first days' warm-up
    assert model["coverage_80"] == pytest.approx(0.8, abs=0.03)
    assert model["coverage_95"] == pytest.approx(0.95, abs=0.02)
    assert naive["interval_n"] == model["interval_n"]  # the same hours
    assert model["brier_up"] < 0.27 and naive["interval_width_80"] > 0


def test_walk_forward_intervals_use_only_outcomes_known_before_each_day():
    _, predictions = _walk_forward_rows(hours=24 * 40)
    before = conformal.sequential(predictions)
    changed = predictions.copy()
    last_day = changed["event_timestamp"] >= changed["event_timestamp"].max().floor("D")
    changed.loc[last_day, "next_close"] *= 1.5  # rewrite the last day's outcomes
    after = conformal.sequential(changed)
    columns = [c for c in before.columns if c.startswith(("model_", "persistence_"))]
    pd.testing.assert_frame_equal(before[columns], after[columns])  # no interval moved
