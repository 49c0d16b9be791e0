"""Feature computation throughput, point-in-time join time and online read latency.

1. rows/s of ``ingestion.features.compute_features`` (DuckDB SQL) on synthetic
   candles, 20 symbols x 50,300 hours less 1 % gaps in every other symbol
   (>= 1M candles; BTC-USD and ETH-USD among them, so every symbol has its cross-asset
   peer), beside the vectorised pandas reference (``bench/reference_features.py``) of
   all 115 columns, timed in the same run on the same candles;
   the two outputs, NULLs included, are compared on a sample. When polars is installed
   (a dev/bench-only dependency), the same definitions in idiomatic lazy polars
   (``bench/polars_features.py``) are a second same-run baseline, timed and compared
   the same way: the peer a user would pick, per wall second and per CPU-second.
2. ``get_historical_features`` for 40,000 entity rows x 68 features
   (``price_model_v1``) over a temporary home of 4 symbols x 25,000 hours.
3. Online read latency (p50/p99) of one symbol through
   ``candlecast.feast_store.OnlineReader.read`` (SQLite online store, values and
   event timestamps of 68 features).

Sizes can be reduced with BENCH_FEATURE_SYMBOLS / BENCH_FEATURE_HOURS.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

GOAL_ROWS_PER_SECOND = 400_000
SYMBOLS = int(os.environ.get("BENCH_FEATURE_SYMBOLS", "20"))
HOURS = int(os.environ.get("BENCH_FEATURE_HOURS", "50300"))  # >= 1M candles after gaps
ENTITY_ROWS = 40_000
ONLINE_READS = 300


def symbol_name(index: int) -> str:
    """BTC-USD and ETH-USD first (each the other's peer), then S02-USD, ... (BTC's peers)."""
    return ("BTC-USD", "ETH-USD")[index] if index < 2 else f"S{index:02d}-USD"


def synthetic_candles(symbols: int, hours: int, seed: int = 0) -> pd.DataFrame:
    """Random-walk hourly candles in the candle store's shape.

    Every other symbol loses 1 % of its hours at random, as Coinbase does for hours
    without trades, so the gap path (dense grid, NULL lags) is part of what is timed.
    """
    rng = np.random.default_rng(seed)
    times = pd.date_range("2019-01-01", periods=hours, freq="h", tz="UTC").astype(
        "datetime64[us, UTC]"
    )
    frames = []
    names = [symbol_name(i) for i in range(symbols)]
    for index, name in enumerate(names):
        close = 1000.0 * (index + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, hours)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        spread = np.abs(rng.normal(0, 0.004, hours))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": name,
                    "time": times,
                    "open": open_,
                    "high": np.maximum(open_, close) * (1 + spread),
                    "low": np.minimum(open_, close) * (1 - spread),
                    "close": close,
                    "volume": rng.gamma(2.0, 50.0, hours),
                }
            )
        )
    candles = pd.concat(frames, ignore_index=True)
    gapped = candles["symbol"].isin(names[::2])
    dropped = gapped & (rng.random(len(candles)) < 0.01)
    return candles[~dropped].reset_index(drop=True)


def _timed(func, *args):
    """(result, wall seconds, CPU seconds of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _median(run):
    """The run with the median wall time of three."""
    return sorted((run() for _ in range(3)), key=lambda r: r[1])[1]


def _rate(label: str, n: int, wall: float, cpu: float) -> None:
    print(
        f"  {label:<32} {n / wall:>10,.0f} rows/s wall ({wall:.2f} s)"
        f"  {n / cpu:>10,.0f} rows per CPU-s ({cpu:.2f} CPU-s)"
    )


def _agree(reference: pd.DataFrame, rows: pd.DataFrame) -> bool:
    """``rows`` equal ``reference`` (a sample) on its keys, NULLs in the same places."""
    from ingestion.features import FEATURE_COLUMNS

    keys = ["symbol", "event_timestamp"]
    other = reference[keys].merge(rows, on=keys, how="left")
    a, b = other[FEATURE_COLUMNS].to_numpy(), reference[FEATURE_COLUMNS].to_numpy()
    same_nulls = bool((np.isnan(a) == np.isnan(b)).all())
    return same_nulls and np.allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=1e-9, atol=1e-12)


def _polars_baseline(
    table: pa.Table, n: int, wall: float, cpu: float, sample: pd.DataFrame
) -> None:
    """Time and check the polars implementation; skipped (and said so) without polars."""
    try:
        from bench.polars_features import polars_features, to_reference_frame
    except ImportError:
        print("  polars baseline: skipped (polars is not installed; pip install polars)")
        return
    rows, polars_wall, polars_cpu = _median(lambda: _timed(polars_features, table))
    _rate("polars (lazy, one collect)", n, polars_wall, polars_cpu)
    print(
        f"  duckdb / polars: {polars_wall / wall:.2f}x per wall second, "
        f"{polars_cpu / cpu:.2f}x per CPU-second (>= 1: duckdb at least as fast)"
    )
    same = _agree(sample, to_reference_frame(rows))
    print(f"  polars outputs agree with the pandas reference on the same sample: {same}")


def bench_computation() -> None:
    from bench.reference_features import reference_features
    from ingestion.features import FEATURE_COLUMNS, compute_features

    candles = synthetic_candles(SYMBOLS, HOURS)
    table = pa.Table.from_pandas(candles, preserve_index=False)
    n = len(candles)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"feature computation: {SYMBOLS} symbols x {HOURS} h = {n:,} candles (load avg {load})")
    # Median of three runs for each, so no side gets a best-of advantage.
    rows, wall, cpu = _median(lambda: _timed(compute_features, table))
    reference, pandas_wall, pandas_cpu = _median(lambda: _timed(reference_features, candles))
    _rate("duckdb (ingestion.features)", n, wall, cpu)
    _rate("pandas reference (vectorised)", n, pandas_wall, pandas_cpu)
    verdict = "met" if n / wall >= GOAL_ROWS_PER_SECOND else "NOT met"
    goal = f"goal {GOAL_ROWS_PER_SECOND:,} rows/s: {verdict}"
    print(f"  speed-up {pandas_wall / wall:.1f}x wall, {pandas_cpu / cpu:.1f}x per CPU-s; {goal}")
    sample = reference.sample(2000, random_state=1)
    same = _agree(sample, rows.to_pandas())
    nulls = int(np.isnan(sample[FEATURE_COLUMNS].to_numpy()).any(axis=1).sum())
    print(f"  outputs agree on a 2,000-row sample ({nulls} rows with gap NULLs): {same}")
    _polars_baseline(table, n, wall, cpu, sample)


def _temporary_home() -> Path:
    from candlecast.settings import reset_settings

    root = Path(tempfile.mkdtemp(prefix="candlecast-bench-features-"))
    os.environ["CANDLECAST_HOME"] = str(root)
    reset_settings()
    return root


def bench_feast() -> None:
    from candlecast import feast_store
    from candlecast.settings import get_settings
    from ingestion.feature_jobs import compute_job
    from ingestion.store import CandleStore

    previous = os.environ.get("CANDLECAST_HOME")
    _temporary_home()
    try:
        candles = synthetic_candles(4, 25_000, seed=2)
        CandleStore(get_settings().candles_dir).write(candles)
        compute_job()
        store = feast_store.apply()
        entities = candles.sample(ENTITY_ROWS, random_state=3)[["symbol", "time"]]
        entities = entities.rename(columns={"time": "event_timestamp"})
        entities["event_timestamp"] += pd.Timedelta(minutes=90)  # mid-hour: PIT must pick
        service = feast_store.feature_service("price_model_v1", store)
        start = time.perf_counter()
        frame = store.get_historical_features(entity_df=entities, features=service).to_df()
        seconds = time.perf_counter() - start
        print(
            f"get_historical_features: {len(frame):,} entity rows x {len(frame.columns) - 2} "
            f"features over {len(candles):,} feature rows in {seconds:.2f} s"
        )
        _bench_online(store, candles)
    finally:
        if previous is None:
            os.environ.pop("CANDLECAST_HOME", None)
        else:
            os.environ["CANDLECAST_HOME"] = previous


def _bench_online(store, candles: pd.DataFrame) -> None:
    from candlecast import feast_store
    from candlecast.times import HOUR

    end = candles["time"].max() + HOUR
    feast_store.materialize(end - pd.Timedelta(hours=2), end, store)
    reader = feast_store.OnlineReader("price_model_v1", store)
    latencies = []
    for _ in range(ONLINE_READS):
        start = time.perf_counter()
        online = reader.read(symbol_name(1))  # a symbol without gaps: its last hour exists
        latencies.append((time.perf_counter() - start) * 1000)
    assert online.event_timestamp == end
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"online read (1 symbol, 68 features + event timestamps, {ONLINE_READS} reads): "
        f"p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms"
    )


def main() -> None:
    bench_computation()
    bench_feast()


if __name__ == "__main__":
    main()
