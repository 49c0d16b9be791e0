"""The feature jobs behind ``python -m ingestion features`` and ``update``.

``features``: extend the offline feature dataset from the candle store.
``update`` (hourly, for a scheduler): fetch newly closed candles -> candle store
-> feature rows for them (same module, bounded look-back) -> offline dataset ->
online store (push). Push goes to the ONLINE store only: Feast's offline push
rewrites the whole file and duplicates rows per feature view. New candles of a
symbol are also the peer candles of its dependents (``feature_catalog.peer_symbol``):
their rows that reach the new candles are recomputed and their newest row pushed
again, so BTC's online row gets ETH's candle of the hour whichever was fetched first.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from candlecast.errors import CorruptFileError
from candlecast.feature_catalog import LAGS, peer_symbol
from candlecast.settings import get_settings
from candlecast.symbols import normalize_symbol
from candlecast.times import HOUR
from ingestion.feature_dataset import ExtendSummary, FeatureDataset, extend_features
from ingestion.gaps import Gap, missing_hours
from ingestion.store import CandleStore

if TYPE_CHECKING:
    from feast import FeatureStore

    from ingestion.coinbase import CoinbaseClient

log = logging.getLogger(__name__)
#: Candles a new symbol's first update fetches: the 24 lags and the current candle, so its
#: v1/v2 rows are complete at once. The v3 weekly windows stay NULL until a week (four for
#: the seasonal group) of candles has arrived, or ``backfill`` fetches them.
SEED_HOURS = max(LAGS) + 1


def _stores() -> tuple[CandleStore, FeatureDataset]:
    settings = get_settings()
    return CandleStore(settings.candles_dir), FeatureDataset(settings.features_dir)


def compute_job(symbols: list[str] | None = None, full: bool = False) -> list[ExtendSummary]:
    """Extend (or with ``full`` recompute) the feature rows of ``symbols`` (default: all).

    One symbol at a time, each one's rows written and dropped before the next: memory
    stays that of one symbol's computation however many symbols there are.
    """
    candles, dataset = _stores()
    names = [normalize_symbol(s) for s in symbols] if symbols else candles.symbols()
    missing = [s for s in names if not candles.files(s)]
    if missing:
        raise LookupError(f"no candles stored for {', '.join(missing)}; backfill or load-csv first")
    return [extend_features(candles, dataset, name, full=full).summary() for name in names]


def materialize_all(symbols: list[str] | None = None) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Put the newest feature row of ``symbols`` (default: all) online; returns the windows.

    Only the rows near each symbol's newest one are read (``materialize_latest``): the
    online store keeps one row per symbol, so materializing the whole history cost time
    and memory linear in it (~2.7 KB a row in Feast's read) for the same end state.
    Feast reads every entity in a window, so other symbols with rows there are written
    too (each with its newest row in the window), as a whole-range materialize did.
    """
    from candlecast import feast_store

    dataset = FeatureDataset(get_settings().features_dir)
    names = [normalize_symbol(s) for s in symbols] if symbols else None
    latest = dataset.latest(names)  # key column of each symbol's last month file only
    if not latest:
        log.info("materialize: no feature rows for %s", ", ".join(names or ["any symbol"]))
        return []
    started = time.perf_counter()
    # Feast reads every feature file: an unreadable one is named, not a DuckDB traceback.
    with dataset.guard(), _feast_chatter():
        windows = feast_store.materialize_latest(latest)
    log.info(
        "materialized the newest rows of %d symbols online (%d windows, %s .. %s UTC) in %.2f s",
        len(latest),
        len(windows),
        f"{windows[0][0]:%Y-%m-%dT%H:%M}",
        f"{windows[-1][1]:%Y-%m-%dT%H:%M}",
        time.perf_counter() - started,
    )
    return windows


@contextlib.contextmanager
def _feast_chatter() -> Iterator[None]:
    """Feast's materialize prints its plan on stdout: kept off the output unless verbose.

    (Its tqdm bars are off by default too: ``candlecast.logs`` sets ``TQDM_DISABLE``.)
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def publish(symbols: list[str] | None = None) -> list[ExtendSummary]:
    """Features of ``symbols`` (default: all) offline, Feast applied, their range online.

    What ``candlecast features --materialize`` does, for code that builds a home
    (the benchmarks, the tests) without the CLI.
    """
    from candlecast import feast_store

    results = compute_job(symbols)
    feast_store.apply()
    materialize_all(symbols)
    return results


@dataclass(frozen=True)
class UpdateResult:
    """One symbol's real-time step."""

    symbol: str
    fetched: int
    new_candles: int
    feature_rows: int
    latest_close: pd.Timestamp | None
    seconds_to_online: float
    requests: int
    gaps: list[Gap] = field(default_factory=list)  # hours in the fetched window with no candle
    #: Close time of the row the online store serves after the push (read back through
    #: the one online reader, as the service reads it); None if it holds no row.
    online_as_of: pd.Timestamp | None = None

    def age_seconds(self, now: pd.Timestamp | None = None) -> float | None:
        if self.latest_close is None:
            return None
        return ((now or pd.Timestamp.now(tz="UTC")) - self.latest_close).total_seconds()


#: Per home: the Feast store and its price-service online reader, built once per process.
#: Building a FeatureStore parses the registry (~0.1 s), more than an hourly update's push.
_feast_cache: dict[str, tuple[FeatureStore, object]] = {}


def _feast(home: str) -> tuple[FeatureStore, object]:
    """(store, price reader) of ``home``, applying the repo first on a new home."""
    from candlecast import feast_store

    cached = _feast_cache.get(home)
    if cached is None or not (get_settings().feast_dir / "registry.db").exists():
        store = feast_store.ensure_applied()
        reader = feast_store.OnlineReader(feast_store.PRICE_SERVICE, store)
        cached = _feast_cache[home] = (store, reader)
    return cached


def update_job(
    symbols: list[str] | None = None,
    now: pd.Timestamp | None = None,
    client: CoinbaseClient | None = None,
) -> list[UpdateResult]:
    """Fetch newly closed candles of ``symbols`` and publish their features offline and online.

    Without ``symbols``: every stored symbol, or, on an empty store, the served symbols
    (CANDLECAST_SERVE_SYMBOLS), so a fresh volume on the Pi seeds itself from the last
    day of candles on the job's first run instead of failing every hour.
    """

    candles, dataset = _stores()
    names = [normalize_symbol(s) for s in symbols] if symbols else candles.symbols()
    if not names:
        names = [normalize_symbol(s) for s in get_settings().serve_symbols.split(",") if s.strip()]
    if not names:
        raise LookupError("no symbols: pass --symbol or store candles first")
    store, reader = _feast(str(get_settings().home))
    return [_update_one(candles, dataset, store, reader, name, now, client) for name in names]


def _refresh_dependents(
    candles: CandleStore, dataset: FeatureDataset, store: FeatureStore, peer: str
) -> None:
    """Recompute the rows of the symbols whose peer is ``peer`` that its new candles reach.

    Their rows were computed without those candles if their own update ran first;
    the extension finds which rows from the peer record and the newest is pushed again.
    A dependent's unreadable file does not fail ``peer``'s update: its own run reports it.
    """
    from candlecast import feast_store

    for name in candles.symbols():
        if name == peer or peer_symbol(name) != peer:
            continue
        try:
            if dataset.stats(name)[0] is None:  # no rows yet: its own run computes them
                continue
            refreshed = extend_features(candles, dataset, name)
        except CorruptFileError as exc:
            log.warning("%s: not recomputed with the new %s candles: %s", name, peer, exc)
            continue
        feast_store.push_online(refreshed.rows, store)
        log.info("%s: %d rows recomputed with the new %s candles", name, refreshed.count, peer)


def _log_update(result: UpdateResult, full: bool) -> None:
    log.info(
        "%s update: %d fetched (%d requests), %d new candles, %d feature rows (%s), "
        "latest close %s, %d gaps (%d h), %.2f s to online",
        result.symbol,
        result.fetched,
        result.requests,
        result.new_candles,
        result.feature_rows,
        "full" if full else "incremental",
        "-" if result.latest_close is None else f"{result.latest_close:%Y-%m-%dT%H:%MZ}",
        len(result.gaps),
        missing_hours(result.gaps),
        result.seconds_to_online,
    )


def _update_one(
    candles: CandleStore,
    dataset: FeatureDataset,
    store: FeatureStore,
    reader,
    symbol: str,
    now: pd.Timestamp | None,
    client: CoinbaseClient | None,
) -> UpdateResult:
    """Fetch after the last stored candle (or the last 25 h for a new symbol), then publish."""
    from candlecast import feast_store
    from ingestion.coinbase import fetch_candles
    from ingestion.sample import ensure_not_synthetic

    ensure_not_synthetic(candles, symbol)  # live candles never mix with the synthetic market

    started = time.perf_counter()
    dataset.stats(symbol)  # an unreadable feature file stops the job before anything is stored
    last = candles.last_time(symbol)
    reference = now or pd.Timestamp.now(tz="UTC")
    seed = reference.floor("h") - SEED_HOURS * HOUR  # a new symbol: the last day
    start = seed if last is None else last + HOUR
    fetched = fetch_candles(symbol, start, client=client, now=now)
    written = candles.write(fetched.candles)
    extended = extend_features(candles, dataset, symbol)
    feast_store.push_online(extended.rows, store)
    if written.new:
        _refresh_dependents(candles, dataset, store, symbol)
    latest, _ = dataset.stats(symbol)
    online = reader.read(symbol)
    if latest is not None and online.event_timestamp != latest:
        log.warning(
            "%s: the online store serves the row of %s but the newest feature row is %s; "
            "run `candlecast features --materialize` to republish",
            symbol,
            online.event_timestamp,
            latest,
        )
    result = UpdateResult(
        symbol=symbol,
        fetched=len(fetched.candles),
        new_candles=written.new,
        feature_rows=extended.count,
        latest_close=latest,
        seconds_to_online=time.perf_counter() - started,
        requests=fetched.requests,
        gaps=fetched.gaps,
        online_as_of=online.event_timestamp,
    )
    _log_update(result, extended.full)
    return result
