"""The live loop's forecasts: the API's own request code, run in the loop's process.

Each cycle asks :class:`bentos.predictor.Predictor` (the code behind ``/predict``)
for every served model of a symbol, exactly as a client would: ``at=now`` for the
hour that just closed (online features) and ``at=<hour>`` for an hour the loop
missed (offline features, point in time). The model calls run in-process through
the forward pass the model services use; the champions are re-read from the
model store every cycle, so a promotion takes effect on the next forecast.

A forecast is only logged when the model's training cut is not after the hour it
forecasts from (``model_trained_until <= as_of``): a catch-up never logs an hour
with a model that saw it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import anyio
import numpy as np
import pandas as pd

from bentos.errors import CandlecastError
from bentos.features import FeatureSource
from bentos.predictor import Predictor, ServedFamily
from bentos.runners import run_grouped
from candlecast import model_store
from candlecast.contract import NAIVE, ModelSpec, Predict
from candlecast.times import HOUR, utc

log = logging.getLogger(__name__)


class Forecaster:
    """Builds the API's Predictor from the store's current champions, with cached weights."""

    def __init__(
        self, symbols: list[str], families: list[str], clock: Callable[[], datetime]
    ) -> None:
        self.symbols = list(symbols)
        self.families = list(families)
        self.clock = clock
        self._features: FeatureSource | None = None
        self._forwards: dict[str, Predict] = {}
        self._stored: dict[tuple[str, str], model_store.StoredModel] = {}
        self._signature: tuple | None = None

    def champions(self) -> dict[str, dict[str, ModelSpec]]:
        """family -> symbol -> champion spec, for the families with a champion."""
        found: dict[str, dict[str, ModelSpec]] = {}
        for (family, symbol), stored in self._refresh().items():
            found.setdefault(family, {})[symbol] = stored.spec
        return found

    def champion(self, family: str, symbol: str) -> model_store.StoredModel | None:
        """The store's champion of (family, symbol) now, or None."""
        return self._refresh().get((family, symbol))

    def _refresh(self) -> dict[tuple[str, str], model_store.StoredModel]:
        """Champions, re-read only when a ``model.yaml`` of a served model changed.

        A version added or relabelled (by this loop or anyone else) changes the
        signature; listing the store parses every version's YAML (~0.1 s a name).
        """
        signature = self._store_signature()
        if signature != self._signature:
            self._stored, self._signature = self._read_champions(), signature
        return self._stored

    def _store_signature(self) -> tuple:
        return tuple(model_store.signature(f, s) for f in self.families for s in self.symbols)

    def _read_champions(self) -> dict[tuple[str, str], model_store.StoredModel]:
        found = {}
        for family in self.families:
            for symbol in self.symbols:
                stored = model_store.champion(family, symbol)
                if stored is not None:
                    found[family, symbol] = stored
                    if stored.tag not in self._forwards:
                        self._forwards[stored.tag] = stored.forward()
        return found

    @property
    def features(self) -> FeatureSource:
        """Built on first use: a new home has no Feast registry until the first fetch."""
        if self._features is None:
            # Models that share a FeatureService share one online read of the hour (reads
            # are reused until the online store is written again).
            self._features = FeatureSource()
        return self._features

    def predictor(self) -> Predictor:
        families = {
            family: ServedFamily(specs, self._runner(specs))
            for family, specs in self.champions().items()
        }
        return Predictor(self.symbols, families, self.features, clock=self.clock)

    def _runner(self, specs: dict[str, ModelSpec]):
        models = [(spec, self._forwards[spec.version]) for spec in specs.values()]

        async def run(rows: np.ndarray) -> np.ndarray:
            return run_grouped(rows, models)

        return run

    def forecast(self, symbol: str, hours: list[pd.Timestamp], latest: pd.Timestamp) -> list[dict]:
        """Log rows for each served model at each close hour in ``hours``.

        ``latest`` (the newest feature row) is asked for with ``at=now``, the others
        with ``at=<hour>``. A model that cannot answer for an hour is logged at
        warning level and skipped; the others still forecast.
        """
        self.features.forget()
        predictor = self.predictor()
        models = list(predictor.specs(symbol))
        default = predictor.default(symbol)
        issued = utc(self.clock())
        rows = []
        for hour in hours:
            for model in models:
                at = None if hour == latest else hour.isoformat()
                try:
                    answer = anyio.run(predictor.predict, symbol, model, at)
                except CandlecastError as exc:
                    log.warning("%s %s at %s: no forecast: %s", symbol, model, hour, exc.message)
                    continue
                row = to_log_row(answer, predictor.specs(symbol)[model], default, issued)
                if row is not None:
                    rows.append(row)
        return rows


def to_log_row(answer: dict, spec: ModelSpec, default: str, issued: pd.Timestamp) -> dict | None:
    """A /predict answer as a prediction-log row (None if the model saw the hour)."""
    as_of = utc(answer["as_of"])
    cut = utc(spec.cut) if spec.family != NAIVE and spec.cut else None
    if cut is not None and cut > as_of:
        log.info(
            "%s %s: not logging %s: trained until %s, after the hour",
            spec.symbol,
            spec.family,
            as_of,
            cut,
        )
        return None
    return {
        "symbol": answer["symbol"],
        "model": answer["model"],
        "model_version": answer["model_version"],
        "model_trained_until": cut,
        "feature_service": answer["feature_service"],
        "is_default": answer["model"] == default,
        "issued_at": issued,
        "as_of": as_of,
        "target_time": as_of + HOUR,
        "current_price": answer["current_price"],
        "predicted_price": answer["predicted_price"],
        **log_intervals(answer),
    }


def log_intervals(answer: dict) -> dict:
    """The forecast's intervals and P(up) as the prediction log's columns (null if none)."""
    row = {"p_up": answer.get("p_up")}
    for key in ("80", "95"):
        bounds = answer.get(f"interval_{key}") or (None, None)
        row[f"lower_{key}"], row[f"upper_{key}"] = bounds
    return row
