"""Online read latency: the local profile's SQLite against the scale profile's Redis.

One temporary home (the synthetic market, ``candlecast sample``, 2,400 hours of
BTC-USD), materialized into both online stores; Redis is a Debian ``redis-server``
started here on a free 127.0.0.1 port (no persistence) and stopped at the end. Timed
in the same run, alternating the stores in blocks so drift hits both alike:

1. ``OnlineReader.read`` of one entity (``get_online_features`` of one FeatureService
   plus event timestamps), for the 68-feature v1 service, v2 and v3;
2. the API's per-request feature lookup (``FeatureSource.live``: prices + v2) with
   no write in between: a request whose change token (``OnlineChanges``) is unchanged
   reuses the last read. SQLite's token is a local ``PRAGMA data_version``; Redis's is
   one ``HGETALL`` of the symbol's hash (a round trip), beside the Redis figure of a
   Feast read on every request (``no token``) for comparison.

Reads per store and figure: BENCH_ONLINE_READS (default 1,000).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

SYMBOL, HOURS = "BTC-USD", 2400
READS = int(os.environ.get("BENCH_ONLINE_READS", "1000"))
BLOCK = 100  # reads per store before switching to the other
SERVICES = ("price_model_v1", "price_model_v2", "price_model_v3")


def _latencies(calls: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """ms per call of each store's ``call``, READS each, interleaved in BLOCKs."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm: connections, Feast's lazily built state
        for _ in range(20):
            call()
    while any(len(t) < READS for t in times.values()):
        for name, call in calls.items():
            for _ in range(min(BLOCK, READS - len(times[name]))):
                start = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def _row(label: str, times: dict[str, list[float]]) -> None:
    cuts = {name: statistics.quantiles(t, n=100) for name, t in times.items()}
    sqlite, redis = cuts["sqlite"], cuts["redis"]
    print(
        f"{label:<40} sqlite p50 {sqlite[49]:6.3f} p99 {sqlite[98]:6.3f} ms | "
        f"redis p50 {redis[49]:6.3f} p99 {redis[98]:6.3f} ms | "
        f"redis/sqlite p50 {redis[49] / sqlite[49]:5.2f}x"
    )


def _home(root: Path, redis_url: str) -> None:
    """Sample, compute and publish (SQLite), then apply and materialize the scale profile."""
    from candlecast import feast_store
    from candlecast.settings import get_settings, reset_settings
    from ingestion.feature_jobs import publish
    from ingestion.sample import write_sample
    from ingestion.store import CandleStore

    os.environ["CANDLECAST_HOME"] = str(root)
    os.environ["CANDLECAST_REDIS_URL"] = redis_url
    reset_settings()
    write_sample(CandleStore(get_settings().candles_dir), SYMBOL, HOURS, seed=0)
    publish([SYMBOL])  # the local profile: apply, materialize into SQLite
    scale = feast_store.apply("scale")
    end = feast_store.online_features(SYMBOL, feast_store.PRICE_SERVICE).event_timestamp
    feast_store.materialize(end - pd.Timedelta(hours=HOURS), end, scale)


def main() -> None:
    from bench.serving import cpu_model

    binary = shutil.which("redis-server")
    if binary is None:
        print("skipped: redis-server not found (apt-get install -y redis-server)")
        return
    from tests.integration.features.redis_server import RedisServer

    root = Path(tempfile.mkdtemp(prefix="candlecast-bench-online-"))
    previous = {k: os.environ.get(k) for k in ("CANDLECAST_HOME", "CANDLECAST_REDIS_URL")}
    server = RedisServer(root).start()
    try:
        _home(root / "home", server.url)
        print(f"CPU: {cpu_model()}; redis-server on 127.0.0.1 (loopback), {READS} reads each")
        _measure()
    finally:
        server.kill()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def _measure() -> None:
    from bentos.features import FeatureSource
    from candlecast import feast_store

    stores = {"sqlite": feast_store.get_store("local"), "redis": feast_store.get_store("scale")}
    for service in SERVICES:
        readers = {name: feast_store.OnlineReader(service, s) for name, s in stores.items()}
        reads = {name: r.read(SYMBOL) for name, r in readers.items()}
        assert reads["sqlite"] == reads["redis"], f"{service}: the stores disagree"
        label = f"read {service} ({len(readers['redis'].refs)} features)"
        _row(label, _latencies({n: (lambda r=r: r.read(SYMBOL)) for n, r in readers.items()}))
    sources = {name: FeatureSource(s) for name, s in stores.items()}
    calls = {n: (lambda s=s: s.live(SYMBOL, "price_model_v2")) for n, s in sources.items()}
    _row("API lookup (live: prices + v2, cached)", _latencies(calls))
    for source in sources.values():
        source.changes.token = lambda symbol=None: None  # as a store without a token
    _row("API lookup (live, no token: a read each)", _latencies(calls))


if __name__ == "__main__":
    main()
