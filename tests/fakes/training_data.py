"""Labelled frames for training tests without Feast: synthetic walks and the real BTC CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from training.dataset import LabelledFrame, join_features, label_rows

LAG_NAMES = ["close", *[f"price_{i}_hour_ago" for i in range(1, 25)]]


def random_walk_candles(hours: int = 1500, seed: int = 0, symbol: str = "BTC-USD") -> pd.DataFrame:
    """Hourly candles of a geometric random walk (no signal beyond persistence)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=hours, freq="h", tz="UTC")
    close = 40000 * np.exp(np.cumsum(rng.normal(0, 0.005, hours)))
    return pd.DataFrame(
        {
            "symbol": symbol,
            "time": times.astype("datetime64[us, UTC]"),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": 1.0,
        }
    )


def lag_features(candles: pd.DataFrame) -> pd.DataFrame:
    """Close and 24 lagged closes keyed like Feast rows (shuffled, as Feast may return them)."""
    frame = pd.DataFrame(
        {
            "symbol": candles["symbol"].to_numpy(),
            "event_timestamp": candles["time"] + pd.Timedelta(hours=1),
            "close": candles["close"].to_numpy(),
        }
    )
    for i in range(1, 25):
        frame[f"price_{i}_hour_ago"] = candles["close"].shift(i).to_numpy()
    return frame.sample(frac=1.0, random_state=7).reset_index(drop=True)


def synthetic_frame(hours: int = 1500, seed: int = 0, target: str = "return") -> LabelledFrame:
    candles = random_walk_candles(hours, seed)
    frame = join_features(label_rows(candles), lag_features(candles), LAG_NAMES)
    return LabelledFrame(frame, LAG_NAMES, target, "BTC-USD", "synthetic")


def csv_candles(path: Path, symbol: str = "BTC-USD") -> pd.DataFrame:
    raw = pd.read_csv(path)
    candles = pd.DataFrame(
        {"symbol": symbol, "time": pd.to_datetime(raw["time"], unit="s", utc=True)}
    )
    for col in ("open", "high", "low", "close", "volume"):
        candles[col] = raw[col].astype(float)
    candles["time"] = candles["time"].astype("datetime64[us, UTC]")
    return candles


def real_frame(
    path: Path, service: str = "price_model_v1", target: str = "return"
) -> LabelledFrame:
    """The real BTC rows with features computed by the one feature SQL (no Feast round trip)."""
    from ingestion.features import V1_FEATURES, V2_FEATURES, compute_features

    names = list(V1_FEATURES if service == "price_model_v1" else V2_FEATURES)
    candles = csv_candles(path)
    features = compute_features(candles).to_pandas()
    frame = join_features(label_rows(candles), features, names)
    return LabelledFrame(frame, names, target, "BTC-USD", service)
