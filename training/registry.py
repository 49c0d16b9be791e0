"""Writing the BentoML model store: save versions, promote champions, export and import.

Names, labels and metadata are the model contract's (``candlecast.contract``);
files are ``candlecast.artifacts``'; reads go through ``candlecast.model_store``,
which serving uses too. A version is stored with its :class:`ModelSpec`, so the
service feeds it and reads its output exactly as training did.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from candlecast import artifacts, model_store
from candlecast.contract import CANDIDATE, CHAMPION, ModelSpec, labels, model_name
from candlecast.model_store import bentoml_module
from training.models import Fitted

log = logging.getLogger(__name__)
#: A new version replaces a champion only if its 80 % intervals covered 80 % ± this.
COVERAGE_TOLERANCE = 0.05
__all__ = ["CANDIDATE", "CHAMPION", "Decision", "bentoml_module", "decide", "register"]


@dataclass(frozen=True)
class Decision:
    """The stage a new version gets, and why (printed by the CLI)."""

    stage: str
    reason: str


def same_period(a: dict, b: dict) -> bool:
    return (a.get("period_start"), a.get("period_end")) == (
        b.get("period_start"),
        b.get("period_end"),
    )


@dataclass(frozen=True)
class LiveEvidence:
    """How the champion did live: its MAE ratio vs persistence over ``hours`` scored hours."""

    ratio: float
    hours: int

    def __str__(self) -> str:
        return f"live MAE ratio {self.ratio:.3f} vs persistence over {self.hours} h"


def decide(
    new: dict,
    incumbent: dict | None,
    incumbent_tag: str = "",
    live: LiveEvidence | None = None,
) -> Decision:
    """Promotion rule: first version wins; later ones must not be worse on the same period,
    and their 80 % intervals must have covered 80 % ± 5 pp of its hours.

    ``new`` and ``incumbent`` are walk-forward metrics dicts that must cover the
    same period (the caller re-evaluates the new recipe on the champion's
    period when they differ). ``live``: the champion's own record since it was
    promoted. When it is losing to persistence live (ratio > 1), its walk-forward
    figures are no longer the evidence that counts: the new version wins if its
    walk-forward ratio is lower than the ratio the champion is delivering.
    """
    if incumbent is None:
        return Decision(CHAMPION, "first registered version of this family" + _coverage_note(new))
    if not same_period(new, incumbent):
        raise ValueError("promotion compares walk-forward MAE on the same period only")
    period = f"{new['period_start']} .. {new['period_end']}"
    ratio = new.get("mae_ratio_vs_persistence", float("nan"))
    losing = live is not None and live.ratio > 1.0 and math.isfinite(ratio) and ratio < live.ratio
    if losing:
        why = (
            f"champion {incumbent_tag} loses to persistence ({live}); walk-forward ratio "
            f"{ratio:.3f} on {period} is better"
        )
    elif not math.isfinite(new["mae"]) or new["mae"] > incumbent["mae"]:
        return Decision(
            CANDIDATE,
            f"walk-forward MAE {new['mae']:.2f} is worse than champion {incumbent_tag} "
            f"({incumbent['mae']:.2f}) on {period}",
        )
    else:
        why = (
            f"walk-forward MAE {new['mae']:.2f} <= champion {incumbent_tag} "
            f"({incumbent['mae']:.2f}) on {period}"
        )
    miscalibrated = _coverage_note(new)
    if miscalibrated:
        return Decision(CANDIDATE, f"{why}, but its intervals are not calibrated{miscalibrated}")
    return Decision(CHAMPION, why)


def coverage_ok(metrics: dict) -> bool:
    """80 % intervals that covered within ±COVERAGE_TOLERANCE of 80 % of the hours."""
    coverage = metrics.get("coverage_80")
    if coverage is None or not math.isfinite(coverage):
        return False
    return abs(coverage - 0.8) <= COVERAGE_TOLERANCE + 1e-9  # 75.0 % is within


def _coverage_note(metrics: dict) -> str:
    """ "" when the 80 % coverage is within tolerance, else why not (for the reason)."""
    if coverage_ok(metrics):
        return ""
    coverage = metrics.get("coverage_80")
    if coverage is None or not math.isfinite(coverage):
        return " (80 % coverage unknown: too few calibrated hours in the period)"
    return f" (80 % coverage {coverage:.1%} is outside 80 % ± {COVERAGE_TOLERANCE:.0%})"


def register(fitted: Fitted, spec: ModelSpec, decision: Decision) -> str:
    """Save a version with its stage; a new champion demotes the previous one(s)."""
    if fitted.family != spec.family:
        raise ValueError(f"spec of family {spec.family!r} given for a {fitted.family!r} model")
    bentoml = bentoml_module()
    previous = [
        m
        for m in model_store.raw_versions(spec.family, spec.symbol)
        if m.info.labels.get("stage") == CHAMPION
    ]
    with bentoml.models.create(
        model_name(spec.family, spec.symbol),
        labels=labels(spec.family, spec.symbol, decision.stage),
        metadata=spec.to_metadata(),
    ) as model:
        artifacts.save(fitted.family, fitted.estimator, Path(model.path))
    if decision.stage == CHAMPION:
        for old in previous:
            set_stage(old, CANDIDATE)
    log.info("registered %s as %s", model.tag, decision.stage)
    return str(model.tag)


def set_stage(model: Any, stage: str) -> None:
    """Relabel a stored version in place (rewrites its model.yaml)."""
    model.info.labels["stage"] = stage
    model.flush()


def export(tag: str, path: Path) -> Path:
    """Write one version to a ``.bentomodel`` file at an absolute path."""
    bentoml = bentoml_module()
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(bentoml.models.export_model(tag, str(target)))


def import_file(path: Path) -> str:
    """Load a ``.bentomodel`` file into the store; returns the imported tag."""
    bentoml = bentoml_module()
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise FileNotFoundError(f"no exported model at {source}")
    return str(bentoml.models.import_model(str(source)).tag)


def load_fitted(tag: str) -> tuple[Fitted, ModelSpec]:
    """Load a stored version back into a :class:`Fitted` (used by tests and tooling)."""
    stored = model_store.get(tag)
    estimator = artifacts.load(stored.spec.family, stored.path)
    return Fitted(stored.spec.family, estimator, stored.spec.scaling), stored.spec
