"""Fit a family on all data up to a cut, judge its recipe walk-forward, register it.

The metrics stored with a version come from a walk-forward run of the same
recipe (family, feature service, target, config) over a stated period, not
from the final model on data it saw. Promotion compares MAE on the same period:
if the champion was judged on a different period, the new recipe is re-run on
the champion's period first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from training import registry
from training.backtest import score
from training.dataset import HOUR, LabelledFrame, fingerprint
from training.evaluate import METRIC_KEYS
from training.models import KERAS_FAMILIES, FitConfig, Fitted
from training.walkforward import Fold, WalkForwardResult, fit_on, utc, walk_forward, weekly_folds

#: Default walk-forward period of ``train``: the last four weeks before the cut.
DEFAULT_EVAL_DAYS = 28


@dataclass
class TrainOutcome:
    """What ``train`` did for one family: the stored tag, its stage and its scores."""

    family: str
    tag: str
    decision: registry.Decision
    summary: dict
    evaluation: WalkForwardResult
    final_fit_seconds: float


def data_end(data: LabelledFrame) -> pd.Timestamp:
    """The latest cut possible: the time the last known label was published."""
    return data.frame["event_timestamp"].max() + HOUR


def eval_period(
    data: LabelledFrame, cut: pd.Timestamp | None, test_start: str | None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(cut, walk-forward start): ``cut`` defaults to the data end, start to 4 weeks before."""
    end = utc(cut) if cut is not None else data_end(data)
    start = utc(test_start) if test_start else end - pd.Timedelta(days=DEFAULT_EVAL_DAYS)
    if start >= end:
        raise ValueError(f"walk-forward start {start} is not before the cut {end}")
    return end, start


def train_family(
    data: LabelledFrame,
    family: str,
    cut: pd.Timestamp,
    test_start: pd.Timestamp,
    cfg: FitConfig,
    on_fold: Callable[[Fold], None] | None = None,
) -> TrainOutcome:
    """Walk-forward over ``[test_start, cut)``, final fit on rows known by ``cut``, register."""
    evaluation = walk_forward(data, family, weekly_folds(test_start, cut), cfg, on_fold)
    summary = score(evaluation)
    rows = data.until(cut)
    started = pd.Timestamp.now()
    fitted = fit_on(rows, data, family, cfg)
    final_seconds = (pd.Timestamp.now() - started).total_seconds()
    metadata = build_metadata(data, fitted, rows, summary, cut)
    decision = promotion(data, family, summary, cfg, metadata)
    tag = registry.register(fitted, metadata, decision)
    return TrainOutcome(family, tag, decision, summary, evaluation, final_seconds)


def promotion(
    data: LabelledFrame, family: str, summary: dict, cfg: FitConfig, metadata: dict
) -> registry.Decision:
    """Apply the promotion rule, re-running the recipe on the champion's period if needed."""
    incumbent = registry.champion(family, data.symbol)
    if incumbent is None:
        return registry.decide(summary["metrics"], None)
    theirs = dict(incumbent.info.metadata.get("metrics", {}))
    ours = summary["metrics"]
    if not registry.same_period(ours, theirs):
        folds = weekly_folds(utc(theirs["period_start"]), utc(theirs["period_end"]))
        ours = score(walk_forward(data, family, folds, cfg))["metrics"]
        metadata["champion_comparison"] = {
            k: ours[k] for k in ("mae", "period_start", "period_end")
        }
    return registry.decide(ours, theirs, str(incumbent.tag))


def build_metadata(
    data: LabelledFrame, fitted: Fitted, rows: pd.DataFrame, summary: dict, cut: pd.Timestamp
) -> dict:
    """Registry metadata per the contract (null values are omitted when stored)."""

    def as_list(values) -> list[float] | None:
        return None if values is None else [float(v) for v in values]

    return {
        "family": fitted.family,
        "symbol": data.symbol,
        "feature_service": data.feature_service,
        "features": list(data.features),
        "target": data.target,
        "input_mean": as_list(fitted.input_mean),
        "input_scale": as_list(fitted.input_scale),
        "output_mean": fitted.output_mean,
        "output_scale": fitted.output_scale,
        "input_shape": "sequence" if fitted.family in KERAS_FAMILIES else "flat",
        "train_start": rows["event_timestamp"].min().isoformat(),
        "train_end": rows["event_timestamp"].max().isoformat(),
        "cut": cut.isoformat(),
        "n_train": len(rows),
        "data_fingerprint": fingerprint(rows, data.features),
        "metrics": _public(summary["metrics"]),
        "persistence": _public(summary["persistence"]),
        "beats_persistence": summary["beats_persistence"],
        "leakage_suspect": summary["leakage_suspect"],
        "fit_details": {k: float(v) for k, v in fitted.details.items()},
    }


def _public(metrics: dict) -> dict:
    return {k: metrics[k] for k in (*METRIC_KEYS, "period_start", "period_end")}
