"""Test markets and labelled frames without Feast: synthetic walks, a gapped GARCH market
(BTC-USD, and ETH-USD with holes at other hours) and the real BTC CSV."""

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


def feature_frame(
    candles: pd.DataFrame, service: str = "price_model_v1", target: str = "return"
) -> LabelledFrame:
    """Labelled rows of ``candles`` with features computed by the one feature SQL (no Feast)."""
    from ingestion.features import V1_FEATURES, V2_FEATURES, compute_features

    names = list(V1_FEATURES if service == "price_model_v1" else V2_FEATURES)
    symbol = str(candles["symbol"].iloc[0])
    features = compute_features(candles).to_pandas()
    frame = join_features(label_rows(candles), features, names)
    return LabelledFrame(frame, names, target, symbol, service)


def real_frame(
    path: Path, service: str = "price_model_v1", target: str = "return"
) -> LabelledFrame:
    """The real BTC rows with features computed by the one feature SQL (no Feast round trip)."""
    return feature_frame(csv_candles(path), service, target)


#: The synthetic market ends where the real file does: its last candle closes 2024-07-01 00:00.
SYNTHETIC_END = pd.Timestamp("2024-07-01", tz="UTC")
SYNTHETIC_HOURS = 2000  # 2024-04-08 16:00 .. 2024-06-30 23:00 (open times)
SYNTHETIC_SEED = 2024
#: Hand-made holes (first missing open time, missing hours): hours an exchange had no trades.
#: Spread so each heals (24 h of complete lags) before the next; the last 25 h are complete.
SYNTHETIC_GAPS: tuple[tuple[str, int], ...] = (
    ("2024-04-20 05:00", 3),  # training history; the feature reference test's gap
    ("2024-05-15 11:00", 1),  # inside what the point-in-time hourly update fetches
    ("2024-06-05 14:00", 2),  # the leakage folds (2024-06-03 + 2 weeks)
    ("2024-06-20 08:00", 4),  # the backtest's test weeks (2024-06-17 .. 07-01)
    ("2024-06-26 17:00", 1),  # the train command's last week
)


def gap_hours(gaps: tuple[tuple[str, int], ...] = SYNTHETIC_GAPS) -> pd.DatetimeIndex:
    """Open times of every hour the gapped market has no candle for."""
    parts = [pd.date_range(start, periods=n, freq="h", tz="UTC") for start, n in gaps]
    return parts[0].append(parts[1:]) if parts else pd.DatetimeIndex([], tz="UTC")


def gapped_market_candles(
    symbol: str = "BTC-USD",
    hours: int = SYNTHETIC_HOURS,
    seed: int = SYNTHETIC_SEED,
    end: pd.Timestamp = SYNTHETIC_END,
    gaps: tuple[tuple[str, int], ...] = SYNTHETIC_GAPS,
) -> pd.DataFrame:
    """The project's GARCH market (``ingestion.sample``) with ``gaps`` punched out, store shape."""
    from ingestion.sample import synthetic_candles

    candles = synthetic_candles(symbol, hours, seed, end)
    missing = gap_hours(gaps)
    if not missing.isin(candles["time"]).all():
        raise ValueError("a gap lies outside the synthetic window")
    return candles[~candles["time"].isin(missing)].reset_index(drop=True)


#: A second symbol beside the gapped BTC-USD market: its own seed, price level
#: (``ingestion.sample.START_PRICES``: 2,500) and holes. No hole shares an hour, or even an
#: hour of the day (UTC), with a BTC-USD hole, and every one is at least 35 h from each
#: BTC-USD hole, so a row whose look-back reaches into one symbol's hole has the other's
#: features complete. As in SYNTHETIC_GAPS, each heals before the next; the last 25 h are
#: complete, and the backtest and train weeks hold one each.
SECOND_SYMBOL = "ETH-USD"
SECOND_SEED = 2025
SECOND_GAPS: tuple[tuple[str, int], ...] = (
    ("2024-04-27 21:00", 2),  # training history
    ("2024-05-09 02:00", 1),
    ("2024-06-11 19:00", 3),
    ("2024-06-22 23:00", 1),  # the backtest's test weeks (2024-06-17 .. 07-01)
    ("2024-06-28 03:00", 2),  # the train command's last week
)


def second_gapped_market_candles(symbol: str = SECOND_SYMBOL) -> pd.DataFrame:
    """ETH-USD's gapped market (``SECOND_SEED``, ``SECOND_GAPS``), over BTC-USD's window."""
    return gapped_market_candles(symbol, seed=SECOND_SEED, gaps=SECOND_GAPS)


def write_coinbase_csv(candles: pd.DataFrame, path: Path) -> Path:
    """``candles`` as a Coinbase-format CSV (what ``load-csv`` reads), exact to the float."""
    epoch = pd.Timestamp(0, tz="UTC")
    frame = candles.assign(time=(candles["time"] - epoch) // pd.Timedelta(seconds=1))
    frame[["time", "low", "high", "open", "close", "volume"]].to_csv(path, index=False)
    return path
