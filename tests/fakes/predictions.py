"""Forecast rows as the live loop logs them, built from stored candles.

One row per candle and model: the forecast made when the candle closed (``as_of`` =
its open time + 1 h), from its close (``current_price``), for the next hour. Model
predictions are the close times a seeded noise factor, naive's is the close itself,
so the figures are deterministic and easy to recompute by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from candlecast.contract import NAIVE, model_name
from candlecast.feast_store import DEFAULT_SERVICE, PRICE_SERVICE

HOUR = pd.Timedelta(hours=1)
TRAINED_UNTIL = "2024-01-01T00:00:00+00:00"


def version_of(model: str, symbol: str, version: int = 1) -> str:
    return NAIVE if model == NAIVE else f"{model_name(model, symbol)}:v{version}"


def forecast_rows(
    candles: pd.DataFrame,
    models: tuple[str, ...] = ("lasso", NAIVE),
    *,
    seed: int = 0,
    noise: float = 0.003,
    default: str = "lasso",
    version: int = 1,
    issued_after: pd.Timedelta = pd.Timedelta(minutes=5),
) -> pd.DataFrame:
    """The forecasts every model in ``models`` made from each of ``candles``."""
    rng = np.random.default_rng(seed)
    frames = []
    for model in models:
        current = candles["close"].to_numpy()
        if model == NAIVE:
            predicted = current
        else:
            predicted = np.round(current * (1 + rng.normal(0, noise, len(current))), 2)
        as_of = (candles["time"] + HOUR).astype("datetime64[us, UTC]").reset_index(drop=True)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": candles["symbol"].to_numpy(),
                    "model": model,
                    "model_version": [version_of(model, s, version) for s in candles["symbol"]],
                    "model_trained_until": None if model == NAIVE else TRAINED_UNTIL,
                    "feature_service": PRICE_SERVICE if model == NAIVE else DEFAULT_SERVICE,
                    "is_default": model == default,
                    "issued_at": as_of + issued_after,
                    "as_of": as_of,
                    "current_price": current,
                    "predicted_price": predicted,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
