"""Reading the BentoML model store through the contract.

Training (which writes versions, ``training.registry``) and serving (which loads
champions, ``bentos.registry``) find models here, by the names and labels of
:mod:`candlecast.contract`. BentoML is imported lazily, after
``Settings.export_env()``, so ``BENTOML_HOME`` defaults under ``$CANDLECAST_HOME``.
"""

from __future__ import annotations

import os
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


def stored(model: Any) -> StoredModel:
    """A :class:`StoredModel` of BentoML's own model object."""
    tag = str(model.tag)
    return StoredModel(
        tag=tag,
        stage=str(model.info.labels.get("stage", "")),
        created=model.info.creation_time,
        spec=ModelSpec.from_metadata(tag, model.info.metadata),
        path=Path(model.path),
    )


def live_store() -> Any:
    """The model store in ``Settings.bentoml_home`` (``BENTOML_HOME``), where training writes.

    Outside a container it is BentoML's own store. In a Bento's container BentoML reads
    the models packed into the Bento; this one, on the data volume, is where retraining
    registers new champions while the service runs. ``store=`` of the reads below.
    """
    bentoml_module()
    from bentoml._internal.models import ModelStore  # BentoML has no public constructor

    return ModelStore(live_folder())


def live_folder() -> Path:
    """The folder of :func:`live_store` (one folder per model name, one per version)."""
    return get_settings().bentoml_home / "models"


def signature(family: str, symbol: str) -> tuple[tuple[str, int, int], ...]:
    """A cheap stamp of (family, symbol)'s versions in :func:`live_store`.

    ``(version, mtime_ns, size)`` of each version's ``model.yaml``: it changes when a
    version is added or removed and when one is relabelled (the file is rewritten), so
    a watcher re-reads the metadata only then.
    """
    folder = live_folder() / model_name(family, symbol)
    try:
        entries = sorted((e for e in os.scandir(folder) if e.is_dir()), key=lambda e: e.name)
    except FileNotFoundError:
        return ()
    stamps = []
    for entry in entries:
        try:
            info = os.stat(Path(entry.path) / "model.yaml")
            stamps.append((entry.name, info.st_mtime_ns, info.st_size))
        except FileNotFoundError:  # being written
            stamps.append((entry.name, -1, -1))
    return tuple(stamps)


def raw_versions(family: str, symbol: str, store: Any = None) -> list[Any]:
    """BentoML's own objects of every version of (family, symbol), oldest first.

    ``store``: a BentoML model store (e.g. :func:`live_store`); default BentoML's own.
    """
    bentoml = bentoml_module()
    try:
        found = (bentoml.models if store is None else store).list(model_name(family, symbol))
    except bentoml.exceptions.NotFound:
        return []
    return sorted(found, key=lambda m: m.info.creation_time)


def versions(family: str, symbol: str, store: Any = None) -> list[StoredModel]:
    """Every stored version of one family and symbol, oldest first."""
    return [stored(m) for m in raw_versions(family, symbol, store)]


def champion(family: str, symbol: str, store: Any = None) -> StoredModel | None:
    """The newest version labelled champion for (family, symbol), or None."""
    found = raw_versions(family, symbol, store)
    champs = [m for m in found if m.info.labels.get("stage") == CHAMPION]
    return stored(champs[-1]) if champs else None


def get(tag: str, store: Any = None) -> StoredModel:
    """One stored version by tag (``name:version`` or ``name:latest``)."""
    return stored((bentoml_module().models if store is None else store).get(tag))


def all_models(symbol: str | None = None) -> list[StoredModel]:
    """Every candlecast model in the store (optionally of one symbol), oldest first."""
    slug = symbol_slug(symbol) if symbol else None
    found = [
        m
        for m in bentoml_module().models.list()
        if m.tag.name.startswith(NAME_PREFIX)
        and (slug is None or m.info.labels.get("symbol") == slug)
    ]
    return [stored(m) for m in sorted(found, key=lambda m: m.info.creation_time)]
