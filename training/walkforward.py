"""Walk-forward evaluation: expanding training window, weekly folds, refit per fold.

Each fold trains only on rows whose label (the next-hour close) was already
known when the fold's test period starts, so no test hour ever leaks into
training, early stopping or model selection.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from candlecast.contract import to_price
from candlecast.times import HOUR, utc
from training.conformal import attach_scale
from training.dataset import LabelledFrame, target_values
from training.models import FitConfig, Fitted, fit_model

log = logging.getLogger(__name__)
#: Smallest training set a fold may use; fewer rows stop the run with a ValueError (exit 2).
MIN_TRAIN_ROWS = 200


@dataclass(frozen=True)
class Fold:
    """One test window ``[test_start, test_end)`` of prediction times (candle close times)."""

    index: int
    test_start: pd.Timestamp
    test_end: pd.Timestamp


@dataclass
class WalkForwardResult:
    """Out-of-sample predictions of every fold, with loss curves and fit time."""

    family: str
    target: str
    predictions: pd.DataFrame
    folds: list[Fold]
    histories: list[dict[str, list[float]]] = field(default_factory=list)
    fit_seconds: float = 0.0


def weekly_folds(test_start: pd.Timestamp, test_end: pd.Timestamp, days: int = 7) -> list[Fold]:
    """Consecutive folds of ``days`` from ``test_start``; the last one is cut at ``test_end``."""
    start, end = utc(test_start), utc(test_end)
    if end <= start:
        raise ValueError(f"test period is empty: {start} .. {end}")
    edges = list(pd.date_range(start, end, freq=f"{days}D"))
    if edges[-1] < end:
        edges.append(end)
    return [Fold(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(edges))]


def split_fold(frame: pd.DataFrame, fold: Fold) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows (label known by ``test_start``) and test rows of one fold."""
    stamps = frame["event_timestamp"]
    train = frame[stamps + HOUR <= fold.test_start]
    test = frame[(stamps >= fold.test_start) & (stamps < fold.test_end)]
    return train, test


def validation_split(train: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``fraction`` of the training rows, in time order, held out for early stopping."""
    n_val = max(1, round(len(train) * fraction))
    ordered = train.sort_values("event_timestamp", kind="stable")
    return ordered.iloc[:-n_val], ordered.iloc[-n_val:]


def fit_on(train: pd.DataFrame, data: LabelledFrame, family: str, cfg: FitConfig) -> Fitted:
    """Fit ``family`` on ``train`` with early stopping/selection on its own tail."""
    if len(train) < MIN_TRAIN_ROWS:
        raise ValueError(f"only {len(train)} training rows (need {MIN_TRAIN_ROWS})")
    fit_rows, val_rows = validation_split(train, cfg.val_fraction)
    return fit_model(
        family,
        fit_rows[data.features].to_numpy(float),
        target_values(fit_rows, data.target),
        val_rows[data.features].to_numpy(float),
        target_values(val_rows, data.target),
        cfg,
    )


def walk_forward(
    data: LabelledFrame,
    family: str,
    folds: list[Fold],
    cfg: FitConfig,
    on_fold: Callable[[Fold], None] | None = None,
) -> WalkForwardResult:
    """Refit ``family`` for each fold and predict only that fold's hours."""
    parts, histories, seconds = [], [], 0.0
    for fold in folds:
        train, test = split_fold(data.frame, fold)
        if test.empty:
            continue
        started = time.perf_counter()
        fitted = fit_on(train, data, family, cfg)
        fit_seconds = time.perf_counter() - started
        seconds += fit_seconds
        raw = fitted.predict(test[data.features].to_numpy(float))
        part = _fold_predictions(test, fold, to_price(raw, test["price_now"], data.target))
        parts.append(part)
        _log_fold(data.symbol, family, fold, len(train), part, fit_seconds)
        if fitted.history:
            histories.append(fitted.history)
        if on_fold:
            on_fold(fold)
    if not parts:
        raise ValueError("no rows with known next-hour close fall in the test period")
    predictions = attach_scale(pd.concat(parts, ignore_index=True), data.frame)
    return WalkForwardResult(family, data.target, predictions, folds, histories, seconds)


def _log_fold(
    symbol: str, family: str, fold: Fold, n_train: int, part: pd.DataFrame, seconds: float
) -> None:
    mae = float(np.mean(np.abs(part["predicted"] - part["next_close"])))
    naive = float(np.mean(np.abs(part["price_now"] - part["next_close"])))
    log.info(
        "%s %s fold %d (%s .. %s): %d train rows, %d test rows, fit %.2f s, "
        "MAE %.2f vs persistence %.2f (ratio %.4f)",
        symbol,
        family,
        fold.index + 1,
        f"{fold.test_start:%Y-%m-%dT%H:%MZ}",
        f"{fold.test_end:%Y-%m-%dT%H:%MZ}",
        n_train,
        len(part),
        seconds,
        mae,
        naive,
        mae / naive if naive else float("nan"),
    )


def _fold_predictions(test: pd.DataFrame, fold: Fold, predicted: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_timestamp": test["event_timestamp"].reset_index(drop=True),
            "price_now": test["price_now"].to_numpy(float),
            "next_close": test["next_close"].to_numpy(float),
            "predicted": np.asarray(predicted, dtype=float),
            "fold": fold.index,
        }
    )
