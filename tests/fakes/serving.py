"""Tiny registered models and an in-memory feature source for the serving tests.

Models follow the registry contract (name, labels, metadata, files) exactly as
training writes them, but are fit on random data in well under a second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bentoml
import joblib
import numpy as np

from bentos.features import FeatureRow
from bentos.inference import PRICE_FEATURES

FEATURES = ["ret_1h", "ret_4h", "vol_24h", "rsi_14"]
LAST_CLOSE = datetime(2024, 7, 1, tzinfo=UTC)
FIRST_CLOSE = datetime(2024, 1, 2, tzinfo=UTC)


def metadata(
    family: str, symbol: str, ratio: float, features: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """Contract metadata; null fields are left out (BentoML metadata rejects None)."""
    meta = {
        "family": family,
        "symbol": symbol,
        "feature_service": "price_model_v2",
        "features": list(features or FEATURES),
        "target": "return",
        "input_mean": None,
        "input_scale": None,
        "output_mean": None,
        "output_scale": None,
        "input_shape": "flat",
        "metrics": {"mae": 200.0 * ratio, "mae_ratio_vs_persistence": ratio, "n": 100},
        "persistence": {"mae": 200.0, "mae_ratio_vs_persistence": 1.0, "n": 100},
        "beats_persistence": ratio < 1.0,
        **extra,
    }
    return {k: v for k, v in meta.items() if v is not None}


def labels(family: str, symbol: str, stage: str = "champion") -> dict[str, str]:
    return {"stage": stage, "family": family, "symbol": symbol.lower()}


def register_lasso(
    symbol: str = "BTC-USD", ratio: float = 0.99, stage: str = "champion", features=None
) -> str:
    """A scaler+Lasso Pipeline fit on random rows, saved as model.joblib."""
    features = list(features or FEATURES)
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(features)))
    y = 0.001 * x[:, 0] + rng.normal(scale=1e-4, size=200)
    # alpha ~ signal: a small coefficient, so raw real-valued features stay near zero return
    pipeline = make_pipeline(StandardScaler(), Lasso(alpha=5e-4)).fit(x, y)
    name = f"candlecast-lasso-{symbol.lower()}"
    meta = metadata("lasso", symbol, ratio, features)
    with bentoml.models.create(name, labels=labels("lasso", symbol, stage), metadata=meta) as m:
        joblib.dump(pipeline, m.path_of("model.joblib"))
    return str(m.tag)


def register_cnn(
    symbol: str = "BTC-USD",
    ratio: float = 1.05,
    stage: str = "champion",
    features=None,
    output_scale: float = 1e-3,
    reference: bool = False,
) -> str:
    """A Conv1D net (random weights) saved as model.keras without optimizer.

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
    meta = metadata(
        "cnn",
        symbol,
        ratio,
        features,
        input_shape="sequence",
        input_mean=[0.0] * n,
        input_scale=[1.0] * n,
        output_mean=0.0,
        output_scale=output_scale,
    )
    name = f"candlecast-cnn-{symbol.lower()}"
    with bentoml.models.create(name, labels=labels("cnn", symbol, stage), metadata=meta) as m:
        model.save(m.path_of("model.keras"))
    return str(m.tag)


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
