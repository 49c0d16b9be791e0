"""Reading the BentoML model store through the contract.

Training (which writes versions, ``training.registry``) and serving (which loads
champions, ``bentos.registry``) find models here, by the names and labels of
:mod:`candlecast.contract`. BentoML is imported lazily, after
``Settings.export_env()``, so ``BENTOML_HOME`` defaults under ``$CANDLECAST_HOME``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from candlecast import artifacts
from candlecast.contract import CHAMPION, NAME_PREFIX, ModelSpec, Predict, model_name
from candlecast.settings import get_settings
from candlecast.symbols import symbol_slug


def bentoml_module():
    """Import BentoML only after publishing BENTOML_HOME under the candlecast home."""
    get_settings().export_env()
    import bentoml

    return bentoml


@dataclass(frozen=True)
class StoredModel:
    """One stored version: its tag, stage, creation time, spec and folder."""

    tag: str
    stage: str
    created: datetime
    spec: ModelSpec
    path: Path

    def forward(self) -> Predict:
        """Load the estimator and return its forward pass (see :mod:`candlecast.artifacts`)."""
        estimator = artifacts.load(self.spec.family, self.path)
        return artifacts.forward(self.spec.family, estimator, len(self.spec.features))


def _stored(model: Any) -> StoredModel:
    tag = str(model.tag)
    return StoredModel(
        tag=tag,
        stage=str(model.info.labels.get("stage", "")),
        created=model.info.creation_time,
        spec=ModelSpec.from_metadata(tag, model.info.metadata),
        path=Path(model.path),
    )


def raw_versions(family: str, symbol: str) -> list[Any]:
    """BentoML's own objects of every version of (family, symbol), oldest first."""
    bentoml = bentoml_module()
    try:
        found = bentoml.models.list(model_name(family, symbol))
    except bentoml.exceptions.NotFound:
        return []
    return sorted(found, key=lambda m: m.info.creation_time)


def versions(family: str, symbol: str) -> list[StoredModel]:
    """Every stored version of one family and symbol, oldest first."""
    return [_stored(m) for m in raw_versions(family, symbol)]


def champion(family: str, symbol: str) -> StoredModel | None:
    """The newest version labelled champion for (family, symbol), or None."""
    champs = [m for m in versions(family, symbol) if m.stage == CHAMPION]
    return champs[-1] if champs else None


def get(tag: str) -> StoredModel:
    """One stored version by tag (``name:version`` or ``name:latest``)."""
    return _stored(bentoml_module().models.get(tag))


def all_models(symbol: str | None = None) -> list[StoredModel]:
    """Every candlecast model in the store (optionally of one symbol), oldest first."""
    slug = symbol_slug(symbol) if symbol else None
    found = [
        m
        for m in bentoml_module().models.list()
        if m.tag.name.startswith(NAME_PREFIX)
        and (slug is None or m.info.labels.get("symbol") == slug)
    ]
    return [_stored(m) for m in sorted(found, key=lambda m: m.info.creation_time)]
