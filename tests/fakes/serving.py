"""Tiny registered models and an in-memory feature source for the serving tests.

Models are stored through the real registry function (``training.registry.register``)
with a :class:`~candlecast.contract.ModelSpec`, exactly as training stores them, but
are fit on random data in well under a second. No metadata is written by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import stats

from bentos.features import FeatureRow
from candlecast.contract import CANDIDATE, CHAMPION, ModelSpec, Scaling
from candlecast.feast_store import PRICE_FEATURES

FEATURES = ["ret_1h", "ret_4h", "vol_24h", "rsi_14"]
LAST_CLOSE = datetime(2024, 7, 1, tzinfo=UTC)
FIRST_CLOSE = datetime(2024, 1, 2, tzinfo=UTC)
__all__ = ["CANDIDATE", "CHAMPION", "FakeFeatures", "register_cnn", "register_lasso", "spec"]


#: A calibration whose scores are standard normal (candlecast.intervals.Calibration).
NORMAL_CALIBRATION = {
    "n": 1000,
    "quantiles": {"80": 1.2815515655446004, "95": 1.959963984540054},
    "percentiles": [float(x) for x in stats.norm.ppf(np.linspace(0.0005, 0.9995, 101))],
    "clipped": [],
}


def spec(
    family: str,
    symbol: str,
    ratio: float,
    features: list[str] | None = None,
    scaling: Scaling | None = None,
    **extra: Any,
) -> ModelSpec:
    """A contract spec with walk-forward figures at ``ratio`` to persistence (MAE 200).

    A ratio below 1 comes with a Diebold-Mariano p-value of 0.01 (it beats persistence,
    so it may be the default), any other with 0.5; intervals are standard normal's.
    """
    extra.setdefault("intervals", NORMAL_CALIBRATION)
    extra.setdefault("persistence_intervals", NORMAL_CALIBRATION)
    return ModelSpec(
        family=family,
        symbol=symbol,
        feature_service="price_model_v2",
        features=tuple(features or FEATURES),
        target="return",
        scaling=scaling or Scaling(),
        metrics={
            "mae": 200.0 * ratio,
            "mae_ratio_vs_persistence": ratio,
            "n": 100,
            "dm_pvalue": 0.01 if ratio < 1.0 else 0.5,
            "coverage_80": 0.8,
        },
        persistence={"mae": 200.0, "mae_ratio_vs_persistence": 1.0, "n": 100},
        beats_persistence=ratio < 1.0,
        **extra,
    )


def _register(estimator: Any, model_spec: ModelSpec, stage: str) -> str:
    from training.models import Fitted
    from training.registry import Decision, register

    fitted = Fitted(model_spec.family, estimator, model_spec.scaling)
    return register(fitted, model_spec, Decision(stage, "registered by a test fake"))


def register_lasso(
    symbol: str = "BTC-USD", ratio: float = 0.99, stage: str = CHAMPION, features=None
) -> str:
    """A scaler+Lasso Pipeline fit on random rows."""
    features = list(features or FEATURES)
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(features)))
    y = 0.001 * x[:, 0] + rng.normal(scale=1e-4, size=200)
    # alpha ~ signal: a small coefficient, so raw real-valued features stay near zero return
    pipeline = make_pipeline(StandardScaler(), Lasso(alpha=5e-4)).fit(x, y)
    return _register(pipeline, spec("lasso", symbol, ratio, features), stage)


def register_cnn(
    symbol: str = "BTC-USD",
    ratio: float = 1.05,
    stage: str = CHAMPION,
    features=None,
    output_scale: float = 1e-3,
    reference: bool = False,
) -> str:
    """A Conv1D net with random weights.

    Small by default (fast tests); ``reference=True`` builds the real architecture
    (``training.models.build_cnn``) so benchmarks time what production serves.
    """
    import keras

    keras.utils.set_random_seed(0)
    features = list(features or FEATURES)
    n = len(features)
    if reference:
        from training.models import build_cnn

        model = build_cnn(n)
    else:
        model = keras.Sequential(
            [
                keras.layers.InputLayer((n, 1)),
                keras.layers.Conv1D(4, kernel_size=2),
                keras.layers.Flatten(),
                keras.layers.Dense(1),
            ]
        )
    scaling = Scaling(np.zeros(n), np.ones(n), 0.0, output_scale)
    return _register(model, spec("cnn", symbol, ratio, features, scaling), stage)


def v1_values(symbol: str = "BTC-USD", close: float = 60000.0) -> dict[str, Any]:
    values = {name: close - 10.0 * i for i, name in enumerate(PRICE_FEATURES)}
    return {"symbol": symbol, **values}


class FakeFeatures:
    """Serves v1 prices and the FEATURES of v2 for symbols in ``data``; hourly up to LAST_CLOSE."""

    def __init__(self, symbols: tuple[str, ...] = ("BTC-USD",), last_close=LAST_CLOSE) -> None:
        self.symbols = symbols
        self.last_close = last_close
        self.calls: list[tuple[str, str, str]] = []

    def row(self, symbol: str, service: str, as_of: datetime) -> FeatureRow:
        if service == "price_model_v1":
            return FeatureRow(v1_values(symbol), as_of)
        return FeatureRow({"symbol": symbol, **dict.fromkeys(FEATURES, 0.5)}, as_of)

    def online(self, symbol: str, service: str) -> FeatureRow:
        from bentos.errors import FeaturesUnavailable

        self.calls.append(("online", symbol, service))
        if symbol not in self.symbols:
            raise FeaturesUnavailable(f"No online features for {symbol} ({service})")
        return self.row(symbol, service, self.last_close)

    def prices(self, symbol: str) -> FeatureRow:
        return self.online(symbol, "price_model_v1")

    def cached(self, symbol: str, service: str | None) -> None:
        """Never a hit: every request reads (and is counted in ``calls``)."""
        return None

    def live(self, symbol: str, service: str | None) -> tuple[FeatureRow, FeatureRow]:
        prices = self.prices(symbol)
        return prices, (prices if service is None else self.online(symbol, service))

    def historical(self, symbol: str, as_of: datetime, service: str) -> FeatureRow | None:
        self.calls.append(("historical", symbol, service))
        if as_of < FIRST_CLOSE or as_of > self.last_close:
            return None
        return self.row(symbol, service, as_of)


def fresh_close() -> datetime:
    """The start of the current hour: features at most an hour old, so never stale."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
