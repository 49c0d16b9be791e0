"""The BentoML model store: save versions, promote champions, export and import.

Layout follows the registry contract: model ``candlecast-{family}-{symbol}``,
labels ``stage``/``family``/``symbol``, metadata with features, target, scaling,
training window and walk-forward metrics beside persistence. BentoML is
imported lazily after ``export_env()`` so ``BENTOML_HOME`` defaults under
``$CANDLECAST_HOME``.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from ingestion.settings import get_settings
from training.models import KERAS_FAMILIES, Fitted

CHAMPION, CANDIDATE = "champion", "candidate"


@dataclass(frozen=True)
class Decision:
    """The stage a new version gets, and why (printed by the CLI)."""

    stage: str
    reason: str


def bentoml_module():
    """Import BentoML only after publishing BENTOML_HOME under the candlecast home."""
    get_settings().export_env()
    import bentoml

    return bentoml


def symbol_slug(symbol: str) -> str:
    return symbol.lower()


def model_name(family: str, symbol: str) -> str:
    """``candlecast-cnn-btc-usd`` for family ``cnn`` and symbol ``BTC-USD``."""
    return f"candlecast-{family}-{symbol_slug(symbol)}"


def versions(family: str, symbol: str) -> list[Any]:
    """Every stored version of one family and symbol, oldest first."""
    bentoml = bentoml_module()
    try:
        found = bentoml.models.list(model_name(family, symbol))
    except bentoml.exceptions.NotFound:
        return []
    return sorted(found, key=lambda m: m.info.creation_time)


def champion(family: str, symbol: str) -> Any | None:
    """The family's current champion for ``symbol``, if any."""
    champs = [m for m in versions(family, symbol) if m.info.labels.get("stage") == CHAMPION]
    return champs[-1] if champs else None


def same_period(a: dict, b: dict) -> bool:
    return (a.get("period_start"), a.get("period_end")) == (
        b.get("period_start"),
        b.get("period_end"),
    )


def decide(new: dict, incumbent: dict | None, incumbent_tag: str = "") -> Decision:
    """Promotion rule: first version wins; later ones must not be worse on the same period.

    ``new`` and ``incumbent`` are walk-forward metrics dicts that must cover the
    same period (the caller re-evaluates the new recipe on the champion's
    period when they differ).
    """
    if incumbent is None:
        return Decision(CHAMPION, "first registered version of this family")
    if not same_period(new, incumbent):
        raise ValueError("promotion compares walk-forward MAE on the same period only")
    period = f"{new['period_start']} .. {new['period_end']}"
    if not math.isfinite(new["mae"]) or new["mae"] > incumbent["mae"]:
        return Decision(
            CANDIDATE,
            f"walk-forward MAE {new['mae']:.2f} is worse than champion {incumbent_tag} "
            f"({incumbent['mae']:.2f}) on {period}",
        )
    return Decision(
        CHAMPION,
        f"walk-forward MAE {new['mae']:.2f} <= champion {incumbent_tag} "
        f"({incumbent['mae']:.2f}) on {period}",
    )


def register(fitted: Fitted, metadata: dict, decision: Decision) -> str:
    """Save a version with its stage; a new champion demotes the previous one(s)."""
    bentoml = bentoml_module()
    family, symbol = metadata["family"], metadata["symbol"]
    previous = [m for m in versions(family, symbol) if m.info.labels.get("stage") == CHAMPION]
    labels = {"stage": decision.stage, "family": family, "symbol": symbol_slug(symbol)}
    clean = _json_metadata(metadata)
    with bentoml.models.create(model_name(family, symbol), labels=labels, metadata=clean) as model:
        save_artifact(fitted, Path(model.path))
    if decision.stage == CHAMPION:
        for old in previous:
            set_stage(old, CANDIDATE)
    return str(model.tag)


def save_artifact(fitted: Fitted, folder: Path) -> Path:
    """``model.keras`` without optimizer state, or ``model.joblib`` for sklearn/LightGBM."""
    if fitted.family in KERAS_FAMILIES:
        return save_keras_without_optimizer(fitted.estimator, folder / "model.keras")
    target = folder / "model.joblib"
    joblib.dump(fitted.estimator, target)
    return target


def save_keras_without_optimizer(model: Any, target: Path) -> Path:
    """Keras 3 stores Adam's slots in ``.keras`` (~3x size); reload uncompiled and re-save."""
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.keras"
        model.save(full)
        keras.models.load_model(full, compile=False).save(target)
    return target


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


def load_fitted(tag: str) -> tuple[Fitted, dict]:
    """Load a stored version back into a :class:`Fitted` (used by tests and tooling)."""
    import numpy as np

    model = bentoml_module().models.get(tag)
    meta = dict(model.info.metadata)
    family = meta["family"]
    if family in KERAS_FAMILIES:
        import keras

        estimator = keras.models.load_model(model.path_of("model.keras"), compile=False)
    else:
        estimator = joblib.load(model.path_of("model.joblib"))

    def arr(key: str):
        return np.asarray(meta[key], dtype=float) if key in meta else None

    fitted = Fitted(
        family,
        estimator,
        arr("input_mean"),
        arr("input_scale"),
        meta.get("output_mean"),
        meta.get("output_scale"),
    )
    return fitted, meta


def _json_metadata(value: Any) -> Any:
    """BentoML metadata rejects None: drop null keys (absent means null per the contract)."""
    if isinstance(value, dict):
        return {k: _json_metadata(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_json_metadata(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
