"""An independent, straightforward pandas implementation of the feature definitions.

The pandas baseline of ``bench/features.py`` and the oracle the tests check
``ingestion.features`` against; never used by the product. It follows the written definitions
(``feature_repo/features.py``) with pandas idioms: reindex each symbol to a dense
hourly grid, ``shift`` for lags, ``rolling`` for windows, and the Wilder EWM
recursion (not a closed form) for RSI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALPHA = 1 / 14


def wilder_rsi(closes_oldest_first: np.ndarray) -> np.ndarray:
    """Row-wise ``ta.momentum.rsi(window=14)`` last value, for a (rows, n) array of closes."""
    diff = np.diff(closes_oldest_first, axis=1)
    up_ema = np.zeros(len(diff))  # ta: the first (NaN) diff becomes 0, the EWM's seed
    down_ema = np.zeros(len(diff))
    for k in range(diff.shape[1]):
        d = diff[:, k]
        up = np.where(np.isnan(d), np.nan, np.where(d > 0, d, 0.0))
        down = np.where(np.isnan(d), np.nan, np.where(d < 0, -d, 0.0))
        up_ema = (1 - ALPHA) * up_ema + ALPHA * up
        down_ema = (1 - ALPHA) * down_ema + ALPHA * down
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(down_ema == 0, 100.0, 100 - 100 / (1 + up_ema / down_ema))
    return np.where(np.isnan(up_ema) | np.isnan(down_ema), np.nan, rsi)


def _one_symbol(symbol: str, candles: pd.DataFrame) -> pd.DataFrame:
    g = candles.set_index("time").sort_index()
    d = g.reindex(pd.date_range(g.index.min(), g.index.max(), freq="h"))
    close, volume = d["close"], d["volume"]
    f: dict[str, pd.Series | np.ndarray] = {}
    for name in ["open", "high", "low", "close", "volume"]:
        f[name] = d[name]
    f["upper_shadow"] = d["high"] - np.maximum(d["open"], d["close"])
    f["lower_shadow"] = np.minimum(d["open"], d["close"]) - d["low"]
    lags = range(1, 25)
    prices = pd.concat({i: close.shift(i) for i in lags}, axis=1)
    volumes = pd.concat({i: volume.shift(i) for i in lags}, axis=1)
    for i in lags:
        f[f"price_{i}_hour_ago"] = prices[i]
    for i in lags:
        f[f"volume_{i}_hour_ago"] = volumes[i]
    f["pr_24hr_mavg"] = prices.mean(axis=1, skipna=False)
    f["pr_24hr_mstd"] = prices.std(axis=1, ddof=1, skipna=False)
    f["volume_24hr_mavg"] = volumes.mean(axis=1, skipna=False)
    f["volume_24hr_mstd"] = volumes.std(axis=1, ddof=1, skipna=False)
    for h in (2, 3, 4, 12, 24):
        f[f"percentage_return_{h}_hour"] = (prices[1] - prices[h]) / prices[h]
    f["rsi"] = wilder_rsi(prices[list(range(24, 0, -1))].to_numpy())
    event = d.index + pd.Timedelta(hours=1)
    hour = 2 * np.pi * event.hour / 24
    dow = 2 * np.pi * event.dayofweek / 7
    f["hour_sin"], f["hour_cos"], f["dow_sin"], f["dow_cos"] = (
        np.sin(hour),
        np.cos(hour),
        np.sin(dow),
        np.cos(dow),
    )
    hourly = np.log(close / close.shift(1))
    for h in lags:
        f[f"log_return_{h}h"] = np.log(close / close.shift(h))
    f["log_volume_rel_24h"] = np.log(volume / volume.rolling(24).mean())
    f["volatility_6h"] = hourly.rolling(6).std()
    f["volatility_24h"] = hourly.rolling(24).std()
    f["close_dist_24h"] = np.log(close / close.rolling(24).mean()) / f["volatility_24h"]
    window = pd.concat({i: close.shift(i) for i in range(23, -1, -1)}, axis=1)
    f["rsi_14"] = wilder_rsi(window.to_numpy())
    f["range_rel"] = (d["high"] - d["low"]) / close
    f["body_rel"] = (close - d["open"]) / close
    out = pd.DataFrame({k: np.asarray(v, dtype="float64") for k, v in f.items()})
    out.insert(0, "event_timestamp", event)
    out.insert(0, "symbol", symbol)
    return out[close.notna().to_numpy()].reset_index(drop=True)


def reference_features(candles: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (symbol, event_timestamp, every feature) for candle-store rows."""
    frames = [_one_symbol(str(s), g) for s, g in candles.groupby("symbol", sort=True)]
    return pd.concat(frames, ignore_index=True)
