"""Prediction latency and throughput over HTTP on 127.0.0.1, per serving layout.

For Lasso and CNN: p50/p99 with one connection (sequential requests) and requests/s
with 16 concurrent connections, beside the in-process call (features + model, no HTTP)
timed in the same run. Two clients measure each layout, so the client's own cost shows:
the bench's Python client (aiohttp, POST /predict, in this process) and ``wrk`` (a C
client from Debian's packages, GET /predict; skipped with a note if it is missing).
Layouts (``CANDLECAST_SERVING_LAYOUT`` and BentoML's worker options):

- ``inprocess``: the default; the models run inside each of the two API worker processes
  (no hop; ``CANDLECAST_API_WORKERS`` default 2)
- ``inprocess-1w``: the same with one API worker process
- ``split``: one PricePredictor worker + LassoModel + CNNModel as three processes (UDS hop
  per call)
- ``split-nobatch``: the same with adaptive batching switched off in the model services
- ``split-2w2m``: two PricePredictor workers and two workers per model service

Always builds a temporary home: the bundled synthetic market (``candlecast sample``,
2,400 hours), its features in Feast, and Lasso and CNN champions trained on it by
the real training code (the CNN is the reference architecture, a few epochs), so the
figures are for trained models and do not depend on what ./data or ../shared holds.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: Issue 14: p50 and p99 of one connection, requests/s of 16, on 2 cores.
GOALS = {"p50_ms": 3.0, "p99_ms": 10.0, "rps": 500.0}
_SPLIT = {"CANDLECAST_SERVING_LAYOUT": "split"}
#: name -> (environment of the server, API workers)
LAYOUTS: dict[str, tuple[dict[str, str], int]] = {
    "inprocess": ({}, 2),
    "inprocess-1w": ({}, 1),
    "split": (_SPLIT, 1),
    "split-nobatch": ({**_SPLIT, "CANDLECAST_MODEL_BATCHING": "false"}, 1),
    "split-2w2m": (
        {
            **_SPLIT,
            "BENTOML_CONFIG_OPTIONS": "services.LassoModel.workers=2 services.CNNModel.workers=2",
        },
        2,
    ),
}
MODELS = ("lasso", "cnn")
SYMBOL, HOURS = "BTC-USD", 2400
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "400"))
CONCURRENT_CLIENTS = 16
CONCURRENT_SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
WRK_SECONDS = float(os.environ.get("BENCH_WRK_SECONDS", "5"))


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

    async def timed(model: str) -> float:
        times = []
        for _ in range(n):  # one event loop, as in the server (a new loop costs ~0.3 ms)
            start = time.perf_counter()
            await service.predictor.predict("BTC-USD", model)
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times[20:])

    return {model: asyncio.run(timed(model)) for model in MODELS}


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


def wrk(url: str, connections: int, seconds: float) -> dict[str, float] | None:
    """``wrk --latency`` against ``url``: p50/p99 ms, requests/s and non-2xx (None: no wrk)."""
    if shutil.which("wrk") is None:
        return None
    threads = min(connections, os.cpu_count() or 1)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {
        "p50_ms": _wrk_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99_ms": _wrk_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "errors": int(m.group(1)) if (m := re.search(r"Non-2xx.*?:\s+(\d+)", out)) else 0,
    }


def _wrk_ms(text: str) -> float:
    """wrk's latency figure (``812.00us``, ``3.21ms``, ``1.02s``) in milliseconds."""
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * factor
    raise ValueError(f"wrk latency {text!r}")


def measure_layout(name: str, env: dict[str, str], workers: int) -> list[dict]:
    from deploy.serve import free_port, serve_in_background

    rows = []
    with serve_in_background(free_port(), api_workers=workers, env=env) as client:
        url = f"{client.base_url}/predict"
        for model in MODELS:
            times = np.array(asyncio.run(sequential(url, model, SEQUENTIAL))) * 1000
            rps, errors = asyncio.run(
                concurrent(url, model, CONCURRENT_CLIENTS, CONCURRENT_SECONDS)
            )
            row = {
                "layout": name,
                "model": model,
                "client": "python",
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
                "rps": rps,
                "errors": errors,
            }
            rows.append(row)
            print(_format(row), flush=True)
            get = f"{url}?symbol={SYMBOL}&model={model}"
            one = wrk(get, 1, WRK_SECONDS)
            many = wrk(get, CONCURRENT_CLIENTS, CONCURRENT_SECONDS)
            if one is None or many is None:
                print(f"| {name:<13} | {model:<5} | wrk    | (not installed: apt-get install wrk)")
                continue
            row = {**row, "client": "wrk", **{k: one[k] for k in ("p50_ms", "p99_ms")}}
            row |= {"rps": many["rps"], "errors": one["errors"] + many["errors"]}
            rows.append(row)
            print(_format(row), flush=True)
    return rows


def _format(row: dict) -> str:
    ok = row["p50_ms"] <= GOALS["p50_ms"] and row["p99_ms"] <= GOALS["p99_ms"]
    ok = ok and row["rps"] >= GOALS["rps"] and row["errors"] == 0
    return (
        f"| {row['layout']:<13} | {row['model']:<5} | {row['client']:<6} | "
        f"{row['p50_ms']:6.2f} | {row['p99_ms']:6.2f} | {row['rps']:6.0f} | "
        f"{row['errors']:>6} | {'yes' if ok else 'no':<4} |"
    )


def main(layouts: list[str] | None = None) -> list[dict]:
    """Run every layout (or BENCH_LAYOUTS=inprocess,split) and print a Markdown table."""
    chosen = layouts or os.environ.get("BENCH_LAYOUTS", ",".join(LAYOUTS)).split(",")
    unknown = sorted(set(chosen) - set(LAYOUTS))
    if unknown:
        raise SystemExit(f"unknown BENCH_LAYOUTS {unknown}; choose from {list(LAYOUTS)}")
    print(f"home: {prepare_home()}; cores: {os.cpu_count()}; goals: {GOALS}")
    print(f"cpu: {cpu_model()}; load average before: {os.getloadavg()[0]:.2f}")
    base = in_process()
    print(
        "in-process predict (features + model, no HTTP), p50 ms: "
        + ", ".join(f"{m} {v:.2f}" for m, v in base.items())
    )
    print(
        f"p50/p99: one connection ({SEQUENTIAL} sequential requests; wrk for "
        f"{WRK_SECONDS:.0f} s); req/s: {CONCURRENT_CLIENTS} connections for "
        f"{CONCURRENT_SECONDS:.0f} s"
    )
    print("| layout        | model | client | p50 ms | p99 ms |  req/s | errors | goal |")
    print("|---------------|-------|--------|--------|--------|--------|--------|------|")
    rows = []
    for name in chosen:
        rows += measure_layout(name, *LAYOUTS[name])
    return rows


def cpu_model() -> str:
    """``lscpu``'s model name (the figures belong to it)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return "unknown (no lscpu)"
    found = re.search(r"Model name:\s+(.+)", out)
    return found.group(1).strip() if found else "unknown"


if __name__ == "__main__":
    main()
