"""The feature catalogue: every feature's name and definition, in view order.

What exists is declared here, in the core, so that the Feast declarations
(``feature_repo/``) and the one computation (``ingestion/features.py``, the DuckDB
SQL that implements each definition) read the same list; serving and training
learn a model's columns from its FeatureService. Conventions: ``event_timestamp``
is the close time of the current candle; lags are by time, so a missing hour is
NULL; windows never use partial data (a window with a missing hour is NULL).

Views: v1 (reference), v2 (stationary) and the v3 groups (:data:`V3_GROUPS`), each a
view of its own so that a FeatureService can add one group to v2 for an ablation.
"""

from __future__ import annotations

import pyarrow as pa

LAGS = range(1, 25)
RETURN_HORIZONS = (2, 3, 4, 12, 24)
RSI_WINDOW = 14
HOURS_PER_WEEK = 168
#: Realised-volatility windows in hours: the HAR horizons (hour, day, week).
RV_WINDOWS = (1, 24, HOURS_PER_WEEK)
#: Windows (hours) of the volume z-scores.
VOLUME_Z_WINDOWS = (24, HOURS_PER_WEEK)
#: Weeks of the hour-of-week seasonality of |log return|.
SEASONAL_WEEKS = 4
#: The peer's v2 features copied into the cross-asset group, as ``peer_<name>``.
PEER_SOURCE_FEATURES = (
    "log_return_1h",
    "log_return_4h",
    "log_return_24h",
    "volatility_6h",
    "volatility_24h",
)
#: Cross-asset features of a symbol come from one peer: ETH-USD for BTC-USD, and
#: :data:`DEFAULT_PEER` (the market's leader) for every other symbol. The peer is part of
#: the features' definition, not a setting: a model trained on "ETH's returns" must get
#: ETH's returns wherever it is served, and the offline dataset must not change meaning
#: with the deployment's symbol list.
PEERS = {"BTC-USD": "ETH-USD"}
DEFAULT_PEER = "BTC-USD"


def peer_symbol(symbol: str) -> str:
    """The symbol whose candles give ``symbol``'s cross-asset features (never itself)."""
    return PEERS.get(symbol, DEFAULT_PEER)


def _v1_features() -> dict[str, str]:
    """v1: the reference system's 68 features (names and meanings kept)."""
    out = {
        "open": "open of the current candle (the one that closed at event_timestamp)",
        "high": "high of the current candle",
        "low": "low of the current candle",
        "close": "close of the current candle",
        "volume": "volume of the current candle",
        "upper_shadow": "high - max(open, close)",
        "lower_shadow": "min(open, close) - low",
    }
    out |= {f"price_{i}_hour_ago": f"close of the candle {i} h before the current" for i in LAGS}
    out |= {f"volume_{i}_hour_ago": f"volume of the candle {i} h before the current" for i in LAGS}
    out |= {
        "pr_24hr_mavg": "mean of price_1..24_hour_ago",
        "pr_24hr_mstd": "sample std (ddof 1) of price_1..24_hour_ago",
        "volume_24hr_mavg": "mean of volume_1..24_hour_ago",
        "volume_24hr_mstd": "sample std (ddof 1) of volume_1..24_hour_ago",
    }
    out |= {
        f"percentage_return_{h}_hour": (
            f"(price_1_hour_ago - price_{h}_hour_ago) / price_{h}_hour_ago"
        )
        for h in RETURN_HORIZONS
    }
    out["rsi"] = "ta.momentum.rsi(window=14) over price_24..1_hour_ago (oldest first), last value"
    out |= _time_features(with_dow_cos=False)
    return out


def _v2_features() -> dict[str, str]:
    """v2: stationary features for return-space models (windows include the current candle)."""
    out = {f"log_return_{h}h": f"ln(close / price_{h}_hour_ago)" for h in LAGS}
    out |= {
        "log_volume_rel_24h": "ln(volume / mean volume of the 24 candles ending at the current)",
        "volatility_6h": "sample std of the 6 latest hourly log returns (ending at the current)",
        "volatility_24h": "sample std of the 24 latest hourly log returns (ending at the current)",
        "close_dist_24h": (
            "ln(close / mean close of the 24 candles ending at the current) / volatility_24h"
        ),
        "rsi_14": "RSI(14) as ta computes it over the 24 closes ending at the current close",
        "range_rel": "(high - low) / close",
        "body_rel": "(close - open) / close",
    }
    out |= _time_features(with_dow_cos=True)
    return out


def _window(hours: int, before: bool = False) -> str:
    if hours == 1:
        return "the current candle"
    last = "before the current" if before else "ending at the current"
    return f"the {hours} candles {last} (all present)"


def _rvol_features() -> dict[str, str]:
    """v3 rvol: OHLC realised volatility at the HAR horizons, per hour in log-return units."""
    estimators = {
        "parkinson": ("Parkinson", "ln(high/low)^2 / (4 ln 2)"),
        "gk": ("Garman-Klass", "0.5 ln(high/low)^2 - (2 ln 2 - 1) ln(close/open)^2"),
    }
    out = {}
    for key, (name, variance) in estimators.items():
        for h in RV_WINDOWS:
            if h == 1:
                out[f"rv_{key}_{h}h"] = f"{name} volatility of the current candle: sqrt({variance})"
            else:
                over = f"sqrt(mean of {variance} over {_window(h)})"
                out[f"rv_{key}_{h}h"] = f"{name} volatility: {over}"
    return out


def _cross_features() -> dict[str, str]:
    """v3 cross: the peer symbol's (``peer_symbol``) v2 features at the same event_timestamp."""
    rule = ", ".join(f"{peer} for {symbol}" for symbol, peer in PEERS.items())
    return {
        f"peer_{name}": (
            f"{name} of the peer symbol ({rule}, else {DEFAULT_PEER}) at the same "
            "event_timestamp: its candle closed then; NULL if the peer has no candle that hour"
        )
        for name in PEER_SOURCE_FEATURES
    }


def _volume_features() -> dict[str, str]:
    """v3 volume: how unusual the current candle's volume is."""
    return {
        f"volume_z_{h}h": (
            f"(ln(volume) - mean) / sample std (ddof 1) of ln(volume) over {_window(h, True)}"
        )
        for h in VOLUME_Z_WINDOWS
    }


def _seasonal_features() -> dict[str, str]:
    """v3 seasonal: hour-of-week seasonality of volatility, for the hour being forecast."""
    weeks = SEASONAL_WEEKS
    same_hour = (
        f"the {weeks} candles that opened 1..{weeks} weeks before event_timestamp (the same "
        "hour of week as the hour being forecast; all present)"
    )
    return {
        f"how_abs_return_{weeks}w": (
            f"mean |hourly log return| (|ln(close / close 1 h before)|) of {same_hour}"
        ),
        f"how_abs_return_ratio_{weeks}w": (
            f"how_abs_return_{weeks}w / mean |hourly log return| over {_window(HOURS_PER_WEEK)}"
        ),
    }


def _time_features(with_dow_cos: bool) -> dict[str, str]:
    """Cyclic time of event_timestamp: the hour/day of the candle a model forecasts next."""
    out = {
        "hour_sin": "sin(2*pi*hour/24), hour of day (UTC) of event_timestamp",
        "hour_cos": "cos(2*pi*hour/24), hour of day (UTC) of event_timestamp",
        "dow_sin": "sin(2*pi*dow/7), day of week (Mon=0, UTC) of event_timestamp",
    }
    if with_dow_cos:
        out["dow_cos"] = "cos(2*pi*dow/7), day of week (Mon=0, UTC) of event_timestamp"
    return out


#: Ordered name -> definition of each feature view's features.
V1_FEATURES: dict[str, str] = _v1_features()
V2_FEATURES: dict[str, str] = _v2_features()
RVOL_FEATURES: dict[str, str] = _rvol_features()
CROSS_FEATURES: dict[str, str] = _cross_features()
VOLUME_FEATURES: dict[str, str] = _volume_features()
SEASONAL_FEATURES: dict[str, str] = _seasonal_features()
#: The v3 groups by name: view ``price_features_v3_<group>``, service ``price_model_v3_<group>``.
V3_GROUPS: dict[str, dict[str, str]] = {
    "rvol": RVOL_FEATURES,
    "cross": CROSS_FEATURES,
    "volume": VOLUME_FEATURES,
    "seasonal": SEASONAL_FEATURES,
}
#: All feature columns of the dataset, each once, in v1, v2 then v3 group order.
FEATURE_COLUMNS: list[str] = list(
    dict.fromkeys([*V1_FEATURES, *V2_FEATURES, *(n for g in V3_GROUPS.values() for n in g)])
)
FEATURE_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        *[(name, pa.float64()) for name in FEATURE_COLUMNS],
    ]
)
#: The reference FeatureService: every served symbol's close and past closes come from it.
PRICE_SERVICE = "price_model_v1"
#: The FeatureService of the stationary features return-space models train on by default.
DEFAULT_SERVICE = "price_model_v2"
#: Where the feature dataset's rows live under ``Settings.features_dir``: one folder per
#: symbol, one file per UTC month (no ``key=value`` names: DuckDB would add a column).
FEATURE_FILES = "*/*.parquet"
#: The current close and the past 24 closes, newest first (a subset of v1).
PRICE_FEATURES = ("close", *(f"price_{h}_hour_ago" for h in LAGS))
