"""Prediction latency and throughput over HTTP on 127.0.0.1, per serving layout.

For Lasso and CNN: p50/p99 with one client (sequential POST /predict) and
requests/s with 16 concurrent clients, beside the in-process call (features +
model, no HTTP) timed in the same run. Layouts compared:

- ``split``:  PricePredictor + LassoModel + CNNModel as three processes (HTTP hop per call)
- ``fused``:  the model services inside the API process (``bentoml serve --development``)
- ``*-2w``:   the same with two PricePredictor worker processes
- ``split-2w2m``: two PricePredictor workers and two workers per model service

Always builds a temporary home: the bundled synthetic market (``candlecast sample``,
2,400 hours), its features in Feast, and Lasso and CNN champions trained on it by
the real training code (the CNN is the reference architecture, a few epochs), so the
figures are for trained models and do not depend on what ./data or ../shared holds.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

GOALS = {"p50_ms": 5.0, "p99_ms": 15.0, "rps": 300.0}
#: name -> (fused, API workers, extra BENTOML_CONFIG_OPTIONS)
LAYOUTS = {
    "split": (False, 1, ""),
    "split-2w": (False, 2, ""),
    "split-2w2m": (False, 2, "services.LassoModel.workers=2 services.CNNModel.workers=2"),
    "fused": (True, 1, ""),
    "fused-2w": (True, 2, ""),
}
MODELS = ("lasso", "cnn")
SYMBOL, HOURS = "BTC-USD", 2400
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "400"))
CONCURRENT_CLIENTS = 16
CONCURRENT_SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))


def prepare_home() -> str:
    """A temporary CANDLECAST_HOME/BENTOML_HOME with features and champions."""
    from candlecast.settings import reset_settings

    root = Path(tempfile.mkdtemp(prefix="candlecast-bench-"))
    os.environ["CANDLECAST_HOME"] = str(root / "home")
    os.environ["BENTOML_HOME"] = str(root / "bentoml")
    reset_settings()
    _build_temporary_home(root / "home")
    return f"{root} (temporary: synthetic market, trained Lasso and reference CNN)"


def _build_temporary_home(home: Path) -> None:
    from candlecast.feast_store import DEFAULT_SERVICE
    from candlecast.settings import get_settings
    from ingestion.feature_jobs import publish
    from ingestion.sample import write_sample
    from ingestion.store import CandleStore
    from training.dataset import load_dataset
    from training.models import FitConfig
    from training.train import data_end, train_family

    home.mkdir(parents=True)
    write_sample(CandleStore(get_settings().candles_dir), SYMBOL, HOURS, seed=0)
    publish([SYMBOL])
    data = load_dataset(SYMBOL, DEFAULT_SERVICE, "return")
    cut = data_end(data)
    for family in MODELS:
        train_family(data, family, cut, cut - pd.Timedelta(days=7), FitConfig(max_epochs=5))


def in_process(n: int = 300) -> dict[str, float]:
    """p50 ms of the whole predict (features + model) without HTTP, per model."""
    from bentos.runners import service_for
    from bentos.service import PricePredictor

    service = PricePredictor.inner.__new__(PricePredictor.inner)
    for family in MODELS:  # in-process instances of the model services
        setattr(service, family, service_for(family)())
    PricePredictor.inner.__init__(service)
    result = {}
    for model in MODELS:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            asyncio.run(service.predictor.predict("BTC-USD", model))
            times.append(time.perf_counter() - start)
        result[model] = 1000 * statistics.median(times[20:])
    return result


async def sequential(url: str, model: str, n: int) -> list[float]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            async with session.post(url, json={"symbol": "BTC-USD", "model": model}) as r:
                await r.read()
                assert r.status == 200, await r.text()
            times.append(time.perf_counter() - start)
    return times[min(50, n // 5) :]


async def concurrent(url: str, model: str, clients: int, seconds: float) -> tuple[float, int]:
    """(requests/s, errors) with ``clients`` connections looping for ``seconds``."""
    import aiohttp

    done = errors = 0
    stop_at = time.perf_counter() + seconds

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop_at:
            async with session.post(url, json={"symbol": "BTC-USD", "model": model}) as r:
                await r.read()
                done += 1
                errors += r.status != 200

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(one(session) for _ in range(clients)))
        return done / (time.perf_counter() - start), errors


def measure_layout(name: str, fused: bool, workers: int, options: str = "") -> list[dict]:
    from deploy.serve import free_port, serve_in_background

    rows = []
    env = {"BENTOML_CONFIG_OPTIONS": options} if options else None
    with serve_in_background(free_port(), fused=fused, api_workers=workers, env=env) as client:
        url = f"{client.base_url}/predict"
        for model in MODELS:
            times = np.array(asyncio.run(sequential(url, model, SEQUENTIAL))) * 1000
            rps, errors = asyncio.run(
                concurrent(url, model, CONCURRENT_CLIENTS, CONCURRENT_SECONDS)
            )
            rows.append(
                {
                    "layout": name,
                    "model": model,
                    "p50_ms": float(np.percentile(times, 50)),
                    "p99_ms": float(np.percentile(times, 99)),
                    "rps": rps,
                    "errors": errors,
                }
            )
            print(_format(rows[-1]), flush=True)
    return rows


def _format(row: dict) -> str:
    ok = row["p50_ms"] <= GOALS["p50_ms"] and row["p99_ms"] <= GOALS["p99_ms"]
    ok = ok and row["rps"] >= GOALS["rps"] and row["errors"] == 0
    return (
        f"| {row['layout']:<10} | {row['model']:<5} | {row['p50_ms']:6.2f} | {row['p99_ms']:6.2f} "
        f"| {row['rps']:6.0f} | {row['errors']:>6} | {'yes' if ok else 'no':<4} |"
    )


def main(layouts: list[str] | None = None) -> list[dict]:
    """Run every layout (or BENCH_LAYOUTS=split,fused) and print a Markdown table."""
    chosen = layouts or os.environ.get("BENCH_LAYOUTS", ",".join(LAYOUTS)).split(",")
    print(f"home: {prepare_home()}; cores: {os.cpu_count()}; goals: {GOALS}")
    base = in_process()
    print(
        "in-process predict (features + model, no HTTP), p50 ms: "
        + ", ".join(f"{m} {v:.2f}" for m, v in base.items())
    )
    print(
        f"one client: {SEQUENTIAL} sequential requests; "
        f"{CONCURRENT_CLIENTS} clients for {CONCURRENT_SECONDS:.0f} s each"
    )
    print("| layout     | model | p50 ms | p99 ms |  req/s | errors | goal |")
    print("|------------|-------|--------|--------|--------|--------|------|")
    rows = []
    for name in chosen:
        rows += measure_layout(name, *LAYOUTS[name])
    return rows


if __name__ == "__main__":
    main()
