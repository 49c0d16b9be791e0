"""Feature views over the feature dataset: v1 (reference, 68), v2 (stationary, 35) and
the v3 groups (rvol 6, cross 5, volume 2, seasonal 2), one view each.

Names and definitions come from ``candlecast/feature_catalog.py``; values are computed
by ``ingestion/features.py`` (DuckDB SQL, the only formula);
these views only declare them. Each field's ``description`` is its definition;
the table below is the summary.

Conventions
    * ``event_timestamp`` = close time of the "current" candle (open + 1 h, UTC).
      At entity time ``t`` the current candle is the latest one closed at or before t.
    * ``price_i_hour_ago`` / ``volume_i_hour_ago``: candle whose open is exactly i h
      before the current candle's open. Lags are by time: a missing hour is NULL.
    * Gaps: rows are kept; any feature needing a missing candle is NULL (no partial
      windows). Training drops rows with NULLs; serving reports them.
    * Time features use ``event_timestamp`` (the start of the hour being forecast):
      ``hour_sin/cos = sin/cos(2π·hour/24)``, ``dow_sin/cos = sin/cos(2π·dow/7)``, Mon=0.

price_features_v1 (the reference system's 68 features)
    ``open, high, low, close, volume`` of the current candle; ``upper_shadow = high -
    max(open, close)``, ``lower_shadow = min(open, close) - low``; ``price_/volume_{1..24}
    _hour_ago``; ``pr_24hr_mavg/mstd``, ``volume_24hr_mavg/mstd``: mean and sample std
    (ddof 1) of the 24 lagged values (current candle excluded, as in the reference);
    ``percentage_return_{2,3,4,12,24}_hour = (price_1_hour_ago - price_h_hour_ago) /
    price_h_hour_ago``; ``rsi`` = ``ta.momentum.rsi(window=14)`` over price_24..1_hour_ago,
    last value; ``hour_sin, hour_cos, dow_sin``.

price_features_v2 (stationary, for return-space models; windows include the current candle)
    ``log_return_{1..24}h = ln(close / price_h_hour_ago)``; ``log_volume_rel_24h =
    ln(volume / mean volume of the 24 candles ending at the current)``;
    ``volatility_6h``, ``volatility_24h``: sample std of the 6 / 24 latest hourly log
    returns ``ln(close_k / close_(k-1))``; ``close_dist_24h = ln(close / mean of the 24
    closes ending at the current) / volatility_24h``; ``rsi_14``: ta's RSI(14) over the 24
    closes ending at the current close; ``range_rel = (high - low) / close``; ``body_rel =
    (close - open) / close``; ``hour_sin, hour_cos, dow_sin, dow_cos``.

v3 groups (windows longer than the 24 lags are by time too: NULL while any hour of the
window is missing, and until the series is that long)
    ``price_features_v3_rvol``: ``rv_parkinson_{1,24,168}h = sqrt(mean of ln(high/low)^2 /
    (4 ln 2))`` and ``rv_gk_{1,24,168}h = sqrt(mean of 0.5 ln(high/low)^2 - (2 ln 2 - 1)
    ln(close/open)^2)`` over the 1 / 24 / 168 candles ending at the current: realised
    volatility per hour (log-return units) at the HAR horizons.
    ``price_features_v3_cross``: ``peer_{log_return_1h, log_return_4h, log_return_24h,
    volatility_6h, volatility_24h}``: those v2 features of the peer symbol (ETH-USD for
    BTC-USD, BTC-USD for any other) from its row with the same event_timestamp, so they use
    only the peer's candles closed by then; NULL when the peer has no candle that hour.
    ``price_features_v3_volume``: ``volume_z_{24,168}h = (ln volume - mean) / sample std of
    ln volume over the 24 / 168 candles before the current``.
    ``price_features_v3_seasonal``: ``how_abs_return_4w`` = mean |hourly log return| of the
    candles that opened 1..4 weeks before event_timestamp (the hour of week being
    forecast); ``how_abs_return_ratio_4w`` = that / the mean |hourly log return| of the 168
    candles ending at the current.

TTL: 75 minutes. The point-in-time join takes the latest row with ``t - ttl <=
event_timestamp <= t``; every entity time sees the candle that closed in the last hour
(plus 15 minutes of slack for a late hourly job), never an older one, and the bounded
window keeps the join linear. The online store does not enforce TTL: readers check
the event timestamp (``candlecast.feast_store.online_features``).
"""

from datetime import timedelta

from data_sources import price_features_push
from entities import symbol
from feast import FeatureView, Field
from feast.types import Float64, String

from candlecast.feature_catalog import V1_FEATURES, V2_FEATURES, V3_GROUPS

TTL = timedelta(minutes=75)


def _schema(features: dict[str, str]) -> list[Field]:
    fields = [Field(name="symbol", dtype=String)]
    return fields + [Field(name=n, dtype=Float64, description=d) for n, d in features.items()]


def _view(name: str, features: dict[str, str], description: str) -> FeatureView:
    return FeatureView(
        name=name,
        entities=[symbol],
        ttl=TTL,
        schema=_schema(features),
        source=price_features_push,
        online=True,
        description=description,
    )


price_features_v1 = _view(
    "price_features_v1",
    V1_FEATURES,
    "The reference system's 68 hourly features (same names and meanings).",
)
price_features_v2 = _view(
    "price_features_v2",
    V2_FEATURES,
    "Stationary hourly features (log returns, volatility, RSI, cyclic time).",
)

# The v3 groups (``feature_catalog.V3_GROUPS``): a FeatureService adds each to v2.
price_features_v3_rvol = _view(
    "price_features_v3_rvol",
    V3_GROUPS["rvol"],
    "Realised volatility from OHLC (Parkinson, Garman-Klass) at 1 h, 24 h and 168 h.",
)
price_features_v3_cross = _view(
    "price_features_v3_cross",
    V3_GROUPS["cross"],
    "The peer symbol's returns and volatility at the same close time (cross-asset).",
)
price_features_v3_volume = _view(
    "price_features_v3_volume",
    V3_GROUPS["volume"],
    "ln-volume z-scores against the previous 24 h and 168 h.",
)
price_features_v3_seasonal = _view(
    "price_features_v3_seasonal",
    V3_GROUPS["seasonal"],
    "Hour-of-week seasonality of |log return| over the past 4 weeks.",
)
