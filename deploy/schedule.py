"""When the live loop retrains: on a schedule, and early when live evidence says so.

* **initial**: a served family with no champion for a symbol (a new install).
* **schedule**: ``every`` (default 24 h) after the family's last retrain, or after
  its champion's training cut when the history has none.
* **early**: the champion has lost to persistence live: over the last ``window``
  (default 72 h) at least ``coverage`` of the hours are scored forecasts of this
  very version, and their MAE ratio against persistence on the same hours is
  above 1.0. At most one early retrain per family per window, so a retrain that
  loses the gate is not repeated every hour.

The champion's live record goes to the promotion gate with the retrain
(``training.registry.LiveEvidence``); drift is shown beside the numbers and never
triggers anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from candlecast import model_store
from candlecast.performance import performance
from candlecast.prediction_log import PredictionLog
from candlecast.times import utc

DAY = pd.Timedelta(hours=24)
#: (trigger, families, reason, live evidence by family)
Due = tuple[str, list[str], str, dict]


@dataclass(frozen=True)
class RetrainPolicy:
    """``--retrain-every``, ``--early-window`` and the training knobs of a retrain."""

    every: pd.Timedelta | None = DAY  # None: never on a schedule
    early_window: pd.Timedelta | None = 3 * DAY  # None: never early
    coverage: float = 0.8
    eval_days: int = 28
    max_epochs: int = 60


#: Finds the champion of (family, symbol): ``deploy.forecasts.Forecaster.champion``.
ChampionOf = Callable[[str, str], "model_store.StoredModel | None"]


def initial_retrains(symbol: str, families: list[str], champion: ChampionOf) -> list[str]:
    return [f for f in families if champion(f, symbol) is None]


def due_retrains(
    symbol: str,
    families: list[str],
    now: pd.Timestamp,
    policy: RetrainPolicy,
    predictions: PredictionLog,
    champion_of: ChampionOf,
) -> list[Due]:
    """The retrains due for ``symbol`` at ``now``, grouped by trigger."""
    from candlecast.retrain_history import history
    from training.registry import LiveEvidence

    now = utc(now)
    past = history().read(symbol)  # one read of the history and of the log per cycle
    window = policy.early_window
    recent = predictions.read(symbol, since=now - window) if window is not None else None
    scheduled, early, reasons, live = [], [], [], {}
    for family in families:
        champion = champion_of(family, symbol)
        if champion is None:
            continue
        mine = past.loc[past["family"] == family, "at"]
        last = mine.max() if len(mine) else None
        since = last if last is not None else utc(champion.spec.cut or champion.created)
        if policy.every is not None and now - since >= policy.every:
            scheduled.append(family)
            continue
        evidence = live_evidence(recent, champion.tag, family, now, policy)
        if evidence is not None and (last is None or now - last >= window):
            early.append(family)
            live[family] = LiveEvidence(*evidence)
            reasons.append(f"{family} champion {champion.tag}: {live[family]}")
    due: list[Due] = []
    if scheduled:
        every = f"{policy.every.total_seconds() / 3600:g} h"
        due.append(("schedule", scheduled, f"every {every}", {}))
    if early:
        due.append(("early", early, "; ".join(str(r) for r in reasons), live))
    return due


def live_evidence(
    recent: pd.DataFrame | None,
    tag: str,
    family: str,
    now: pd.Timestamp,
    policy: RetrainPolicy,
) -> tuple[float, int] | None:
    """(ratio, scored hours) when ``tag`` lost to persistence over the window, else None.

    ``recent``: the symbol's logged rows with a target in the window (None: early off).
    """
    if recent is None or policy.early_window is None:
        return None
    hours = int(policy.early_window / pd.Timedelta(hours=1))
    rows = recent[(recent["model"] == family) & (recent["target_time"] > now - policy.early_window)]
    figures = [r for r in performance(rows, "all", now) if r["model_version"] == tag]
    if not figures:
        return None
    found = figures[0]
    ratio = found["mae_ratio_vs_persistence"]
    if found["n"] < policy.coverage * hours or ratio is None or ratio <= 1.0:
        return None
    return float(ratio), int(found["n"])
