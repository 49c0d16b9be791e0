"""The feature catalogue: every feature's name and definition, in view order.

What exists is declared here, in the core, so that the Feast declarations
(``feature_repo/``) and the one computation (``ingestion/features.py``, the DuckDB
SQL that implements each definition) read the same list; serving and training
learn a model's columns from its FeatureService. Conventions: ``event_timestamp``
is the close time of the current candle; lags are by time, so a missing hour is
NULL; windows never use partial data.
"""

from __future__ import annotations

import pyarrow as pa

LAGS = range(1, 25)
RETURN_HORIZONS = (2, 3, 4, 12, 24)
RSI_WINDOW = 14


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
#: All feature columns of the dataset, each once, in v1 then v2 order.
FEATURE_COLUMNS: list[str] = list(dict.fromkeys([*V1_FEATURES, *V2_FEATURES]))
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
