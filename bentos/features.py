"""Feature lookups for serving, through ``ingestion.feast_store``.

The ``FeatureStore`` is built once per process (it parses the registry); each
lookup names a FeatureService, so the columns a model gets are the ones it was
trained with. Event timestamps are candle close times (UTC).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from bentos.errors import FeaturesUnavailable
from bentos.inference import PRICE_FEATURE_SERVICE, PRICE_FEATURES

TS = "__ts"  # Feast's suffix for a feature's event timestamp in OnlineResponse.to_dict


@dataclass(frozen=True)
class FeatureRow:
    """One entity's feature values and the close time of the candle they describe."""

    values: dict[str, Any]
    as_of: datetime


class FeatureSource:
    """Reads one symbol's features from Feast; raises FeaturesUnavailable when empty.

    FeatureService objects and the price references are resolved once: Feast's
    ``get_feature_service`` deserialises the registry entry on every call (~15 ms
    here), three times the cost of the online read itself.
    """

    def __init__(self, store: Any = None, cache_seconds: float | None = None) -> None:
        from ingestion import feast_store
        from ingestion.feature_dataset import FeatureDataset
        from ingestion.settings import get_settings

        settings = get_settings()
        self.feast = feast_store
        self.store = store if store is not None else feast_store.get_store()
        self.dataset = FeatureDataset(settings.features_dir)
        self.cache_seconds = (
            settings.feature_cache_seconds if cache_seconds is None else cache_seconds
        )
        self._cache: dict[tuple[str, str | None], tuple[float, tuple[FeatureRow, FeatureRow]]] = {}
        self._services: dict[str, Any] = {}
        self._price_refs: list[str] | None = None
        self._live_refs: dict[str, list[str]] = {}

    def service(self, name: str) -> Any:
        if name not in self._services:
            self._services[name] = self.feast.feature_service(name, self.store)
        return self._services[name]

    def price_refs(self) -> list[str]:
        """``view:feature`` refs of the v1 close and past 24 closes (a subset of price_model_v1)."""
        if self._price_refs is None:
            self._price_refs = [
                f"{projection.name_to_use()}:{field.name}"
                for projection in self.service(PRICE_FEATURE_SERVICE).feature_view_projections
                for field in projection.features
                if field.name in PRICE_FEATURES
            ]
        return self._price_refs

    def refs(self, name: str) -> list[str]:
        """``view:feature`` refs of a FeatureService, in its order."""
        return [
            f"{projection.name_to_use()}:{field.name}"
            for projection in self.service(name).feature_view_projections
            for field in projection.features
        ]

    def live(self, symbol: str, service: str | None) -> tuple[FeatureRow, FeatureRow]:
        """(prices, model features) of the latest candle, reused for ``cache_seconds``.

        Features change once an hour; one online read (~1 ms, most of a request's own
        work) per symbol and service per second serves any request rate. A failed read
        is not cached. Each row keeps its event timestamp, so age and staleness stay exact.
        """
        key, now = (symbol, service), time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        result = self._live(symbol, service)
        self._cache[key] = (now, result)
        return result

    def _live(self, symbol: str, service: str | None) -> tuple[FeatureRow, FeatureRow]:
        """(prices, model features) of the latest candle, in one online read.

        The model's columns are the refs of its FeatureService; the price refs
        ride along in the same read unless the service already holds them (v1).
        """
        if service == PRICE_FEATURE_SERVICE:
            row = self._online(symbol, self.service(service), service)
            return row, row
        if service is None:
            row = self._online(symbol, self.price_refs(), PRICE_FEATURE_SERVICE)
            return row, row
        refs = self._live_refs.get(service)
        if refs is None:
            refs = self._live_refs[service] = list(
                dict.fromkeys(self.price_refs() + self.refs(service))
            )
        row = self._online(symbol, refs, service)
        prices = {k: row.values.get(k) for k in PRICE_FEATURES}
        return FeatureRow(prices, row.as_of), row

    def prices(self, symbol: str) -> FeatureRow:
        """Latest close and the 24 closes before it (online)."""
        return self.live(symbol, None)[0]

    def _online(self, symbol: str, features: Any, label: str) -> FeatureRow:
        raw = self.store.get_online_features(
            features=features, entity_rows=[{"symbol": symbol}]
        ).to_dict(include_event_timestamps=True)
        values = {k: v[0] for k, v in raw.items() if not k.endswith(TS) and k != "symbol"}
        stamps = [v[0] for k, v in raw.items() if k.endswith(TS) and v[0]]
        if not stamps or all(v is None for v in values.values()):
            raise FeaturesUnavailable(
                f"No online features for {symbol} ({label}). Compute and materialize "
                "them first: python -m ingestion features",
                symbol=symbol,
            )
        return FeatureRow(values, datetime.fromtimestamp(min(stamps), tz=UTC))

    def historical(self, symbol: str, as_of: datetime, service: str) -> FeatureRow | None:
        """Features of the candle that closed at ``as_of`` from the offline store, or None.

        None also when no candle closed at ``as_of`` (an hour without trades): the
        point-in-time join would silently hand back the previous hour's row.
        """
        if not self.dataset.has_row(symbol, as_of):
            return None
        entity = pd.DataFrame({"symbol": [symbol], "event_timestamp": [pd.Timestamp(as_of)]})
        frame = self.feast.historical_features(entity, service, self.store)
        if frame.empty:
            return None
        values = {k: (None if _missing(v) else v) for k, v in frame.iloc[0].to_dict().items()}
        return FeatureRow(values, as_of)


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
