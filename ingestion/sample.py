"""A deterministic synthetic market for offline runs (``python -m ingestion sample``).

Returns follow a GARCH(1,1) process with Student-t shocks, so calm and wild
periods cluster as in real crypto markets; volume rises with the absolute
return, so volume carries information as it does on an exchange. The same
seed, hours and end always give the same candles. Each symbol starts near its own
price level (``START_PRICES``: ETH-USD at 2,500, BTC-USD and any other at 40,000), so a
second symbol looks like a second market, not BTC under another name; give it its own
seed too (``candlecast demo`` uses seed 0 for BTC-USD and 1 for ETH-USD).

Synthetic candles are labelled in the data, not only in the CLI output: the
symbol folder gets a ``SYNTHETIC.json`` sidecar (generator, seed, start price, window) that
``status`` shows and that ``backfill``/``load-csv`` refuse to mix real candles
into.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from candlecast.errors import Failure
from candlecast.symbols import normalize_symbol
from candlecast.times import HOUR
from ingestion.store import CandleStore, WriteResult
from ingestion.validate import describe_time, last_closed_end, validate_candles

log = logging.getLogger(__name__)
GENERATOR = "garch(1,1) student-t returns, volume ~ |return|"
#: Hourly GARCH(1,1): long-run volatility ~0.5 %/h, persistence alpha+beta = 0.97.
OMEGA, ALPHA, BETA = 7.5e-7, 0.08, 0.89
T_DOF = 5
#: Start price by symbol (about its early-2024 level); other symbols start at DEFAULT.
DEFAULT_START_PRICE = 40_000.0
START_PRICES = {"BTC-USD": DEFAULT_START_PRICE, "ETH-USD": 2_500.0}


class SyntheticConflictError(Failure, ValueError):
    """Real and synthetic candles would be mixed under one symbol."""


@dataclass(frozen=True)
class SampleResult:
    symbol: str
    write: WriteResult
    first: pd.Timestamp
    last: pd.Timestamp
    replaced: dict | None


def synthetic_candles(
    symbol: str,
    hours: int,
    seed: int,
    end: pd.Timestamp | None = None,
    start_price: float | None = None,
) -> pd.DataFrame:
    """``hours`` closed candles ending before ``end`` (default: this hour), in store shape.

    The first candle opens at ``start_price`` (default: ``default_start_price(symbol)``).
    """
    if hours < 1:
        raise ValueError("hours must be >= 1")
    start_price = default_start_price(symbol) if start_price is None else float(start_price)
    if not np.isfinite(start_price) or start_price <= 0:
        raise ValueError("start_price must be a positive number")
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(T_DOF, hours) / np.sqrt(T_DOF / (T_DOF - 2))
    returns, sigma = _garch_returns(shocks)
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[start_price], close[:-1]])
    wick_up = np.exp(sigma * np.abs(rng.normal(0, 0.6, hours)))
    wick_down = np.exp(-sigma * np.abs(rng.normal(0, 0.6, hours)))
    long_run = np.sqrt(OMEGA / (1 - ALPHA - BETA))
    volume = 400.0 * (0.3 + np.abs(returns) / long_run) * rng.lognormal(0.0, 0.25, hours)
    stop = (last_closed_end() if end is None else pd.Timestamp(end)).floor("h")
    times = pd.date_range(end=stop - HOUR, periods=hours, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": normalize_symbol(symbol),
            "time": times.as_unit("us"),
            "open": np.round(open_, 2),
            "high": np.round(np.maximum(open_, close) * wick_up, 2),
            "low": np.round(np.minimum(open_, close) * wick_down, 2),
            "close": np.round(close, 2),
            "volume": np.round(volume, 8),
        }
    )
    return validate_candles(frame)


def default_start_price(symbol: str) -> float:
    """Where ``symbol``'s synthetic market starts: ``START_PRICES``, else 40,000."""
    return START_PRICES.get(normalize_symbol(symbol), DEFAULT_START_PRICE)


def _garch_returns(shocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log returns and conditional volatilities of a GARCH(1,1) driven by ``shocks``."""
    variance = OMEGA / (1 - ALPHA - BETA)
    returns = np.empty_like(shocks)
    sigmas = np.empty_like(shocks)
    for i, shock in enumerate(shocks):
        sigmas[i] = np.sqrt(variance)
        returns[i] = sigmas[i] * shock
        variance = OMEGA + ALPHA * returns[i] ** 2 + BETA * variance
    return returns, sigmas


def write_sample(
    store: CandleStore,
    symbol: str,
    hours: int,
    seed: int,
    end: pd.Timestamp | None = None,
    start_price: float | None = None,
) -> SampleResult:
    """Store a synthetic market under ``symbol``, labelled, replacing an older synthetic one.

    Refuses a symbol that holds real candles. A previous synthetic series made
    with other parameters is removed first: two synthetic paths spliced
    together would be a market that never existed even synthetically.
    """
    symbol = normalize_symbol(symbol)
    price = default_start_price(symbol) if start_price is None else float(start_price)
    candles = synthetic_candles(symbol, hours, seed, end, price)
    info = {
        "generator": GENERATOR,
        "seed": seed,
        "hours": hours,
        "start_price": price,
        "first": describe_time(candles["time"].iloc[0]),
        "last": describe_time(candles["time"].iloc[-1]),
    }
    previous = store.synthetic_info(symbol)
    if previous is None and store.files(symbol):
        raise SyntheticConflictError(
            f"{symbol} already holds real candles in {store.symbol_dir(symbol)}; "
            "use another symbol or CANDLECAST_HOME for synthetic data"
        )
    replaced = None
    if previous is not None and _described(previous, info) != info:
        replaced = previous
        removed = store.files(symbol)
        for path in removed:
            path.unlink()
        log.info(
            "%s sample: removed %d files of the earlier synthetic series (seed %s)",
            symbol,
            len(removed),
            previous.get("seed"),
        )
    store.mark_synthetic(symbol, info)  # label first: a crash never leaves unlabelled fakes
    result = store.write(candles)
    log.info(
        "%s sample: %d synthetic candles (seed %d) %s .. %s, %d new, %d already stored",
        symbol,
        hours,
        seed,
        info["first"],
        info["last"],
        result.new,
        result.existing,
    )
    return SampleResult(symbol, result, candles["time"].iloc[0], candles["time"].iloc[-1], replaced)


def _described(previous: dict, info: dict) -> dict:
    """``previous``'s values of ``info``'s keys; sidecars older than ``start_price`` all
    started at 40,000."""
    return {k: previous.get(k, DEFAULT_START_PRICE if k == "start_price" else None) for k in info}


def ensure_not_synthetic(store: CandleStore, symbol: str) -> None:
    """Refuse to add exchange candles to a symbol that holds synthetic ones."""
    info = store.synthetic_info(symbol)
    if info is not None:
        raise SyntheticConflictError(
            f"{symbol} holds synthetic candles (seed {info.get('seed')}) in "
            f"{store.symbol_dir(symbol)}; delete that folder or use another CANDLECAST_HOME "
            "before storing real candles"
        )
