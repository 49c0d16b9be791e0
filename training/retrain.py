"""Retrain one symbol's families at a cut, through the gate, and record every outcome.

What ``candlecast live`` runs when a retrain is due: the existing ``train``
(walk-forward over the weeks before the cut, the promotion gate, register), one
family at a time. A family whose retrain fails (bad data, a crash in a fit) or
loses the gate leaves the model store's champion as it was; either way a
:class:`~candlecast.retrain_history.RetrainRecord` goes into the history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import pandas as pd

from candlecast.feast_store import DEFAULT_SERVICE
from candlecast.retrain_history import RetrainRecord, history
from candlecast.times import utc
from training.dataset import load_dataset
from training.models import FitConfig
from training.registry import LiveEvidence
from training.train import train_family

log = logging.getLogger(__name__)


def retrain(
    symbol: str,
    families: list[str],
    cut: pd.Timestamp,
    trigger: str,
    reason: str,
    *,
    at: pd.Timestamp | None = None,
    eval_days: int = 28,
    cfg: FitConfig | None = None,
    live: Mapping[str, LiveEvidence] | None = None,
) -> list[RetrainRecord]:
    """Train ``families`` of ``symbol`` on labels known by ``cut``; record and return outcomes.

    ``at`` is the loop's clock (the cut in a replay); ``live`` the champions' live
    records by family, handed to the gate.
    """
    cut, at = utc(cut), utc(at if at is not None else cut)
    cfg = cfg or FitConfig()
    records: list[RetrainRecord] = []
    try:
        data = load_dataset(symbol, DEFAULT_SERVICE)
    except Exception as exc:  # recorded for every family: nothing was trained
        log.error("%s retrain (%s) failed loading the dataset: %s", symbol, trigger, exc)
        records = [_failed(symbol, f, trigger, reason, cut, at, exc, 0.0) for f in families]
        history().append(records)
        return records
    for family in families:
        started = time.perf_counter()
        try:
            outcome = train_family(
                data,
                family,
                cut,
                cut - pd.Timedelta(days=eval_days),
                cfg,
                live=(live or {}).get(family),
            )
        except Exception as exc:
            log.exception("%s %s retrain (%s) failed; the champion stays", symbol, family, trigger)
            record = _failed(
                symbol, family, trigger, reason, cut, at, exc, time.perf_counter() - started
            )
        else:
            m = outcome.summary["metrics"]
            record = RetrainRecord(
                **_base(symbol, family, trigger, reason, cut, at),
                decision=outcome.decision.reason,
                seconds=time.perf_counter() - started,
                ok=True,
                tag=outcome.tag,
                stage=outcome.decision.stage,
                mae=float(m["mae"]),
                mae_ratio_vs_persistence=float(m["mae_ratio_vs_persistence"]),
                period_start=str(m["period_start"]),
                period_end=str(m["period_end"]),
            )
            log.info(
                "%s %s retrain (%s: %s) -> %s %s: %s",
                symbol,
                family,
                trigger,
                reason,
                outcome.tag,
                outcome.decision.stage,
                outcome.decision.reason,
            )
        records.append(record)
        history().append([record])
    return records


def _base(symbol, family, trigger, reason, cut, at) -> dict:
    return {"at": at, "symbol": symbol, "family": family, "trigger": trigger, "reason": reason,
            "cut": cut}  # fmt: skip


def _failed(symbol, family, trigger, reason, cut, at, exc, seconds) -> RetrainRecord:
    return RetrainRecord(
        **_base(symbol, family, trigger, reason, cut, at),
        decision=f"failed: {type(exc).__name__}: {exc}",
        seconds=seconds,
        ok=False,
    )
