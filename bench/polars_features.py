"""The feature definitions in idiomatic polars: the peer a user would pick, as a baseline.

A second same-run baseline of ``bench/features.py`` beside the pandas reference
(``bench/reference_features.py``), never used by the product (polars is a dev/bench-only
dependency). It follows the reference's definitions, gap semantics included, with polars
idioms: one lazy query and one ``collect``. Each symbol is joined to its dense hourly
grid (a missing hour is a row of NULLs), lags are ``shift(i).over("symbol")``, windows
are ``rolling_*(n)`` (NULL until the window holds n values, and while it holds a NULL),
the Wilder RSI is a weighted rolling sum (the recursion over a fixed window is a fixed
set of weights), and the cross-asset group is a join with the peer's own rows of the
same close time. The output has the reference's rows, columns and dtypes.
"""

from __future__ import annotations

import math

import pandas as pd
import polars as pl
import pyarrow as pa

from candlecast.feature_catalog import (
    CROSS_FEATURES,
    DEFAULT_PEER,
    FEATURE_COLUMNS,
    HOURS_PER_WEEK,
    LAGS,
    PEER_SOURCE_FEATURES,
    PEERS,
    RETURN_HORIZONS,
    RSI_WINDOW,
    RV_WINDOWS,
    SEASONAL_WEEKS,
    VOLUME_Z_WINDOWS,
)

ALPHA = 1 / RSI_WINDOW
#: Price changes in each RSI window: 24 closes give 23 changes.
RSI_CHANGES = 23
NAN = float("nan")
OHLCV = ["open", "high", "low", "close", "volume"]


def _by_symbol(expr: pl.Expr) -> pl.Expr:
    """``expr`` evaluated per symbol (the frame is each symbol's dense grid, by time)."""
    return expr.over("symbol")


def _col(name: str) -> pl.Expr:
    return pl.col(name)


def _lag(name: str, hours: int) -> pl.Expr:
    """The value ``hours`` rows (= hours, on the dense grid) earlier; NULL across a gap."""
    return _by_symbol(_col(name).shift(hours))


def _rolling(expr: pl.Expr, kind: str, hours: int) -> pl.Expr:
    """A full window of ``hours`` rows ending at the current one, else NULL."""
    return _by_symbol(getattr(expr, f"rolling_{kind}")(hours))


def _dense(candles: pl.LazyFrame) -> pl.LazyFrame:
    """Every symbol's hours from its first to its last candle; a missing hour is NULLs."""
    grid = (
        candles.group_by("symbol")
        .agg(lo=pl.col("time").min(), hi=pl.col("time").max())
        .select("symbol", time=pl.datetime_ranges("lo", "hi", interval="1h"))
        .explode("time")
    )
    return grid.join(candles, on=["symbol", "time"], how="left").sort("symbol", "time")


def _per_hour(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Terms of one candle (or of it and the hour before) that the windows aggregate."""
    hl, co = (_col("high") / _col("low")).log(), (_col("close") / _col("open")).log()
    change = _by_symbol(_col("close").diff())
    return frame.with_columns(
        _hourly=(_col("close") / _lag("close", 1)).log(),
        _parkinson=hl**2 / (4 * math.log(2)),
        _garman_klass=0.5 * hl**2 - (2 * math.log(2) - 1) * co**2,
        _log_volume=pl.when(_col("volume") > 0).then(_col("volume").log()),
        _up=change.clip(lower_bound=0.0).fill_null(NAN),
        _down=(-change).clip(lower_bound=0.0).fill_null(NAN),
    ).with_columns(
        _before=_lag("_log_volume", 1),  # the volume windows end at the candle before
        _abs_r=_col("_hourly").abs(),
    )


def _wilder(name: str) -> pl.Expr:
    """Wilder's EWM (alpha 1/14, seeded at 0) of the 23 changes ending at the current row.

    The recursion ``y = (1 - a) y + a x`` over a fixed window is the weighted sum
    ``sum_k a (1 - a)^(22 - k) x_k``. Polars' weighted windows reject NULLs, so a
    missing change travels as NaN (which any window holding it returns) and is NULL again.
    """
    weights = [ALPHA * (1 - ALPHA) ** (RSI_CHANGES - 1 - k) for k in range(RSI_CHANGES)]
    summed = _col(name).rolling_sum(RSI_CHANGES, weights=weights)
    return _by_symbol(summed).fill_nan(None)


def _rsi(up: pl.Expr, down: pl.Expr) -> pl.Expr:
    """ta's RSI from the two EWMs: 100 when the loss EWM is 0, NULL if either is."""
    return pl.when(down == 0).then(100.0).otherwise(100 - 100 / (1 + up / down))


def _v1(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Candle, 24 lags of close and volume, their moments, returns, RSI, calendar."""
    event = _col("time") + pl.duration(hours=1)
    hour = 2 * math.pi * event.dt.hour() / 24
    dow = 2 * math.pi * (event.dt.weekday() - 1) / 7  # polars: Monday = 1
    p1 = _lag("close", 1)
    returns = {
        f"percentage_return_{h}_hour": (p1 - _lag("close", h)) / _lag("close", h)
        for h in RETURN_HORIZONS
    }
    return frame.with_columns(
        upper_shadow=_col("high") - pl.max_horizontal("open", "close"),
        lower_shadow=pl.min_horizontal("open", "close") - _col("low"),
        **{f"price_{i}_hour_ago": _lag("close", i) for i in LAGS},
        **{f"volume_{i}_hour_ago": _lag("volume", i) for i in LAGS},
        pr_24hr_mavg=_rolling(p1, "mean", 24),
        pr_24hr_mstd=_rolling(p1, "std", 24),
        volume_24hr_mavg=_rolling(_lag("volume", 1), "mean", 24),
        volume_24hr_mstd=_rolling(_lag("volume", 1), "std", 24),
        **returns,
        hour_sin=hour.sin(),
        hour_cos=hour.cos(),
        dow_sin=dow.sin(),
        dow_cos=dow.cos(),
        _rsi_14=_rsi(_wilder("_up"), _wilder("_down")),
        event_timestamp=event,
    ).with_columns(rsi=_lag("_rsi_14", 1))  # v1's window ends at the candle before


def _v2(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Log returns, relative volume, volatility, distance to the mean, RSI 14, candle shape."""
    close = _col("close")
    volatility_24h = _rolling(_col("_hourly"), "std", 24)
    return frame.with_columns(
        **{f"log_return_{h}h": (close / _lag("close", h)).log() for h in LAGS},
        log_volume_rel_24h=(_col("volume") / _rolling(_col("volume"), "mean", 24)).log(),
        volatility_6h=_rolling(_col("_hourly"), "std", 6),
        volatility_24h=volatility_24h,
        close_dist_24h=(close / _rolling(close, "mean", 24)).log() / volatility_24h,
        rsi_14=_col("_rsi_14"),
        range_rel=(_col("high") - _col("low")) / close,
        body_rel=(close - _col("open")) / close,
    )


def _v3_own(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The v3 rvol, volume and seasonal groups (the windows of up to four weeks)."""
    rv = {}
    for n in RV_WINDOWS:
        for key, term in (("parkinson", "_parkinson"), ("gk", "_garman_klass")):
            rv[f"rv_{key}_{n}h"] = _rolling(_col(term), "mean", n).sqrt()
    before = _col("_before")
    z = {
        f"volume_z_{n}h": (_col("_log_volume") - _rolling(before, "mean", n))
        / _rolling(before, "std", n)
        for n in VOLUME_Z_WINDOWS
    }
    # The forecast hour opens at the current open + 1 h: k weeks earlier is 168 k - 1 back.
    weekly = [_lag("_abs_r", HOURS_PER_WEEK * k - 1) for k in range(1, SEASONAL_WEEKS + 1)]
    seasonal = f"how_abs_return_{SEASONAL_WEEKS}w"
    week = _rolling(_col("_abs_r"), "mean", HOURS_PER_WEEK)
    return frame.with_columns(
        **rv, **z, **{seasonal: pl.mean_horizontal(weekly, ignore_nulls=False)}
    ).with_columns(**{f"how_abs_return_ratio_{SEASONAL_WEEKS}w": _col(seasonal) / week})


def _with_peer(own: pl.LazyFrame) -> pl.LazyFrame:
    """Each row with its peer's own row of the same close time (NULLs if there is none)."""
    lent = own.select(
        _col("symbol").alias("_peer"),
        "event_timestamp",
        *[_col(s).alias(c) for s, c in zip(PEER_SOURCE_FEATURES, CROSS_FEATURES, strict=True)],
    )
    peer = _col("symbol").replace_strict(PEERS, default=DEFAULT_PEER, return_dtype=pl.String)
    return own.with_columns(_peer=peer).join(
        lent, on=["_peer", "event_timestamp"], how="left", maintain_order="left"
    )


def lazy_features(candles: pl.LazyFrame) -> pl.LazyFrame:
    """The feature query over candle-store rows (symbol, time, open, ..., volume)."""
    frame = _dense(candles.select("symbol", "time", *OHLCV))
    frame = _v3_own(_v2(_v1(_per_hour(frame))))
    own = [name for name in FEATURE_COLUMNS if name not in CROSS_FEATURES]
    own_rows = frame.filter(_col("close").is_not_null()).select("symbol", "event_timestamp", *own)
    return _with_peer(own_rows).select("symbol", "event_timestamp", *FEATURE_COLUMNS)


def polars_features(candles: pa.Table | pd.DataFrame) -> pl.DataFrame:
    """Feature rows (symbol, event_timestamp, every feature) by symbol and time, one collect."""
    frame = pl.from_arrow(candles) if isinstance(candles, pa.Table) else pl.from_pandas(candles)
    return lazy_features(frame.lazy()).collect()


def to_reference_frame(rows: pl.DataFrame) -> pd.DataFrame:
    """``rows`` in ``reference_features``' dtypes: pandas, float64 with NaN for NULL, and
    nanosecond close times (the reference's grid is a ``pd.date_range``)."""
    out = rows.to_pandas()
    out[FEATURE_COLUMNS] = out[FEATURE_COLUMNS].astype("float64")
    out["event_timestamp"] = out["event_timestamp"].dt.as_unit("ns")
    return out
