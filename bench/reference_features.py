"""An independent, straightforward pandas implementation of the feature definitions.

The pandas baseline of ``bench/features.py`` and the oracle the tests check
``ingestion.features`` against; never used by the product. It follows the written definitions
(``feature_repo/features.py``) with pandas idioms: reindex each symbol to a dense
hourly grid, ``shift`` for lags, ``rolling`` for windows, and the Wilder EWM
recursion (not a closed form) for RSI; ``rolling(n, min_periods=n)`` for "no partial
windows"; the cross-asset group is a merge with the peer's own rows on the close time.
The peer rule (``feature_catalog.peer_symbol``) is part of the definitions, not a formula.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from candlecast.feature_catalog import CROSS_FEATURES, PEER_SOURCE_FEATURES, peer_symbol

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
    f |= _v3_own(d, hourly)
    out = pd.DataFrame({k: np.asarray(v, dtype="float64") for k, v in f.items()})
    out.insert(0, "event_timestamp", event)
    out.insert(0, "symbol", symbol)
    return out[close.notna().to_numpy()].reset_index(drop=True)


def _v3_own(d: pd.DataFrame, hourly: pd.Series) -> dict[str, pd.Series]:
    """The v3 rvol, volume and seasonal groups of one symbol's dense grid ``d``."""
    hl, co = np.log(d["high"] / d["low"]), np.log(d["close"] / d["open"])
    parkinson = hl**2 / (4 * np.log(2))
    garman_klass = 0.5 * hl**2 - (2 * np.log(2) - 1) * co**2
    f = {}
    for n in (1, 24, 168):
        f[f"rv_parkinson_{n}h"] = np.sqrt(parkinson.rolling(n, min_periods=n).mean())
        f[f"rv_gk_{n}h"] = np.sqrt(garman_klass.rolling(n, min_periods=n).mean())
    log_volume = np.log(d["volume"].where(d["volume"] > 0))
    before = log_volume.shift(1)  # the windows end at the candle before the current
    for n in (24, 168):
        std = before.rolling(n, min_periods=n).std(ddof=1)
        f[f"volume_z_{n}h"] = (log_volume - before.rolling(n, min_periods=n).mean()) / std
    abs_r = hourly.abs()  # on the dense grid: NaN next to a missing hour
    # The forecast hour opens at the current open + 1 h: k weeks earlier is 168 k - 1 back.
    weekly = pd.concat([abs_r.shift(168 * k - 1) for k in range(1, 5)], axis=1)
    f["how_abs_return_4w"] = weekly.mean(axis=1, skipna=False)
    week = abs_r.rolling(168, min_periods=168).mean()
    f["how_abs_return_ratio_4w"] = f["how_abs_return_4w"] / week
    return f


def _with_peer(own: dict[str, pd.DataFrame]) -> list[pd.DataFrame]:
    """Each symbol's rows with the v3 cross group: its peer's row of the same close time."""
    out = []
    for symbol, rows in own.items():
        peer = own.get(peer_symbol(symbol), pd.DataFrame(columns=rows.columns))
        lent = peer[["event_timestamp", *PEER_SOURCE_FEATURES]].rename(
            columns=dict(zip(PEER_SOURCE_FEATURES, CROSS_FEATURES, strict=True))
        )
        lent = lent.astype(dict.fromkeys(CROSS_FEATURES, "float64"))
        out.append(rows.merge(lent, on="event_timestamp", how="left"))
    return out


def reference_features(candles: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (symbol, event_timestamp, every feature) for candle-store rows."""
    own = {str(s): _one_symbol(str(s), g) for s, g in candles.groupby("symbol", sort=True)}
    return pd.concat(_with_peer(own), ignore_index=True)
