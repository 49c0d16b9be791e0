"""Walk-forward folds, labels and the guarantee that no test hour reaches training."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from candlecast.contract import to_price
from candlecast.times import HOUR
from tests.fakes.training_data import LAG_NAMES, lag_features, random_walk_candles, synthetic_frame
from training import walkforward
from training.dataset import join_features, label_rows, target_values
from training.models import FitConfig, Fitted
from training.walkforward import split_fold, validation_split, walk_forward, weekly_folds

UTC = "UTC"


def test_weekly_folds_cover_period_without_overlap() -> None:
    folds = weekly_folds(pd.Timestamp("2024-05-01", tz=UTC), pd.Timestamp("2024-07-01", tz=UTC))
    assert len(folds) == 9
    assert folds[0].test_start == pd.Timestamp("2024-05-01", tz=UTC)
    assert folds[-1].test_end == pd.Timestamp("2024-07-01", tz=UTC)
    assert folds[-1].test_start == pd.Timestamp("2024-06-26", tz=UTC)
    for a, b in itertools.pairwise(folds):
        assert a.test_end == b.test_start
        assert a.test_end - a.test_start == pd.Timedelta(days=7)


def test_labels_are_next_hour_close_and_gaps_give_no_label() -> None:
    candles = random_walk_candles(50)
    candles = candles.drop(index=[20]).reset_index(drop=True)  # a missing hour
    rows = label_rows(candles)
    assert len(rows) == 50 - 1 - 2  # last has no next; the candle before the gap has none
    row = rows.iloc[5]
    assert row["event_timestamp"] == candles["time"].iloc[5] + HOUR
    assert row["next_close"] == candles["close"].iloc[6]
    assert row["price_now"] == candles["close"].iloc[5]
    assert not (rows["event_timestamp"] == candles["time"].iloc[19] + HOUR).any()


def test_join_restores_order_from_shuffled_feature_rows() -> None:
    candles = random_walk_candles(100)
    frame = join_features(label_rows(candles), lag_features(candles), LAG_NAMES)
    assert frame["event_timestamp"].is_monotonic_increasing
    assert len(frame) == 100 - 24 - 1  # warm-up rows without lag 24 dropped, last unlabeled
    np.testing.assert_allclose(frame["close"], frame["price_now"])
    np.testing.assert_allclose(frame["price_1_hour_ago"].iloc[1:], frame["close"].iloc[:-1])


def test_target_roundtrip_to_price() -> None:
    data = synthetic_frame(200)
    for target in ("return", "price"):
        y = target_values(data.frame, target)
        np.testing.assert_allclose(
            to_price(y, data.frame["price_now"], target), data.frame["next_close"]
        )


def test_walk_forward_never_trains_on_test_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    data = synthetic_frame(1200)
    seen: list[tuple[pd.DataFrame, pd.DataFrame]] = []

    def spy_fit(train, data_, family, cfg):
        fit_rows, val_rows = validation_split(train, cfg.val_fraction)
        seen.append((fit_rows, val_rows))
        return Fitted(family, _Zero())

    monkeypatch.setattr(walkforward, "fit_on", spy_fit)
    start = pd.Timestamp("2024-02-05", tz=UTC)
    folds = weekly_folds(start, start + pd.Timedelta(days=14))
    result = walk_forward(data, "lasso", folds, FitConfig())
    assert len(seen) == 2
    for fold, (fit_rows, val_rows) in zip(folds, seen, strict=True):
        train_labels_known = pd.concat([fit_rows, val_rows])["event_timestamp"] + HOUR
        assert train_labels_known.max() <= fold.test_start
        assert fit_rows["event_timestamp"].max() < val_rows["event_timestamp"].min()
        preds = result.predictions[result.predictions["fold"] == fold.index]
        assert preds["event_timestamp"].min() >= fold.test_start
        assert preds["event_timestamp"].max() < fold.test_end
        assert len(preds) == 24 * 7
    # expanding window: the second fold trains on strictly more rows
    assert sum(map(len, seen[1])) == sum(map(len, seen[0])) + 24 * 7


def test_split_fold_boundary_hour() -> None:
    data = synthetic_frame(400)
    fold = weekly_folds(pd.Timestamp("2024-01-10", tz=UTC), pd.Timestamp("2024-01-11", tz=UTC))[0]
    train, test = split_fold(data.frame, fold)
    # the row at test_start - 1h has its label (close at test_start) known: allowed in training
    assert train["event_timestamp"].max() == fold.test_start - HOUR
    assert test["event_timestamp"].min() == fold.test_start


class _Zero:
    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(len(x))
