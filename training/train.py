"""Fit a family on all data up to a cut, judge its recipe walk-forward, register it.

One (symbol, family) is one unit: :func:`plan_family` reads what it needs (the dataset is
the caller's, the champion the model store's), :func:`fit_family` computes with no I/O
(serially or as a Ray task, ``training.executor``), :func:`register_fit` writes, in the
driver only.

The metrics stored with a version come from a walk-forward run of the same
recipe (family, feature service, target, config) over a stated period, not
from the final model on data it saw. Promotion compares MAE on the same period:
if the champion was judged on a different period, the new recipe is re-run on
the champion's period first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from candlecast import model_store
from candlecast.contract import ModelSpec
from candlecast.times import HOUR, utc
from training import conformal, registry
from training.backtest import score
from training.dataset import LabelledFrame, fingerprint
from training.evaluate import INTERVAL_KEYS, METRIC_KEYS
from training.executor import Executor, UnitFailure, run_units
from training.models import FitConfig, Fitted
from training.walkforward import Fold, WalkForwardResult, fit_on, walk_forward, weekly_folds

log = logging.getLogger(__name__)
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


@dataclass(frozen=True)
class Incumbent:
    """The champion a new version must beat: its tag and walk-forward metrics."""

    tag: str
    metrics: dict


@dataclass(frozen=True)
class FamilyJob:
    """One (symbol, family) unit of training: all its fit reads, read by the driver.

    It carries the dataset and the champion's figures, so :func:`fit_family` touches no
    store: it runs the same in this process or in a Ray worker, and a worker killed
    mid-fit has written nothing.
    """

    data: LabelledFrame
    family: str
    cut: pd.Timestamp
    test_start: pd.Timestamp
    cfg: FitConfig
    incumbent: Incumbent | None = None
    live: registry.LiveEvidence | None = None

    @property
    def label(self) -> str:
        return f"{self.data.symbol} {self.family}"


@dataclass
class FamilyFit:
    """What :func:`fit_family` made: the final model, its spec, and the gate's decision."""

    family: str
    fitted: Fitted
    spec: ModelSpec
    decision: registry.Decision
    summary: dict
    evaluation: WalkForwardResult
    final_fit_seconds: float


def plan_family(
    data: LabelledFrame,
    family: str,
    cut: pd.Timestamp,
    test_start: pd.Timestamp,
    cfg: FitConfig,
    live: registry.LiveEvidence | None = None,
) -> FamilyJob:
    """The unit of work for ``family``, with the current champion read from the model store."""
    champion = model_store.champion(family, data.symbol)
    incumbent = None if champion is None else Incumbent(champion.tag, dict(champion.spec.metrics))
    return FamilyJob(data, family, cut, test_start, cfg, incumbent, live)


def fit_family(job: FamilyJob, on_fold: Callable[[Fold], None] | None = None) -> FamilyFit:
    """Walk-forward over ``[test_start, cut)``, final fit on rows known by ``cut``, the gate.

    Pure computation (no store read or write): the one function both executors run.
    """
    data, family, cfg = job.data, job.family, job.cfg
    log.info("%s %s: walk-forward %s .. %s", data.symbol, family, job.test_start, job.cut)
    evaluation = walk_forward(data, family, weekly_folds(job.test_start, job.cut), cfg, on_fold)
    summary = score(evaluation)
    rows = data.until(job.cut)
    started = pd.Timestamp.now()
    fitted = fit_on(rows, data, family, cfg)
    final_seconds = (pd.Timestamp.now() - started).total_seconds()
    calibrations = conformal.final(evaluation.predictions)
    spec = build_spec(data, fitted, rows, summary, job.cut, calibrations)
    decision, comparison = promotion(data, family, summary, cfg, job.incumbent, job.live)
    spec = replace(spec, champion_comparison=comparison)
    return FamilyFit(family, fitted, spec, decision, summary, evaluation, final_seconds)


def register_fit(fit: FamilyFit) -> TrainOutcome:
    """Store the version with its stage (the driver's write; a champion demotes the last)."""
    tag = registry.register(fit.fitted, fit.spec, fit.decision)
    m = fit.summary["metrics"]
    log.info(
        "%s -> %s (%s); walk-forward MAE %.2f, ratio %.4f vs persistence; final fit %.1f s",
        tag,
        fit.decision.stage,
        fit.decision.reason,
        m["mae"],
        m["mae_ratio_vs_persistence"],
        fit.final_fit_seconds,
    )
    return TrainOutcome(
        fit.family, tag, fit.decision, fit.summary, fit.evaluation, fit.final_fit_seconds
    )


def train_family(
    data: LabelledFrame,
    family: str,
    cut: pd.Timestamp,
    test_start: pd.Timestamp,
    cfg: FitConfig,
    on_fold: Callable[[Fold], None] | None = None,
    live: registry.LiveEvidence | None = None,
) -> TrainOutcome:
    """Walk-forward over ``[test_start, cut)``, final fit on rows known by ``cut``, register.

    ``live``: the champion's live record, for the promotion gate (``registry.decide``).
    """
    job = plan_family(data, family, cut, test_start, cfg, live)
    return register_fit(fit_family(job, on_fold))


def promotion(
    data: LabelledFrame,
    family: str,
    summary: dict,
    cfg: FitConfig,
    incumbent: Incumbent | None,
    live: registry.LiveEvidence | None = None,
) -> tuple[registry.Decision, dict | None]:
    """Apply the promotion rule, re-running the recipe on the champion's period if needed.

    Returns the decision and, when the recipe was re-run, its MAE on the champion's period.
    """
    if incumbent is None:
        return registry.decide(summary["metrics"], None), None
    theirs = dict(incumbent.metrics)
    ours, comparison = summary["metrics"], None
    if not registry.same_period(ours, theirs):
        folds = weekly_folds(utc(theirs["period_start"]), utc(theirs["period_end"]))
        ours = score(walk_forward(data, family, folds, cfg))["metrics"]
        comparison = {k: ours[k] for k in ("mae", "period_start", "period_end")}
    return registry.decide(ours, theirs, incumbent.tag, live), comparison


def build_spec(
    data: LabelledFrame,
    fitted: Fitted,
    rows: pd.DataFrame,
    summary: dict,
    cut: pd.Timestamp,
    calibrations: dict | None = None,
) -> ModelSpec:
    """The contract's record of a version: what it eats, its window, its evidence and
    the interval calibrations (its own and persistence's) it is served with."""
    calibrations = calibrations or {}
    model, naive = calibrations.get("model"), calibrations.get("persistence")
    return ModelSpec(
        family=fitted.family,
        symbol=data.symbol,
        feature_service=data.feature_service,
        features=tuple(data.features),
        target=data.target,
        scaling=fitted.scaling,
        train_start=rows["event_timestamp"].min().isoformat(),
        train_end=rows["event_timestamp"].max().isoformat(),
        cut=cut.isoformat(),
        n_train=len(rows),
        data_fingerprint=fingerprint(rows, data.features),
        metrics=_public(summary["metrics"]),
        persistence=_public(summary["persistence"]),
        beats_persistence=summary["beats_persistence"],
        leakage_suspect=summary["leakage_suspect"],
        fit_details={k: float(v) for k, v in fitted.details.items()},
        intervals={} if model is None else model.to_dict(),
        persistence_intervals={} if naive is None else naive.to_dict(),
    )


def _public(metrics: dict) -> dict:
    keys = (*METRIC_KEYS, "dm_pvalue", *INTERVAL_KEYS, "period_start", "period_end")
    return {k: metrics[k] for k in keys if k in metrics}


def train_jobs(
    jobs: Sequence[FamilyJob],
    executor: Executor = "serial",
    on_fold: Callable[[FamilyJob, Fold], None] | None = None,
    on_done: Callable[[str], None] | None = None,
) -> tuple[list[TrainOutcome], list[UnitFailure]]:
    """Fit every job (in turn, or as Ray tasks), then register each in the jobs' order.

    Every write happens here, in the driver, after the fits: a unit that failed (or whose
    Ray worker was killed) registers nothing and leaves the others' versions intact; it
    is returned as a :class:`UnitFailure`. ``on_fold`` reports folds of serial fits only.
    """

    def serial_fit(job: FamilyJob) -> FamilyFit:
        return fit_family(job, (lambda fold: on_fold(job, fold)) if on_fold else None)

    fn = serial_fit if executor == "serial" else fit_family
    fits = run_units(fn, jobs, [j.label for j in jobs], executor, on_done)
    outcomes = [register_fit(f) for f in fits if not isinstance(f, UnitFailure)]
    return outcomes, [f for f in fits if isinstance(f, UnitFailure)]
