"""Feast's Ray offline store, made to read the repo's FileSource as declared.

``feature_repo/data_sources.py`` declares the feature rows as the glob
``$CANDLECAST_HOME/features/*/*.parquet`` (DuckDB reads globs). Feast 0.67's
``RayOfflineStore`` hands the path to ``ray.data.read_parquet``, which takes files and
directories but no globs (ray-project/ray#59304, open), so every read fails with::

    FileNotFoundError: /…/features/*/*.parquet

This store is Feast's, unchanged, except that a glob source is read as the directory it
spans, when (and only when) the glob names every parquet file under that directory; else
it refuses with the reason rather than read other rows. The declarations stay the same.
``feature_store.scale.yaml`` names it as ``type: candlecast.ray_store.GlobRayOfflineStore``.
"""

from __future__ import annotations

import copy
import glob
from pathlib import Path
from typing import Any, Literal

from feast import FileSource
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.ray_offline_store.ray import (
    RayOfflineStore,
    RayOfflineStoreConfig,
)
from feast.infra.ray_initializer import ensure_ray_initialized

TYPE = "candlecast.ray_store.GlobRayOfflineStore"


class GlobRayOfflineStoreConfig(RayOfflineStoreConfig):
    """Feast's Ray offline store settings (``ray_conf``, ``storage_path``...), our type."""

    type: Literal["candlecast.ray_store.GlobRayOfflineStore"] = TYPE  # type: ignore[assignment]


class GlobRayOfflineStore(RayOfflineStore):
    """``RayOfflineStore`` whose reads see a glob FileSource as its directory.

    Each read first makes sure a cluster runs, started from the YAML's ``ray_conf`` (the
    caps) if none does: Feast remembers "initialized" process-wide, so after a
    ``ray.shutdown()`` it would let Ray auto-start an uncapped default cluster (every
    core, /tmp/ray) instead.
    """

    @staticmethod
    def get_historical_features(config, feature_views, *args: Any, **kwargs: Any):
        _running(config)
        views = [_with_readable_source(view) for view in feature_views]
        return RayOfflineStore.get_historical_features(config, views, *args, **kwargs)

    @staticmethod
    def pull_latest_from_table_or_query(config, data_source, *args: Any, **kwargs: Any):
        _running(config)
        source = ray_readable(data_source)
        return RayOfflineStore.pull_latest_from_table_or_query(config, source, *args, **kwargs)

    @staticmethod
    def pull_all_from_table_or_query(config, data_source, *args: Any, **kwargs: Any):
        _running(config)
        source = ray_readable(data_source)
        return RayOfflineStore.pull_all_from_table_or_query(config, source, *args, **kwargs)


def _running(config: Any) -> None:
    """Start Feast's Ray cluster from ``config``'s ``ray_conf`` unless one is running."""
    import ray

    if not ray.is_initialized():
        ensure_ray_initialized(config, force_reinit=True)


def _with_readable_source(view: Any) -> Any:
    """A shallow copy of ``view`` reading its batch source through :func:`ray_readable`."""
    source = getattr(view, "batch_source", None)
    if source is None or ray_readable(source) is source:
        return view
    twin = copy.copy(view)
    twin.batch_source = ray_readable(source)
    return twin


def ray_readable(source: DataSource) -> DataSource:
    """``source`` itself, or for a glob FileSource the same source over the glob's directory.

    Raises ``ValueError`` when the directory holds parquet files the glob leaves out: Ray
    would read them too, and return rows the declaration does not hold.
    """
    if not isinstance(source, FileSource) or not glob.has_magic(source.path):
        return source
    root = glob_root(source.path)
    named = {Path(p) for p in glob.glob(source.path)}
    every = set(root.rglob("*.parquet")) if root.is_dir() else set()
    extra = sorted(every - named)
    if extra:
        raise ValueError(
            f"The Ray offline store reads {source.name} ({source.path}) as the directory "
            f"{root}, which also holds {len(extra)} parquet file(s) outside the glob, e.g. "
            f"{extra[0]} (ray.data.read_parquet takes no globs: ray-project/ray#59304)"
        )
    return FileSource(
        name=source.name,
        path=str(root),
        file_format=source.file_format,
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column,
        field_mapping=source.field_mapping,
        description=source.description,
        tags=source.tags,
        owner=source.owner,
    )


def glob_root(pattern: str) -> Path:
    """The deepest directory of ``pattern`` before its first wildcard part."""
    parts = Path(pattern).parts
    first_wild = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    return Path(*parts[:first_wild])
