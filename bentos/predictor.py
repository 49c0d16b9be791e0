"""Request logic of the prediction API, independent of BentoML and HTTP.

``Predictor`` validates a request, fetches features, calls a model service and
assembles the result. Models are injected as async callables and features as
any object with ``online``/``historical`` (``bentos.features.FeatureSource``),
so unit tests run it with fakes and the service wires in the real ones.

The champions it serves are one immutable snapshot (``snapshot``), replaced whole
by :meth:`Predictor.swap` (``bentos.reload``); a request reads it once, so its
model, its spec and the version its row names (``bentos.encoding``) agree.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import anyio
import numpy as np

from bentos.encoding import FAILED, MISSING, decode, encode
from bentos.errors import (
    BadTime,
    FeaturesUnavailable,
    ServiceUnavailable,
    UnknownModel,
    UnknownSymbol,
)
from bentos.features import FeatureRow
from bentos.registry import default_model
from bentos.reload import Snapshot
from candlecast import contract, intervals
from candlecast.contract import NAIVE, ModelSpec
from candlecast.feast_store import PAST_HOURS
from candlecast.feast_store import PRICE_SERVICE as PRICE_FEATURE_SERVICE
from candlecast.intervals import Calibration
from candlecast.metrics import beats_persistence
from candlecast.times import HOUR, utc

RunModel = Callable[[np.ndarray], Awaitable[np.ndarray]]
WarmModels = Callable[[list[str]], Awaitable[Any]]
ENTITY_COLUMNS = ("symbol", "event_timestamp")


@dataclass(frozen=True)
class ServedFamily:
    """One model service: its champion per symbol at start-up and the async calls into it.

    ``run`` takes request rows (``bentos.encoding``); ``load`` has the model service load
    versions before they are served (None: nothing to load, e.g. in-process models).
    """

    specs: Mapping[str, ModelSpec]
    run: RunModel
    load: WarmModels | None = None

    async def warm(self, tags: list[str]) -> None:
        if self.load is not None:
            await self.load(tags)


def freeze(specs: Mapping[str, Mapping[str, ModelSpec]]) -> Snapshot:
    """An immutable copy of family -> symbol -> spec."""
    return MappingProxyType({f: MappingProxyType(dict(s)) for f, s in specs.items()})


def check_symbol(symbol: Any, known: list[str]) -> str:
    """The served symbol asked for (upper-cased), or UnknownSymbol naming the known ones."""
    name = str(symbol or "").strip().upper()
    if name not in known:
        raise UnknownSymbol(
            f"Unknown symbol {symbol!r}. Known symbols: {', '.join(known)}",
            known_symbols=known,
        )
    return name


class Predictor:
    """Answers predict/models/symbols for the served symbols."""

    def __init__(
        self,
        symbols: list[str],
        families: Mapping[str, ServedFamily],
        features: Any,
        stale_after_seconds: float = 7200,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.symbols = list(symbols)
        self.families = dict(families)
        self.snapshot = freeze({f: fam.specs for f, fam in self.families.items()})
        self.features = features
        self.stale_after_seconds = stale_after_seconds
        self.clock = clock

    def swap(self, snapshot: Mapping[str, Mapping[str, ModelSpec]]) -> None:
        """Serve ``snapshot`` from the next request on (one reference replaced at once)."""
        self.snapshot = freeze(snapshot)

    def specs(self, symbol: str, snapshot: Snapshot | None = None) -> dict[str, ModelSpec]:
        """Servable models for a symbol, naive included, by name."""
        snapshot = self.snapshot if snapshot is None else snapshot
        found = {f: specs[symbol] for f, specs in snapshot.items() if symbol in specs}
        naive = contract.naive_spec(symbol, PRICE_FEATURE_SERVICE)
        calibrated = [s for s in found.values() if s.persistence_intervals]
        if calibrated:  # persistence's own calibration, from the latest-trained champion
            newest = max(calibrated, key=lambda s: s.cut or "")
            naive = replace(naive, intervals=newest.persistence_intervals)
        return {**found, NAIVE: naive}

    def default(self, symbol: str, snapshot: Snapshot | None = None) -> str:
        specs = self.specs(symbol, snapshot)
        return default_model([s for n, s in specs.items() if n != NAIVE])

    def check_symbol(self, symbol: Any) -> str:
        return check_symbol(symbol, self.symbols)

    def check_model(self, symbol: str, model: Any, snapshot: Snapshot | None = None) -> ModelSpec:
        snapshot = self.snapshot if snapshot is None else snapshot
        specs = self.specs(symbol, snapshot)
        name = str(model).strip().lower() if model not in (None, "") else None
        name = self.default(symbol, snapshot) if name is None else name
        if name not in specs:
            raise UnknownModel(
                f"Unknown model {model!r} for {symbol}. Choose one of: {', '.join(specs)}",
                choices=list(specs),
            )
        return specs[name]

    def check_time(self, at: Any, now: datetime) -> datetime | None:
        """None for "now"; else the UTC instant asked for (never in the future)."""
        if at is None or str(at).strip().lower() in ("", "now"):
            return None
        try:
            when = utc(str(at))
        except ValueError:
            raise BadTime(
                f"Cannot read at={at!r}: use 'now' or ISO-8601, e.g. 2024-06-01T12:00Z"
            ) from None
        if when > now:
            raise BadTime(f"at={when.isoformat()} is in the future (now {now.isoformat()})")
        return when.to_pydatetime()

    async def predict(self, symbol: Any, model: Any = None, at: Any = None) -> dict[str, Any]:
        now = self.clock()
        snapshot = self.snapshot  # once: this request's model, spec and version agree
        symbol = self.check_symbol(symbol)
        spec = self.check_model(symbol, model, snapshot)
        when = self.check_time(at, now)
        service = None if spec.family == NAIVE else spec.feature_service
        cached = None if when is not None else self.features.cached(symbol, service)
        # A read the store has not replaced since is served on the loop; a read blocks
        prices, values = cached or await anyio.to_thread.run_sync(self.lookup, symbol, spec, when)
        close = float(prices.values["close"])
        predicted = await self.forecast(spec, values, close)
        return self.result(spec, prices, close, predicted, reference=when or now, now=now)

    def lookup(self, symbol: str, spec: ModelSpec, when: datetime | None):
        """(price row, model feature row): online for now, offline for a past hour."""
        if when is None:
            return self.features.live(
                symbol, None if spec.family == NAIVE else spec.feature_service
            )
        latest = self.features.prices(symbol)
        as_of = when.replace(minute=0, second=0, microsecond=0)
        if as_of > latest.as_of:
            raise BadTime(
                f"at={when.isoformat()} is after the last stored candle of {symbol} "
                f"(closed {latest.as_of.isoformat()}); use at=now",
                latest=latest.as_of.isoformat(),
            )
        prices = self.past(symbol, as_of, PRICE_FEATURE_SERVICE, latest)
        if spec.feature_service == PRICE_FEATURE_SERVICE:
            return prices, prices
        return prices, self.past(symbol, as_of, spec.feature_service, latest)

    def past(self, symbol: str, as_of: datetime, service: str, latest: FeatureRow) -> FeatureRow:
        row = self.features.historical(symbol, as_of, service)
        needed = ("close",) if service == PRICE_FEATURE_SERVICE else ()
        if row is None or any(row.values.get(k) is None for k in needed) or not _any(row):
            raise BadTime(
                f"No stored features for {symbol} at {as_of.isoformat()} ({service}); "
                f"stored data ends {latest.as_of.isoformat()}",
                latest=latest.as_of.isoformat(),
            )
        return row

    async def forecast(self, spec: ModelSpec, values: FeatureRow, close: float) -> float:
        if spec.family == NAIVE:
            return close
        x = contract.feature_vector(spec, values.values)
        if x is None:
            missing = [f for f in spec.features if values.values.get(f) is None]
            raise FeaturesUnavailable(
                f"Features for {spec.symbol} at {values.as_of.isoformat()} are incomplete "
                f"for model {spec.family}: missing {missing[:5]}",
            )
        index = self.symbols.index(spec.symbol) if spec.symbol in self.symbols else -1
        row = encode(index, spec.version, contract.model_input(spec, x))
        try:
            raw = await self.families[spec.family].run(row)
        except Exception as exc:  # a model service failing is the server's fault, said plainly
            raise ServiceUnavailable(f"model service {spec.family} failed: {exc}") from exc
        output, status = decode(raw)
        if status in (MISSING, FAILED):
            problem = "has no" if status == MISSING else "could not load"
            raise ServiceUnavailable(
                f"model service {spec.family} {problem} version {spec.version} of "
                f"{spec.symbol} (see its log)",
                model_version=spec.version,
            )
        price = float(contract.forecast_prices(spec, np.array([output]), np.array([close]))[0])
        if not math.isfinite(price):
            raise ServiceUnavailable(f"model {spec.family} returned a non-finite forecast")
        return price

    def result(self, spec, prices: FeatureRow, close, predicted, reference, now) -> dict:
        past = [prices.values.get(f"price_{h}_hour_ago") for h in range(PAST_HOURS, 0, -1)]
        age = max(0.0, (reference - prices.as_of).total_seconds())
        change = predicted - close
        calibration = Calibration.from_dict(spec.intervals)
        uncertainty = intervals.describe(
            calibration, predicted, close, intervals.scale([*past, close])
        )
        return {
            "symbol": spec.symbol,
            "model": spec.family,
            "model_version": spec.version,
            "mae_ratio_vs_persistence": spec.mae_ratio_vs_persistence,
            "feature_service": spec.feature_service,
            "as_of": prices.as_of.isoformat(),
            "target_time": (prices.as_of + HOUR).isoformat(),
            "current_price": close,
            "predicted_price": predicted,
            "predicted_change": change,
            "predicted_change_pct": 100.0 * change / close if close else 0.0,
            **uncertainty,
            "past_24_hour_prices": [None if p is None else float(p) for p in past],
            "features_age_seconds": age,
            "stale": age > self.stale_after_seconds,
            "request_timestamp": now.isoformat(),
        }

    def models(self) -> list[dict[str, Any]]:
        """Every servable model per symbol with its walk-forward figures."""
        rows, snapshot = [], self.snapshot
        for symbol in self.symbols:
            default = self.default(symbol, snapshot)
            for name, spec in self.specs(symbol, snapshot).items():
                ratio = spec.mae_ratio_vs_persistence
                rows.append(
                    {
                        "symbol": symbol,
                        "model": name,
                        "model_version": spec.version,
                        "feature_service": spec.feature_service,
                        "target": spec.target,
                        "mae_ratio_vs_persistence": ratio,
                        "beats_persistence": beats_persistence(
                            ratio, spec.metrics.get("dm_pvalue")
                        ),
                        "default": name == default,
                        "metrics": dict(spec.metrics),
                    }
                )
        return rows


def _any(row: FeatureRow) -> bool:
    """True when the offline join found a feature row (not only the entity columns)."""
    return any(v is not None for k, v in row.values.items() if k not in ENTITY_COLUMNS)
