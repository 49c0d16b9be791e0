"""Feature lookups for serving, through ``candlecast.feast_store``.

The ``FeatureStore`` is built once per process (it parses the registry); each
lookup names a FeatureService, so the columns a model gets are the ones it was
trained with. Online reads go through the one ``OnlineReader`` (refs resolved
once per FeatureService). Event timestamps are candle close times (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from bentos.errors import FeaturesUnavailable
from candlecast import feast_store
from candlecast.feast_store import (
    PRICE_FEATURES,
    PRICE_SERVICE,
    OnlineChanges,
    OnlineReader,
    OnlineStoreUnavailable,
)
from candlecast.settings import get_settings


@dataclass(frozen=True)
class FeatureRow:
    """One entity's feature values and the close time of the candle they describe."""

    values: dict[str, Any]
    as_of: datetime


class FeatureSource:
    """Reads one symbol's features from Feast; raises FeaturesUnavailable when empty.

    One reader per FeatureService: the price refs (v1 close and past 24 closes) ride
    along in the same online read as a model's own features.
    """

    def __init__(self, store: Any = None) -> None:
        from ingestion.feature_dataset import FeatureDataset

        self.store = store if store is not None else feast_store.get_store()
        self.dataset = FeatureDataset(get_settings().features_dir)
        self.changes = OnlineChanges(self.store)
        self._cache: dict[tuple[str, str | None], tuple[tuple, tuple[FeatureRow, FeatureRow]]] = {}
        self._readers: dict[str | None, OnlineReader] = {}

    def reader(self, service: str | None) -> OnlineReader:
        """The online reader of ``service``'s refs plus the price refs (None: prices only)."""
        if service not in self._readers:
            prices = [
                ref
                for ref in feast_store.feature_refs(PRICE_SERVICE, self.store)
                if ref.split(":", 1)[1] in PRICE_FEATURES
            ]
            extra = [] if service is None else feast_store.feature_refs(service, self.store)
            self._readers[service] = OnlineReader([*prices, *extra], self.store)
        return self._readers[service]

    def live(self, symbol: str, service: str | None) -> tuple[FeatureRow, FeatureRow]:
        """(prices, model features) of the latest candle, read again only after a write.

        Features change once an hour, and an online read (~1 ms) is most of a request's
        own work. A read is reused while the online store's change token
        (:class:`~candlecast.feast_store.OnlineChanges`: microseconds on SQLite, one
        round trip on Redis) is the one taken just before it: the row it returned (with
        its event time) is then still the store's. Any write, e.g. the next hour's push,
        changes the token, so the very next request reads again. A failed read is not
        cached; a store without a token is read on every request.
        """
        try:
            token = self.changes.token(symbol)
        except OnlineStoreUnavailable as exc:
            raise _unavailable(symbol, exc) from exc
        hit = self._hit(symbol, service, token)
        if hit is not None:
            return hit
        result = self._live(symbol, service)  # after the token: never older than it
        if token is not None:
            self._cache[symbol, service] = (token, result)
        return result

    def cached(self, symbol: str, service: str | None) -> tuple[FeatureRow, FeatureRow] | None:
        """What :meth:`live` would return without reading the store, else None.

        Microseconds, so an event loop may call it; a None sends the caller to
        :meth:`live` in a thread (an online read blocks). A token that needs the network
        (Redis) is never asked for here: always None, so the loop never waits on it.
        """
        if not self.changes.local:
            return None
        return self._hit(symbol, service, self.changes.token(symbol))

    def _hit(self, symbol: str, service: str | None, token: tuple | None):
        hit = self._cache.get((symbol, service))
        if token is not None and hit is not None and hit[0] == token:
            return hit[1]
        return None

    def forget(self) -> None:
        """Drop the cached online reads (the live loop, once per new hour)."""
        self._cache.clear()

    def _live(self, symbol: str, service: str | None) -> tuple[FeatureRow, FeatureRow]:
        """(prices, model features) of the latest candle, in one online read.

        An online store that does not answer (Redis down or stalled: its timeouts bound
        the wait) is a 503 like an empty one, never a 500; nothing is cached, so the
        first request after it is back reads it again.
        """
        try:
            read = self.reader(service).read(symbol)
        except OnlineStoreUnavailable as exc:
            raise _unavailable(symbol, exc) from exc
        if read.event_timestamp is None:
            raise FeaturesUnavailable(
                f"No online features for {symbol} ({service or PRICE_SERVICE}). Compute and "
                "materialize them first: candlecast features --materialize",
                symbol=symbol,
            )
        row = FeatureRow(read.values, read.event_timestamp.to_pydatetime())
        prices = {k: row.values.get(k) for k in PRICE_FEATURES}
        return FeatureRow(prices, row.as_of), row

    def prices(self, symbol: str) -> FeatureRow:
        """Latest close and the 24 closes before it (online)."""
        return self.live(symbol, None)[0]

    def historical(self, symbol: str, as_of: datetime, service: str) -> FeatureRow | None:
        """Features of the candle that closed at ``as_of`` from the offline store, or None.

        None also when no candle closed at ``as_of`` (an hour without trades): the
        point-in-time join would silently hand back the previous hour's row.
        """
        if not self.dataset.has_row(symbol, as_of):
            return None
        entity = pd.DataFrame({"symbol": [symbol], "event_timestamp": [pd.Timestamp(as_of)]})
        frame = feast_store.historical_features(entity, service, self.store)
        if frame.empty:
            return None
        values = {k: (None if _missing(v) else v) for k, v in frame.iloc[0].to_dict().items()}
        return FeatureRow(values, as_of)


def _unavailable(symbol: str, exc: Exception) -> FeaturesUnavailable:
    return FeaturesUnavailable(
        f"The online feature store is unavailable; try again shortly ({exc})", symbol=symbol
    )


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
