"""Walk-forward backtests of several families and their JSON summary."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from training import conformal
from training.dataset import LabelledFrame
from training.evaluate import INTERVAL_KEYS, METRIC_KEYS, compare_to_persistence
from training.executor import Executor, UnitFailure, UnitsFailedError, run_units
from training.models import FitConfig
from training.walkforward import Fold, WalkForwardResult, walk_forward, weekly_folds

log = logging.getLogger(__name__)
PUBLIC_KEYS = (*METRIC_KEYS, "directional_accuracy_ci95", *INTERVAL_KEYS)


def period_of(folds: list[Fold]) -> dict:
    """The evaluated period as ISO UTC strings (fold boundaries, so reruns match exactly)."""
    return {
        "period_start": folds[0].test_start.isoformat(),
        "period_end": folds[-1].test_end.isoformat(),
    }


def score(result: WalkForwardResult) -> dict:
    """Model and persistence metrics of one walk-forward run, tagged with its period.

    Point metrics (with the Diebold-Mariano p-value against persistence) and interval
    metrics (``training.conformal``: calibrated on past hours only) on the same hours.
    """
    preds = result.predictions
    summary = compare_to_persistence(preds["next_close"], preds["predicted"], preds["price_now"])
    found = conformal.summary(preds)
    summary["metrics"].update(found["model"])
    summary["persistence"].update(found["persistence"])
    period = period_of(result.folds)
    summary["metrics"].update(period)
    summary["persistence"].update(period)
    summary["fit_seconds"] = result.fit_seconds
    return summary


@dataclass(frozen=True)
class BacktestJob:
    """One family's walk-forward over the folds: a unit for ``training.executor``."""

    data: LabelledFrame
    family: str
    folds: list[Fold]
    cfg: FitConfig

    @property
    def label(self) -> str:
        return f"{self.data.symbol} {self.family}"


def backtest_unit(job: BacktestJob) -> WalkForwardResult:
    """The walk-forward of one job (no I/O: serially or as a Ray task)."""
    return walk_forward(job.data, job.family, job.folds, job.cfg)


def run_backtest(
    data: LabelledFrame,
    families: list[str],
    test_start: pd.Timestamp,
    test_end: pd.Timestamp,
    cfg: FitConfig,
    on_fold: Callable[[str, Fold], None] | None = None,
    executor: Executor = "serial",
) -> dict[str, WalkForwardResult]:
    """Walk-forward every family over the same weekly folds (serially or on Ray).

    ``on_fold`` reports serial folds only. A failed family raises
    :class:`UnitsFailedError` naming it (a backtest is one report: no partial one).
    """
    folds = weekly_folds(test_start, test_end)
    jobs = [BacktestJob(data, family, folds, cfg) for family in families]

    def serial_unit(job: BacktestJob) -> WalkForwardResult:
        hook = (lambda fold: on_fold(job.family, fold)) if on_fold else None
        return walk_forward(job.data, job.family, job.folds, job.cfg, hook)

    fn = serial_unit if executor == "serial" else backtest_unit
    results = run_units(fn, jobs, [j.label for j in jobs], executor)
    failures = [r for r in results if isinstance(r, UnitFailure)]
    if failures:
        raise UnitsFailedError(failures, kept=len(results) - len(failures))
    return dict(zip(families, results, strict=True))


def report(data: LabelledFrame, results: dict[str, WalkForwardResult]) -> dict:
    """The backtest JSON: per model metrics, plus the persistence forecast on the same rows."""
    models, persistence, period = {}, None, {}
    for family, result in results.items():
        summary = score(result)
        entry = {k: summary["metrics"][k] for k in PUBLIC_KEYS}
        entry.update(
            beats_persistence=summary["beats_persistence"],
            leakage_suspect=summary["leakage_suspect"],
            fit_seconds=round(summary["fit_seconds"], 2),
        )
        models[family] = entry
        entry["dm_pvalue"] = summary["metrics"]["dm_pvalue"]
        persistence = {k: summary["persistence"][k] for k in PUBLIC_KEYS}
        period = period_of(result.folds)
        log.info(
            "%s backtest %s %s .. %s (%d folds, %d rows): MAE %.2f vs persistence %.2f "
            "(ratio %.4f, DM p %.3f, %s), direction %.3f, 80%% coverage %.3f (persistence "
            "%.3f), fit %.1f s",
            data.symbol,
            family,
            period["period_start"],
            period["period_end"],
            len(result.folds),
            entry["n"],
            entry["mae"],
            persistence["mae"],
            entry["mae_ratio_vs_persistence"],
            entry["dm_pvalue"],
            "beats persistence" if entry["beats_persistence"] else "does not beat persistence",
            entry["directional_accuracy"],
            entry["coverage_80"],
            persistence["coverage_80"],
            entry["fit_seconds"],
        )
    return {
        "symbol": data.symbol,
        "feature_service": data.feature_service,
        "target": data.target,
        **period,
        "folds": len(next(iter(results.values())).folds) if results else 0,
        "models": models,
        "persistence": persistence,
    }


def write_json(payload: dict, path: Path) -> Path:
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2) + "\n")
    return target
