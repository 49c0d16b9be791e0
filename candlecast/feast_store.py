"""Feast access for every stage: the store, apply, materialize, push, reads.

Training reads ``get_historical_features`` of a FeatureService; the service, the
jobs and the benchmark read online through the one :class:`OnlineReader`. The
online store does not enforce the views' TTL, so a read returns the row's event
timestamp and callers decide whether it is too old (``Settings.stale_after_seconds``).

FeatureService names are the Feast registry's own (``feature_repo/feature_services.py``
declares them); this module only names the two every stage relies on.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import yaml
from feast import FeatureService, FeatureStore, FeatureView, FileSource, RepoConfig
from feast.data_source import PushMode
from feast.errors import FeatureServiceNotFoundException
from feast.feature_view_projection import FeatureViewProjection
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_operations import get_repo_files, parse_repo
from feast.utils import make_df_tzaware

from candlecast import logs
from candlecast.errors import BadInput
from candlecast.feature_catalog import (  # the service names are used as feast_store's
    DEFAULT_SERVICE,  # noqa: F401
    PRICE_FEATURES,
    PRICE_SERVICE,  # noqa: F401
)
from candlecast.settings import StoreProfile, get_settings
from candlecast.times import utc

logs.after_import()  # importing Feast replaced the quiet warning filters

PUSH_SOURCE = "price_features_push"
#: v1 features that carry the current close and the past 24 closes, newest first.
PAST_HOURS = len(PRICE_FEATURES) - 1
TS_SUFFIX = "__ts"  # Feast's suffix for a feature's event timestamp in OnlineResponse.to_dict


class UnknownFeatureServiceError(BadInput, ValueError):
    """A FeatureService name the Feast registry does not know."""


class OnlineStoreUnavailable(ConnectionError):  # noqa: N818 (an outage, not a bug)
    """The online store did not answer (down, unreachable or timed out): try again later.

    Only a networked store (Redis, the scale profile) fails this way; the server maps
    it to 503 ``features_unavailable`` rather than a 500.
    """


def _outages() -> tuple[type[Exception], ...]:
    """What a Redis outage raises through Feast: refused or reset connections, timeouts.

    None without the redis package: the local profile does not need it (the image's
    bentofile installs ``feast[duckdb]`` alone), and a store that never talks to Redis
    never raises its errors.
    """
    try:
        from redis.exceptions import ConnectionError as RefusedError
        from redis.exceptions import TimeoutError as StalledError
    except ImportError:
        return ()
    return (RefusedError, StalledError)


_OUTAGES = _outages()


def get_store(profile: StoreProfile | None = None) -> FeatureStore:
    """The Feast store of the current CANDLECAST_HOME (exports it for the YAML first).

    Every stage opens its store here, so the CLI, training, the live loop and the API
    all follow ``CANDLECAST_STORE_PROFILE``: its YAML (``Settings.feature_store_yaml``)
    picks the stores (``CANDLECAST_SCALE_RAY=false``: the scale profile without Ray).
    ``profile`` overrides it (the parity tests, the bench).
    """
    settings = get_settings()
    if profile is not None:
        settings = settings.model_copy(update={"store_profile": profile})
    settings.export_env()
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    if settings.store_profile == "scale" and not settings.scale_ray:
        config = _without_ray(settings.feature_store_yaml, settings.feature_repo)
        return FeatureStore(repo_path=str(settings.feature_repo), config=config)
    if settings.store_profile == "scale":
        _require_ray()
    return FeatureStore(
        repo_path=str(settings.feature_repo), fs_yaml_file=settings.feature_store_yaml
    )


def _require_ray() -> None:
    """Say which extra (or setting) the scale profile's Ray parts need, not Feast's import."""
    from candlecast.ray_cluster import RayMissing, ray_module

    try:
        ray_module()
    except RayMissing as exc:
        raise RayMissing(f"{exc}; or CANDLECAST_SCALE_RAY=false for Redis alone") from None


def _without_ray(yaml_file: Path, repo: Path) -> RepoConfig:
    """The scale YAML with DuckDB and Feast's local engine in place of its Ray parts.

    For ``CANDLECAST_SCALE_RAY=false``: Redis alone, nothing imports or starts Ray
    (API replicas read online only; the Redis tests need no cluster).
    """
    raw = yaml.safe_load(os.path.expandvars(yaml_file.read_text()))
    raw["offline_store"] = {"type": "duckdb"}
    raw.pop("batch_engine", None)
    config = RepoConfig(**raw)
    config.repo_path = repo
    return config


@contextmanager
def _repo_on_path(repo: Path) -> Iterator[None]:
    """Import the repo's modules fresh, as ``feast apply`` does (cwd = repo, repo on sys.path).

    Feast imports them as top-level modules (``features``, ``data_sources``...); a
    cached import would keep the FileSource path of an earlier CANDLECAST_HOME.
    """
    names = [p.stem for p in get_repo_files(repo)]
    old_cwd = Path.cwd()
    for name in names:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path.remove(str(repo))
        for name in names:
            sys.modules.pop(name, None)


def apply(profile: StoreProfile | None = None) -> FeatureStore:
    """Register the declarations of ``feature_repo/`` (like ``feast -c feature_repo apply``).

    Both profiles share the registry, but each apply also sets up its own online store
    (SQLite's tables), so a home read through both profiles is applied through both.
    """
    store = get_store(profile)
    repo = get_settings().feature_repo
    with _repo_on_path(repo):
        contents = parse_repo(repo)
    store.apply(
        [
            *contents.entities,
            *contents.data_sources,
            *contents.feature_views,
            *contents.feature_services,
        ]
    )
    return store


def ensure_applied() -> FeatureStore:
    """The store, applying the repo first if this home has no registry yet.

    Also when the profile's SQLite file is missing: a home applied only on the scale
    profile (Redis) has the registry but not SQLite's tables.
    """
    store = get_store()
    sqlite = _sqlite_path(store)
    if not (get_settings().feast_dir / "registry.db").exists() or (
        sqlite is not None and not Path(sqlite).exists()
    ):
        return apply()
    return store


def materialize(start: datetime, end: datetime, store: FeatureStore | None = None) -> None:
    """Load offline rows with ``start <= event_timestamp <= end`` into the online store."""
    (store or get_store()).materialize(start_date=utc(start), end_date=utc(end))


def online_window(store: FeatureStore) -> timedelta:
    """The longest TTL of the views that feed the online store (their point-in-time reach).

    A row older than that before a symbol's newest one is never the row the online store
    ends with, so it is the width of a :func:`materialize_latest` window.
    """
    ttls = [view.ttl for view in store.list_feature_views() if view.online and view.ttl]
    return max(ttls, default=timedelta(hours=1))


def latest_windows(
    stamps: Iterable[pd.Timestamp], width: timedelta
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The fewest ascending ``(start, end)`` windows, none wider than ``width``, holding
    every stamp: symbols that are up to date share one window, a stale one gets its own."""
    windows: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for stamp in sorted({utc(s) for s in stamps}):
        if windows and stamp - windows[-1][0] <= width:
            windows[-1] = (windows[-1][0], stamp)
        else:
            windows.append((stamp, stamp))
    return windows


def materialize_latest(
    latest: Mapping[str, pd.Timestamp], store: FeatureStore | None = None
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Write each symbol's newest row online, reading only the rows near the newest ones.

    ``latest`` maps symbols to their newest offline event_timestamp. The online store
    keeps one row per symbol, and Feast's materialize writes, per symbol, the newest row
    of the window it reads, so windows around those timestamps end with the rows a
    materialize of the whole history ends with, for a small, constant cost: Feast's
    offline read (and its memory) grows with the rows in the window, ~one per symbol,
    not with the history. Windows run oldest first, so a symbol seen in two ends with
    its newest row. Returns the windows.
    """
    store = store or get_store()
    windows = latest_windows(latest.values(), online_window(store))
    for start, end in windows:
        materialize(start, end, store)
    return windows


def push_online(rows: pa.Table | pd.DataFrame, store: FeatureStore | None = None) -> None:
    """Write the latest row of each symbol to the online store of every view.

    The online store keeps one row per symbol and the SQLite store overwrites in
    write order, so only each symbol's newest row is pushed. Offline rows are
    written by the feature jobs, never through Feast's offline push.
    """
    frame = rows.to_pandas() if isinstance(rows, pa.Table) else rows
    frame = frame.sort_values("event_timestamp").drop_duplicates("symbol", keep="last")
    if not len(frame):
        return
    store = store or get_store()
    with warnings.catch_warnings():  # the all-NULL views it skips are written below
        warnings.filterwarnings("ignore", message="Cannot write dataframe with empty feature")
        store.push(PUSH_SOURCE, frame, to=PushMode.ONLINE)
    _write_all_null_views(store, frame)


def _write_all_null_views(store: FeatureStore, frame: pd.DataFrame) -> None:
    """Write the views whose features are all NULL in ``frame``, which Feast's push skips.

    Feast's ``write_to_online_store`` warns and writes nothing for such a view, so the
    view would go on serving its previous row (an older hour's values, e.g. the peer's
    returns of the hour before its missing candle). A small v3 group is all NULL for an
    hour whenever the peer has no candle or a weekly window holds a gap. The provider's
    ``ingest_df`` is the write the push would have made; Feast has no public call for it.
    """
    for view in store.list_feature_views():
        source = view.stream_source
        if source is None or source.name != PUSH_SOURCE:
            continue
        if frame[[f.name for f in view.features]].isna().all().all():
            store._get_provider().ingest_df(view, frame)


def service_names(store: FeatureStore | None = None) -> list[str]:
    """Every FeatureService the registry knows, sorted."""
    return sorted(s.name for s in (store or get_store()).list_feature_services())


def feature_service(name: str, store: FeatureStore | None = None) -> FeatureService:
    """A registered FeatureService; an unknown name says which ones exist."""
    store = store or get_store()
    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException:  # list what exists only on the error path
        known = service_names(store)
        raise UnknownFeatureServiceError(
            f"unknown feature service {name!r}; choose from {known}"
        ) from None


def feature_refs(service_name: str, store: FeatureStore | None = None) -> list[str]:
    """``view:feature`` references of a FeatureService, in its order."""
    service = feature_service(service_name, store)
    return [
        f"{projection.name_to_use()}:{field.name}"
        for projection in service.feature_view_projections
        for field in projection.features
    ]


def feature_names(service_name: str, store: FeatureStore | None = None) -> list[str]:
    """Unqualified feature names of a FeatureService, in its order (model input order)."""
    return [ref.split(":", 1)[1] for ref in feature_refs(service_name, store)]


def historical_features(
    entities: pd.DataFrame,
    service_name: str,
    store: FeatureStore | None = None,
    files: str | None = None,
) -> pd.DataFrame:
    """Point-in-time join of ``entities`` (symbol, event_timestamp) with a FeatureService.

    ``files``: a glob of the feature files to read instead of the whole dataset (the
    views' FileSource), e.g. one symbol's: the join reads and scans every row of its
    source, so a symbol's training set read through the whole dataset cost time linear
    in the number of symbols (S symbols trained: S^2). The join itself is Feast's own
    (its provider's ``get_historical_features``), only the views' source path differs.
    """
    store = store or get_store()
    service = feature_service(service_name, store)
    if files is None:
        return store.get_historical_features(entity_df=entities, features=service).to_df()
    views = [_reading(store, projection, files) for projection in service.feature_view_projections]
    if store.config.coerce_tz_aware:
        entities = make_df_tzaware(entities)
    job = store._get_provider().get_historical_features(
        store.config,
        views,
        feature_refs(service_name, store),
        entities,
        store.registry,
        store.project,
        False,
    )
    return job.to_df()


def _reading(store: FeatureStore, projection: FeatureViewProjection, files: str) -> FeatureView:
    """A copy of the projection's view whose batch source is the same FileSource on ``files``."""
    view = store.get_feature_view(projection.name).with_projection(projection)
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise TypeError(f"{view.name} reads {type(source).__name__}, not files: cannot narrow it")
    view.batch_source = FileSource(
        name=source.name,
        path=files,
        file_format=source.file_format,
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column,
        field_mapping=source.field_mapping,
    )
    return view


@dataclass(frozen=True)
class OnlineFeatures:
    """Latest online values of one symbol and the close time of the candle they describe."""

    symbol: str
    values: dict[str, float | None]
    event_timestamp: pd.Timestamp | None

    def age_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds since the candle closed (None if the store has no row)."""
        if self.event_timestamp is None:
            return None
        now_ts = utc(now) if now is not None else pd.Timestamp.now(tz="UTC")
        return (now_ts - self.event_timestamp).total_seconds()


class OnlineReader:
    """The one online read: a FeatureService (by name) or a list of ``view:feature`` refs.

    Refs are resolved once: Feast's ``get_feature_service`` deserialises the registry
    entry on every call (~10-15 ms), several times the cost of the read itself.
    Build a new reader after ``apply``.
    """

    def __init__(self, features: str | Sequence[str], store: FeatureStore | None = None) -> None:
        self.store = store or get_store()
        if isinstance(features, str):
            self.refs = feature_refs(features, self.store)
        else:
            self.refs = list(dict.fromkeys(features))
        self.names = [ref.split(":", 1)[1] for ref in self.refs]

    def read(self, symbol: str) -> OnlineFeatures:
        """Latest values for ``symbol`` and the event timestamp they carry (None if no row).

        The timestamp is the oldest of the views read, so a row is never reported
        fresher than its stalest part.
        """
        try:
            raw = self.store.get_online_features(
                features=self.refs, entity_rows=[{"symbol": symbol}]
            ).to_dict(include_event_timestamps=True)
        except _OUTAGES as exc:
            raise OnlineStoreUnavailable(
                f"The online store ({self.store.config.online_store.type}) did not answer: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        values = {name: raw[name][0] for name in self.names}
        stamps = [raw[k][0] for k in raw if k.endswith(TS_SUFFIX) and raw[k][0]]
        if not stamps or all(v is None for v in values.values()):
            return OnlineFeatures(symbol, values, None)
        return OnlineFeatures(symbol, values, min(utc(s) for s in stamps))


class OnlineChanges:
    """Tells, cheaply, whether a symbol's online rows were written since a read.

    :meth:`token` is an opaque value that differs after any write, by any writer: the
    hourly push, ``materialize``, the plain Feast CLI, another process or replica. A
    cache keyed by the token therefore never serves a row older than the store's, and
    a pushed hour is seen by the very next request.

    - SQLite (local profile): SQLite's own ``PRAGMA data_version`` on a read-only
      connection of ours (it changes whenever another connection commits; ours never
      writes) with the file's identity (a store deleted and rewritten is a new file).
      Microseconds and no I/O beyond the file: :attr:`local`, an event loop may ask.
    - Redis (scale profile): the symbol's whole Redis hash as stored (one ``HGETALL``,
      one loopback round trip, a fraction of a Feast read's Python work). Every view of
      the symbol lives in that one hash, so any write to it changes the token, also a
      rewrite of the same hour. Redis has no write counter to ask instead (``INFO``'s
      counts are reset by ``CONFIG RESETSTAT`` or a save, so a token could repeat across
      a write). A network call: not :attr:`local`, and an outage raises
      :class:`OnlineStoreUnavailable` on the request it hits, never hidden by a cache.
      An absent hash gives None (nothing to cache).
    - Any other online store gives None: callers read every time.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.path = _sqlite_path(store)
        self._redis = _RedisHashes(store) if _online_type(store) == "redis" else None
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @property
    def local(self) -> bool:
        """Whether :meth:`token` stays on this host (no network wait: loop-safe)."""
        return self._redis is None

    def token(self, symbol: str | None = None) -> tuple | None:
        """The change token of the store (SQLite) or of ``symbol``'s rows (Redis)."""
        if self._redis is not None:
            return None if symbol is None else self._redis.token(symbol)
        if self.path is None:
            return None
        with self._lock:
            try:
                info = os.stat(self.path)
            except FileNotFoundError:
                self._close()
                return ("absent",)
            identity = (info.st_dev, info.st_ino)
            if self._conn is None or identity != self._identity:
                self._close()
                uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._identity = identity
            try:
                (version,) = self._conn.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:  # unreadable now (being replaced): read the store itself
                self._close()
                return None
            return (identity, version)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._identity = None, None


class _RedisHashes:
    """The raw Redis hash of a symbol, read with Feast's own client and key."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def token(self, symbol: str) -> tuple | None:
        config = self.store.config
        entity = EntityKeyProto(join_keys=["symbol"], entity_values=[ValueProto(string_val=symbol)])
        key = _redis_key(config.project, entity, config.entity_key_serialization_version)
        client = self.store._get_provider().online_store._get_client(config.online_store)
        try:
            fields = client.hgetall(key)
        except _OUTAGES as exc:
            raise OnlineStoreUnavailable(f"The online store (redis) did not answer: {exc}") from exc
        return ("redis", tuple(sorted(fields.items()))) if fields else None


def _online_type(store: FeatureStore) -> str | None:
    return getattr(store.config.online_store, "type", None)


def _sqlite_path(store: FeatureStore) -> str | None:
    """The SQLite online store's file, or None for any other online store."""
    config = store.config
    if _online_type(store) != "sqlite":
        return None
    path = Path(config.online_store.path)
    return str(path if path.is_absolute() else Path(config.repo_path) / path)


def online_features(
    symbol: str, service_name: str, store: FeatureStore | None = None
) -> OnlineFeatures:
    """Online values of ``service_name`` for ``symbol``, with their event timestamp.

    One-off convenience; per-request callers keep an :class:`OnlineReader`.
    """
    return OnlineReader(service_name, store).read(symbol)
