"""The one feature computation: DuckDB SQL over hourly candles.

Every feature value the system ever uses (offline parquet for training, rows
pushed to the online store for serving) comes from :func:`compute_features`,
the same SQL whether the candles were read from the candle store (a full or
incremental run) or just fetched by the hourly update. There is no second formula.

Conventions (the definitions are ``candlecast/feature_catalog.py``):

* One output row per (symbol, stored candle). ``event_timestamp`` is the
  candle's **close** time (open + 1 h): nothing of an unfinished hour is visible
  at any entity time ``t``.
* "Current candle" = the candle that closed at ``event_timestamp``; lag ``i`` is
  the candle whose open time is exactly ``i`` hours earlier. Lags are taken on a
  dense hourly grid per symbol, so a missing hour is a NULL lag, never the
  previous row's value.
* Gaps: rows are always written. A lag that falls into a gap is NULL and every
  aggregate that needs it (means, stds, returns, RSI, volatility) is NULL too
  (arithmetic NULL propagation, no partial windows). Consumers drop or reject
  rows with NULL features (training drops them; serving reports them).
* Windows longer than the 24 lags (the v3 groups: up to a week of realised
  volatility, volume and |return|, and the same hour 1..4 weeks back) are window
  aggregates over fixed frames of the same dense grid, kept only when the frame
  holds every hour (``count(x) = n``), and ``lag`` at 168 k - 1: the same rule,
  one missing hour in a window makes the value NULL.
* Cross-asset (v3 ``cross``): a row of symbol S copies v2 features of its peer
  (``feature_catalog.peer_symbol``) from the peer's own row with the same
  ``event_timestamp``, computed by this same query when the peer's candles are in
  the input. The peer's row at ``t`` uses only its candles closed by ``t``, so the
  copy is point-in-time too; no peer row that hour (or no peer candles) is NULL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from candlecast.feature_catalog import (
    CROSS_FEATURES,
    DEFAULT_PEER,
    FEATURE_COLUMNS,
    FEATURE_SCHEMA,
    HOURS_PER_WEEK,
    LAGS,
    PEER_SOURCE_FEATURES,
    PEERS,
    RETURN_HORIZONS,
    RSI_WINDOW,
    RV_WINDOWS,
    SEASONAL_WEEKS,
    V1_FEATURES,
    V2_FEATURES,
    VOLUME_Z_WINDOWS,
)
from candlecast.parquet_io import duckdb_connection
from candlecast.times import utc

__all__ = ["FEATURE_COLUMNS", "FEATURE_SCHEMA", "V1_FEATURES", "V2_FEATURES", "compute_features"]

ARROW_BATCH_ROWS = 122_880
#: Hours of candle history a feature row needs before its own candle: the oldest candle
#: any feature reads (the seasonal |return| of the hour 4 weeks back needs the one before it).
LOOKBACK_HOURS = max(
    max(LAGS),
    max(RV_WINDOWS) - 1,
    max(VOLUME_Z_WINDOWS),
    SEASONAL_WEEKS * HOURS_PER_WEEK,
)
#: Parkinson's variance is ln(H/L)^2 / (4 ln 2); Garman-Klass weighs ln(C/O)^2 by 2 ln 2 - 1.
_PARKINSON = 1.0 / (4.0 * math.log(2.0))
_GK_CLOSE_OPEN = 2.0 * math.log(2.0) - 1.0


def _mean(terms: Sequence[str]) -> str:
    return f"(({' + '.join(terms)}) / {len(terms)}.0)"


def _std(terms: Sequence[str], mean: str) -> str:
    """Two-pass sample std (ddof 1) around a precomputed mean column; NULL if a term is."""
    squares = " + ".join(f"({t} - {mean}) * ({t} - {mean})" for t in terms)
    return f"sqrt(({squares}) / {len(terms) - 1}.0)"


def _ewm_last(values_oldest_first: Sequence[str]) -> str:
    """Last value of ``x.ewm(alpha=1/14, adjust=False).mean()`` when ``x[0] == 0``.

    ta's RSI feeds ``diff.where(diff > 0, 0.0)``: the first (NaN) diff becomes 0,
    so the recursion ``y_k = (1-a) y_(k-1) + a x_k`` collapses to the weighted
    sum ``sum_k a (1-a)^(n-1-k) x_k`` over k = 1..n-1; the window is fixed, so
    the closed form is exact (up to float rounding order).
    """
    alpha = 1.0 / RSI_WINDOW
    n = len(values_oldest_first) + 1
    terms = [
        f"{alpha * (1.0 - alpha) ** (n - 1 - k)!r} * {value}"
        for k, value in enumerate(values_oldest_first, start=1)
    ]
    return f"({' + '.join(terms)})"


def _rsi(ewm_abs: str, ewm_diff: str) -> str:
    """RSI from the EWMs of |d| and d, with ta's rule: 100 when the loss EWM is 0.

    gain = max(d, 0) = (|d| + d) / 2 and loss = (|d| - d) / 2, and the EWM is
    linear, so gain_ewm / loss_ewm = (A + S) / (A - S) with A = ewm(|d|),
    S = ewm(d). When every d >= 0 the two sums have identical terms, so
    A - S is exactly 0, as ta's loss EWM is.
    """
    up, down = f"({ewm_abs} + {ewm_diff})", f"({ewm_abs} - {ewm_diff})"
    return f"CASE WHEN {down} = 0 THEN 100.0 ELSE 100.0 - 100.0 / (1.0 + {up} / {down}) END"


def _ln_ratio(num: str, den: str) -> str:
    return f"ln(NULLIF({num}, 0) / NULLIF({den}, 0))"


_PRICES = [f"price_{i}_hour_ago" for i in LAGS]
_VOLUMES = [f"volume_{i}_hour_ago" for i in LAGS]
#: Closes from the current candle back: _P[0] = close, _P[i] = price_i_hour_ago.
_P = ["close", *_PRICES]
#: The 24 candles ending at the current one (v2 windows include the current candle).
_CLOSES_INCL = _P[:24]
_VOLUMES_INCL = ["volume", *_VOLUMES[:23]]
#: Hourly log returns and price changes ending at the current close: _r0 = ln(P0 / P1), ...
_HOURLY = [f"_r{i}" for i in range(24)]
#: ln(close) of the current candle and of each lag: one ln() per candle instead of per pair.
_LN = ["_ln0", *[f"_ln{i}" for i in LAGS]]
_DIFF = [f"_d{i}" for i in range(24)]


def _lag_stage() -> list[str]:
    """One window function per lag, carrying close, volume and ln(close) together."""
    return [f"lag({{'c': close, 'v': volume, 'l': _ln0}}, {i}) OVER w AS _lag{i}" for i in LAGS]


def _unpack_stage() -> list[str]:
    return [
        *[f"_lag{i}.c AS price_{i}_hour_ago" for i in LAGS],
        *[f"_lag{i}.v AS volume_{i}_hour_ago" for i in LAGS],
        *[f"_lag{i}.l AS {_LN[i]}" for i in LAGS],
    ]


def _first_stage() -> list[str]:
    """Means, hourly log returns and hourly price changes, each computed once."""
    return [
        f"{_mean(_PRICES)} AS pr_24hr_mavg",
        f"{_mean(_VOLUMES)} AS volume_24hr_mavg",
        f"{_mean(_CLOSES_INCL)} AS _close_mean_incl",
        f"{_mean(_VOLUMES_INCL)} AS _volume_mean_incl",
        *[f"{_LN[i]} - {_LN[i + 1]} AS {_HOURLY[i]}" for i in range(24)],
        *[f"{_P[i]} - {_P[i + 1]} AS {_DIFF[i]}" for i in range(24)],
    ]


def _second_stage() -> list[str]:
    """Means of the hourly returns and |price change| of each hour (for RSI)."""
    return [
        f"{_mean(_HOURLY[:6])} AS _r_mean_6",
        f"{_mean(_HOURLY)} AS _r_mean_24",
        *[f"abs({d}) AS _a{i}" for i, d in enumerate(_DIFF)],
    ]


def _third_stage() -> list[str]:
    """Wilder EWMs for both RSIs (v1: changes _d23.._d1, v2: _d22.._d0) and 24 h volatility."""
    v1, v2 = range(23, 0, -1), range(22, -1, -1)
    return [
        f"{_ewm_last([f'_d{i}' for i in v1])} AS _sd_v1",
        f"{_ewm_last([f'_a{i}' for i in v1])} AS _sa_v1",
        f"{_ewm_last([f'_d{i}' for i in v2])} AS _sd_v2",
        f"{_ewm_last([f'_a{i}' for i in v2])} AS _sa_v2",
        f"{_std(_HOURLY, '_r_mean_24')} AS volatility_24h",
    ]


def _per_hour_stage() -> list[str]:
    """Per-candle terms the long windows aggregate (all NULL on a missing hour)."""
    hl, co = _ln_ratio("high", "low"), _ln_ratio("close", "open")
    return [
        f"{_PARKINSON!r} * power({hl}, 2) AS _pk",
        f"0.5 * power({hl}, 2) - {_GK_CLOSE_OPEN!r} * power({co}, 2) AS _gk",
        "CASE WHEN volume > 0 THEN ln(volume) END AS _lnv",
        # on the dense grid the previous row is the previous hour: a gap gives NULL
        "abs(_ln0 - lag(_ln0) OVER w) AS _abs_r",
    ]


def _if_full(frame: str, present: str, hours: int, value: str) -> str:
    """``value`` (aggregates over ``frame``) if the frame has ``hours`` non-NULL ``present``."""
    return f"CASE WHEN count({present}) OVER {frame} = {hours} THEN {value} END"


def _long_window_stage() -> list[str]:
    """v3 windows: aggregates over fixed frames of the dense grid and the weekly lags."""
    out = []
    for h in RV_WINDOWS:
        # _pk + _gk is NULL if either is: one count tells that both windows are full
        frame = f"last_{h}"
        for key, term in (("parkinson", "_pk"), ("gk", "_gk")):
            mean = term if h == 1 else _if_full(frame, "_pk + _gk", h, f"avg({term}) OVER {frame}")
            out.append(f"sqrt({mean}) AS rv_{key}_{h}h")
    for h in VOLUME_Z_WINDOWS:
        frame = f"before_{h}"
        z = f"(_lnv - avg(_lnv) OVER {frame}) / NULLIF(stddev_samp(_lnv) OVER {frame}, 0)"
        out.append(f"{_if_full(frame, '_lnv', h, z)} AS volume_z_{h}h")
    # The hour being forecast opens at event_timestamp = the current open + 1 h, so the same
    # hour of week k weeks back is lag 168 k - 1 of the current candle (closed, known at t).
    weekly = [f"lag(_abs_r, {k * HOURS_PER_WEEK - 1}) OVER w" for k in range(1, SEASONAL_WEEKS + 1)]
    out.append(f"{_mean(weekly)} AS how_abs_return_{SEASONAL_WEEKS}w")
    week = f"last_{HOURS_PER_WEEK}"
    week_mean = _if_full(week, "_abs_r", HOURS_PER_WEEK, f"avg(_abs_r) OVER {week}")
    out.append(f"{week_mean} AS _abs_r_mean")
    return out


#: Columns the long-window stage adds, carried through the later stages by name.
_LONG_WINDOW_COLUMNS = [expr.rsplit(" AS ", 1)[1] for expr in _long_window_stage()]


def _windows() -> str:
    """Named windows: ``w`` (each series by time) and the fixed frames of the long windows.

    The frames count rows, and a row is an hour: on the dense grid (every hour of a
    series has a row, NULL if missing) ``ROWS n PRECEDING`` is the n hours before. A
    ``RANGE INTERVAL`` frame gives the same rows but costs DuckDB about 2.5x as much.
    """
    by_time = "PARTITION BY symbol ORDER BY time"
    frames = {"w": by_time}
    for h in sorted({*RV_WINDOWS[1:], HOURS_PER_WEEK}):
        frames[f"last_{h}"] = f"{by_time} ROWS BETWEEN {h - 1} PRECEDING AND CURRENT ROW"
    for h in VOLUME_Z_WINDOWS:  # the candles before the current one, not counting it
        frames[f"before_{h}"] = f"{by_time} ROWS BETWEEN {h} PRECEDING AND 1 PRECEDING"
    return ",\n    ".join(f"{name} AS ({frame})" for name, frame in frames.items())


def _feature_expressions() -> dict[str, str]:
    """Final expression of every output feature, by name."""
    # Calendar fields from epoch arithmetic (exact for UTC, no ICU calendar per row);
    # 1970-01-01 was a Thursday, dow 3 with Monday = 0.
    hour = "(2 * pi() * ((epoch_us(event_timestamp) // 3600000000) % 24) / 24.0)"
    dow = "(2 * pi() * ((epoch_us(event_timestamp) // 86400000000 + 3) % 7) / 7.0)"
    passthrough = ["open", "high", "low", "close", "volume", *_PRICES, *_VOLUMES]
    exprs = {name: name for name in [*passthrough, "pr_24hr_mavg", "volume_24hr_mavg"]}
    exprs |= {
        "upper_shadow": "high - greatest(open, close)",
        "lower_shadow": "least(open, close) - low",
        "pr_24hr_mstd": _std(_PRICES, "pr_24hr_mavg"),
        "volume_24hr_mstd": _std(_VOLUMES, "volume_24hr_mavg"),
        "rsi": _rsi("_sa_v1", "_sd_v1"),
        "hour_sin": f"sin({hour})",
        "hour_cos": f"cos({hour})",
        "dow_sin": f"sin({dow})",
        "dow_cos": f"cos({dow})",
    }
    exprs |= {
        f"percentage_return_{h}_hour": (
            f"(price_1_hour_ago - price_{h}_hour_ago) / NULLIF(price_{h}_hour_ago, 0)"
        )
        for h in RETURN_HORIZONS
    }
    exprs |= {f"log_return_{h}h": f"_ln0 - {_LN[h]}" for h in LAGS}
    exprs |= {
        "log_volume_rel_24h": _ln_ratio("volume", "_volume_mean_incl"),
        "volatility_6h": _std(_HOURLY[:6], "_r_mean_6"),
        "volatility_24h": "volatility_24h",
        "close_dist_24h": ("(_ln0 - ln(NULLIF(_close_mean_incl, 0))) / NULLIF(volatility_24h, 0)"),
        "rsi_14": _rsi("_sa_v2", "_sd_v2"),
        "range_rel": "(high - low) / NULLIF(close, 0)",
        "body_rel": "(close - open) / NULLIF(close, 0)",
    }
    exprs |= {name: name for name in _LONG_WINDOW_COLUMNS if not name.startswith("_")}
    weeks = SEASONAL_WEEKS
    exprs[f"how_abs_return_ratio_{weeks}w"] = f"how_abs_return_{weeks}w / NULLIF(_abs_r_mean, 0)"
    return exprs


def _columns(exprs: Sequence[str]) -> str:
    return ",\n        ".join(exprs)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _peer_of(column: str) -> str:
    """SQL for ``feature_catalog.peer_symbol`` of ``column``."""
    cases = " ".join(f"WHEN {_quoted(s)} THEN {_quoted(p)}" for s, p in PEERS.items())
    return f"CASE {column} {cases} ELSE {_quoted(DEFAULT_PEER)} END"


def _output_columns() -> list[str]:
    """Every dataset column in schema order: own features from ``o``, the peer's from ``p``."""
    peer = dict(zip(CROSS_FEATURES, PEER_SOURCE_FEATURES, strict=True))
    return [f"p.{peer[n]} AS {n}" if n in peer else f"o.{n}" for n in FEATURE_COLUMNS]


def feature_sql(source: str, symbols: Sequence[str] | None = None) -> str:
    """The feature query over ``source`` (a relation with the candle-store columns).

    ``$since`` (TIMESTAMPTZ or NULL) keeps rows with ``event_timestamp > $since``;
    ``symbols`` (default: all) are the symbols whose rows are returned (the others
    in ``source`` only serve as peers).
    Each symbol's candles form a dense hourly series (open times must be whole
    hours, as exchange candles are): a symbol whose count differs from its span
    gets NULL rows for its missing hours, so ``lag(x, i)`` is "i hours earlier".
    Symbols without gaps skip that grid join. One struct ``lag`` per offset
    carries close, volume and ln(close). The stages name intermediate values
    (means, hourly returns, price changes) once instead of repeating them inside
    every standard deviation.
    """
    final = _feature_expressions()
    own = _columns([f"{final[n]} AS {n}" for n in FEATURE_COLUMNS if n not in CROSS_FEATURES])
    wanted = "TRUE"
    if symbols is not None:  # IN () is a syntax error: no symbols is no rows
        wanted = f"o.symbol IN ({', '.join(map(_quoted, symbols))})" if symbols else "FALSE"
    return f"""
WITH src AS (
    SELECT symbol, time, open, high, low, close, volume FROM {source}
),
gapped AS (
    SELECT symbol, min(time) AS lo, max(time) AS hi FROM src GROUP BY symbol
    HAVING count(*) <> date_diff('hour', min(time), max(time)) + 1
),
missing AS (
    SELECT g.symbol, g.time FROM (
        SELECT symbol, unnest(generate_series(lo, hi, INTERVAL 1 HOUR)) AS time FROM gapped
    ) g
    ANTI JOIN src s ON s.symbol = g.symbol AND s.time = g.time
),
dense AS (
    SELECT symbol, time, open, high, low, close, volume,
        CASE WHEN close > 0 THEN ln(close) END AS _ln0
    FROM src
    UNION ALL
    SELECT symbol, time, NULL, NULL, NULL, NULL, NULL, NULL FROM missing
),
per_hour AS (
    SELECT *,
        {_columns(_per_hour_stage())}
    FROM dense
    WINDOW w AS (PARTITION BY symbol ORDER BY time)
),
-- Lags and windows read the whole input; the rows a caller wants are cut only after.
lagged AS (
    SELECT symbol, time + INTERVAL 1 HOUR AS event_timestamp,
        open, high, low, close, volume, _ln0,
        {_columns(_lag_stage())},
        {_columns(_long_window_stage())}
    FROM per_hour
    WINDOW {_windows()}
),
kept AS (
    SELECT symbol, event_timestamp, open, high, low, close, volume, _ln0,
        {_columns(_unpack_stage())},
        {_columns(_LONG_WINDOW_COLUMNS)}
    FROM lagged
    WHERE close IS NOT NULL AND ($since IS NULL OR event_timestamp > $since)
),
s1 AS (SELECT *, {_columns(_first_stage())} FROM kept),
s2 AS (SELECT *, {_columns(_second_stage())} FROM s1),
s3 AS (SELECT *, {_columns(_third_stage())} FROM s2),
own AS (
    SELECT symbol, event_timestamp,
        {own}
    FROM s3
),
-- Cross-asset: the peer's own row of the same close time (point-in-time by construction:
-- it uses the peer's candles closed by then); no such row leaves the peer columns NULL.
-- The join's build side holds only the peer symbols' rows and the columns copied.
peer AS (
    SELECT symbol, event_timestamp, {", ".join(dict.fromkeys(PEER_SOURCE_FEATURES))}
    FROM own WHERE symbol IN ({", ".join(map(_quoted, _peer_symbols()))})
)
SELECT o.symbol, o.event_timestamp,
        {_columns(_output_columns())}
FROM own o
LEFT JOIN peer p ON p.symbol = {_peer_of("o.symbol")} AND p.event_timestamp = o.event_timestamp
WHERE {wanted}
"""


def _peer_symbols() -> list[str]:
    """Every symbol that is some symbol's peer (``feature_catalog.peer_symbol``)."""
    return sorted({*PEERS.values(), DEFAULT_PEER})


def _run(
    con: duckdb.DuckDBPyConnection,
    source: str,
    since: datetime | None,
    symbols: Sequence[str] | None = None,
) -> pa.Table:
    since_sql = "NULL" if since is None else f"TIMESTAMPTZ '{utc(since).isoformat()}'"
    relation = con.sql(feature_sql(source, symbols).replace("$since", since_sql))
    # Streaming the result in row-group-sized batches skips the intermediate
    # materialisation of to_arrow_table (~10% less CPU on 100 columns).
    table = relation.to_arrow_reader(ARROW_BATCH_ROWS).read_all()
    return table.cast(FEATURE_SCHEMA)


def compute_features(
    candles: pd.DataFrame | pa.Table,
    since: datetime | None = None,
    symbols: Sequence[str] | None = None,
) -> pa.Table:
    """Feature rows for in-memory candles (columns of the candle store), as Arrow.

    Row order is unspecified (sorting 100 columns costs more than computing them);
    the dataset writer sorts each file. Rows need ``LOOKBACK_HOURS`` of earlier
    candles in ``candles`` to have non-NULL windows; pass ``since`` to return only
    rows closing after it. Cross-asset columns come from the peers' candles in
    ``candles`` (with the same look-back); ``symbols`` limits the rows returned to
    those symbols, e.g. one symbol whose peer's candles were passed only as its peer.
    """
    with duckdb_connection() as con:
        con.register("candles_input", candles)
        return _run(con, "candles_input", since, symbols)
