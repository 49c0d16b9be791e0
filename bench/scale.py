"""Scale bench: every pipeline step for S synthetic symbols x 2 years of hourly candles.

For each S of BENCH_SCALE_SYMBOLS (default ``20,200``), BENCH_SCALE_HOURS hours each
(default 17,520 = 2 years), in a fresh temporary CANDLECAST_HOME / BENTOML_HOME:

1. ``backfill``: every symbol from the fake Coinbase exchange (``tests/fakes/coinbase.py``,
   real HTTP on 127.0.0.1, pages of <= 300 candles) through the real client
   (``ingestion.backfill``) and its client-side rate limit; the fake throttles like
   Coinbase (token bucket, 429 past the burst). The rate is BENCH_SCALE_RATE requests/s
   (default 50: Coinbase's public 10/s would make 200 symbols x 2 years ~20 min);
   the budget and what Coinbase's limit implies are printed.
2. ``features``: ``compute_job`` (DuckDB features + offline parquet write).
3. ``materialize-sqlite`` / 4. ``materialize-redis``: Feast apply, then
   ``materialize_all`` (each symbol's newest row: windows of the views' TTL around the
   newest rows, not the whole range) into SQLite (local profile) and into a
   ``redis-server`` started here on a free 127.0.0.1 port (scale profile, no persistence;
   ``CANDLECAST_SCALE_RAY=false``: Feast's local engine, so the two compare the stores).
5. ``train`` / ``train-ray``: a Lasso for every symbol, the way ``candlecast train``
   does it (the driver loads every dataset, ``train_jobs`` fits and registers the units)
   on a small budget: the fit uses the last BENCH_SCALE_TRAIN_DAYS days (default 90) and
   the walk-forward one week. ``train`` runs the units serially, ``train-ray`` as tasks
   on a local Ray cluster (CANDLECAST_RAY_NUM_CPUS, default 2; its start is timed apart,
   ``ray_init_s``) with its own model store; the serial/Ray ratio is printed per S.
6. ``serve``: one ``bentoml serve`` for all S symbols (lasso), every symbol asked once,
   then p50/p99 of ``GET /predict`` for a random symbol per request (BENCH_SCALE_REQUESTS).

Each step runs in its own subprocess (``python -m bench.scale --step ...``), so its peak
memory is its own: the peak RSS is the child's own ``VmHWM`` (read by the child as it
ends) or, if larger, the largest descendant it reaped (``RUSAGE_CHILDREN``). Not the
parent's ``os.wait4`` ``ru_maxrss``: Linux starts a child's ``maxrss`` at the RSS it
forked from, so every step read at least the parent's size (which holds the fake
exchange's candles: ~370 MB at 200 symbols). The step time
is measured inside the child around the step's work (imports excluded; the process wall
time including imports is shown too). A ``baseline`` step (imports only) gives the
memory floor every step starts from. The server's processes are not reaped by the step
child before it exits, so the ``serve`` row also gives the server tree's peak (sum of
every process's VmHWM, read before it stops).

Then the growth of each step from the smallest to the largest S, against linear.
``BENCH_SCALE_SAVE=path.json`` writes this run's results; ``BENCH_SCALE_COMPARE=path.json``
adds an earlier run's sizes to the growth table (marked: not the same run), for when the
sizes cannot run back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

SIZES = [int(s) for s in os.environ.get("BENCH_SCALE_SYMBOLS", "20,200").split(",") if s]
HOURS = int(os.environ.get("BENCH_SCALE_HOURS", "17520"))
#: Requests/s of the client and of the fake's token bucket (Coinbase public: 10, burst 15).
RATE = float(os.environ.get("BENCH_SCALE_RATE", "50"))
COINBASE_RATE, COINBASE_BURST = 10.0, 15.0
CLIENT_DEFAULT_RATE = 5.0  # Settings.coinbase_requests_per_second
TRAIN_DAYS = int(os.environ.get("BENCH_SCALE_TRAIN_DAYS", "90"))
EVAL_DAYS = 7
REQUESTS = int(os.environ.get("BENCH_SCALE_REQUESTS", "300"))
STEPS = (
    "baseline",
    "backfill",
    "features",
    "materialize-sqlite",
    "materialize-redis",
    "train",
    "train-ray",
    "serve",
)
#: BENCH_SCALE_STEPS: the steps to run, in order (default: all; each needs those before it).
STEPS_RUN = tuple(s for s in os.environ.get("BENCH_SCALE_STEPS", ",".join(STEPS)).split(",") if s)
#: Candles of the fake exchange end at this hour (the last closed hour of the run).
END_ENV = "BENCH_SCALE_END"


def symbol_names(count: int) -> list[str]:
    """BTC-USD and ETH-USD (each other's peer), then S002-USD ... (BTC is their peer)."""
    return [("BTC-USD", "ETH-USD")[i] if i < 2 else f"S{i:03d}-USD" for i in range(count)]


# -- the steps, each run in its own child process ---------------------------------------
def step_baseline(symbols: list[str], hours: int) -> dict:
    """Nothing but the imports the other steps make: the memory floor of a step."""
    import bentoml  # noqa: F401

    from candlecast import feast_store  # noqa: F401
    from training import train  # noqa: F401

    return {}


def step_backfill(symbols: list[str], hours: int) -> dict:
    """Every symbol through the real client, rate limit and page-by-page store writes."""
    from candlecast.settings import get_settings
    from ingestion.backfill import backfill
    from ingestion.coinbase import CoinbaseClient
    from ingestion.store import CandleStore

    end = pd.Timestamp(os.environ[END_ENV])
    start = end - pd.Timedelta(hours=hours)
    store, client = CandleStore(get_settings().candles_dir), CoinbaseClient()
    results = [backfill(store, s, start, end, client=client, now=end) for s in symbols]
    return {
        "requests": client.requests,
        "candles": sum(r.new for r in results),
        "client_rate": get_settings().coinbase_requests_per_second,
    }


def step_features(symbols: list[str], hours: int) -> dict:
    """DuckDB feature rows of every symbol, written to the offline parquet dataset."""
    from ingestion.feature_jobs import compute_job

    return {"rows": sum(r.count for r in compute_job(symbols))}


def step_materialize(symbols: list[str], hours: int) -> dict:
    """Apply, then materialize the whole range into this profile's online store.

    ``seconds`` is the materialize alone (apply is a constant of the registry); every
    symbol is read back afterwards (untimed) to prove it is online.
    """
    from candlecast import feast_store
    from candlecast.settings import get_settings
    from ingestion.feature_jobs import materialize_all

    started = time.perf_counter()
    store = feast_store.apply()
    applied = time.perf_counter()
    windows = materialize_all()
    seconds = time.perf_counter() - applied
    reader = feast_store.OnlineReader(feast_store.PRICE_SERVICE, store)
    online = sum(reader.read(s).event_timestamp is not None for s in symbols)
    return {
        "seconds": seconds,
        "apply_s": applied - started,
        "online_symbols": online,
        "windows": len(windows),
        "profile": get_settings().store_profile,
    }


def step_train(symbols: list[str], hours: int, executor: str = "serial") -> dict:
    """A Lasso per symbol, as ``candlecast train`` does it (small budget), on ``executor``.

    The driver loads every dataset (timed apart), then ``train_jobs`` fits the units
    serially or as Ray tasks and registers them; ``seconds`` is that fit-and-register.
    """
    from candlecast.feast_store import DEFAULT_SERVICE
    from training.dataset import load_dataset
    from training.models import FitConfig

    started = time.perf_counter()
    datasets = [_recent(load_dataset(symbol, DEFAULT_SERVICE, "return")) for symbol in symbols]
    loaded = time.perf_counter()
    info = {"dataset_s_per_symbol": (loaded - started) / len(symbols), "executor": executor}
    if executor == "ray":
        from candlecast.ray_cluster import ensure_ray

        ray = ensure_ray()
        info["ray_cpus"] = int(ray.cluster_resources().get("CPU", 0))
        info["ray_init_s"] = time.perf_counter() - loaded
    fit_started = time.perf_counter()
    trained, failed = _fit_all(datasets, FitConfig(), executor)
    info["seconds"] = time.perf_counter() - fit_started
    info.update(trained=trained, failed=failed, fit_s_per_symbol=info["seconds"] / len(symbols))
    return info


def step_train_ray(symbols: list[str], hours: int) -> dict:
    """``step_train`` with every unit a task on a local Ray cluster (ray_num_cpus CPUs)."""
    return step_train(symbols, hours, "ray")


def _recent(data):
    """The last TRAIN_DAYS of a symbol's rows: the bench's small training budget."""
    from training.dataset import LabelledFrame
    from training.train import data_end

    frame = data.frame[
        data.frame["event_timestamp"] > data_end(data) - pd.Timedelta(days=TRAIN_DAYS)
    ]
    return LabelledFrame(
        frame.reset_index(drop=True), data.features, data.target, data.symbol, data.feature_service
    )


def _fit_all(datasets: list, cfg, executor: str) -> tuple[int, int]:
    """(trained, failed) lasso units of every dataset, cut at its end, walk-forward EVAL_DAYS."""
    from training.train import data_end, plan_family, train_jobs

    jobs = []
    for data in datasets:
        cut = data_end(data)
        jobs.append(plan_family(data, "lasso", cut, cut - pd.Timedelta(days=EVAL_DAYS), cfg))
    outcomes, failures = train_jobs(jobs, executor)  # type: ignore[arg-type]
    return len(outcomes), len(failures)


def step_serve(symbols: list[str], hours: int) -> dict:
    """One API process for every symbol: startup, each symbol once, then random ones."""
    from deploy.serve import free_port, serve_in_background

    env = {"CANDLECAST_SERVE_SYMBOLS": ",".join(symbols), "CANDLECAST_SERVE_FAMILIES": "lasso"}
    started = time.perf_counter()
    with serve_in_background(free_port(), env=env, startup_timeout=900) as client:
        ready = time.perf_counter() - started
        url = f"{client.base_url}/predict"
        served = sum(_get(client.session, url, s)[0] == 200 for s in symbols)
        rng = random.Random(0)
        for _ in range(20):  # warm-up
            _get(client.session, url, rng.choice(symbols))
        times = [_get(client.session, url, rng.choice(symbols))[1] for _ in range(REQUESTS)]
        tree = _descendants_hwm_kb()
    cuts = statistics.quantiles(times, n=100)
    return {
        "startup_s": ready,
        "served": served,
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
        "server_tree_hwm_mb": tree / 1024,
    }


def _get(session, url: str, symbol: str) -> tuple[int, float]:
    """(status, ms) of one ``GET /predict`` of the symbol's lasso."""
    start = time.perf_counter()
    response = session.get(url, params={"symbol": symbol, "model": "lasso"}, timeout=30)
    response.content  # noqa: B018 (read the body: part of the request's time)
    return response.status_code, (time.perf_counter() - start) * 1000


def _descendants_hwm_kb() -> int:
    """Sum of VmHWM (peak RSS) over this process's descendants: the server's tree."""
    from deploy.serve import descendants

    mine = descendants(os.getpid())
    return sum(_hwm_kb(pid) for pid in mine)


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


STEP_FUNCTIONS: dict[str, Callable[[list[str], int], dict]] = {
    "baseline": step_baseline,
    "backfill": step_backfill,
    "features": step_features,
    "materialize-sqlite": step_materialize,
    "materialize-redis": step_materialize,
    "train": step_train,
    "train-ray": step_train_ray,
    "serve": step_serve,
}


def child(step: str, symbols: list[str], hours: int) -> None:
    """Run one step in this process and print its result as the last stdout line."""
    from candlecast import logs

    logs.configure()
    started = time.perf_counter()
    info = STEP_FUNCTIONS[step](symbols, hours)
    info.setdefault("seconds", time.perf_counter() - started)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    info["peak_kb"] = max(_hwm_kb(os.getpid()), reaped)
    print("RESULT " + json.dumps(info), flush=True)


# -- the parent: one child per step, then the tables ---------------------------------------
@dataclass
class StepResult:
    """One step at one size: time inside the child, its process wall, peak RSS, figures."""

    step: str
    seconds: float
    process_seconds: float
    peak_mb: float
    info: dict = field(default_factory=dict)


def run_step(step: str, root: Path, symbols: list[str], hours: int, env: dict) -> StepResult:
    """``python -m bench.scale --step`` in a child; its peak RSS is what the child reports."""
    cmd = [sys.executable, "-m", "bench.scale", "--step", step, "--hours", str(hours)]
    cmd += ["--symbols", ",".join(symbols)]
    child_env = {**os.environ, **_home_env(root), **env}
    log = root / f"{step}.log"
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=child_env, stdout=out, stderr=subprocess.STDOUT)
        _, status, _ = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    text = log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"step {step} failed ({proc.returncode}):\n{text[-4000:]}")
    info = json.loads(lines[-1].removeprefix("RESULT "))
    seconds = info.pop("seconds")
    return StepResult(step, seconds, wall, info.pop("peak_kb") / 1024, info)


def _home_env(root: Path) -> dict[str, str]:
    return {
        "CANDLECAST_HOME": str(root / "home"),
        "BENTOML_HOME": str(root / "bentoml"),
        "CANDLECAST_STORE_PROFILE": "local",
    }


def exchange(symbols: list[str], hours: int, end: pd.Timestamp):
    """The fake exchange, holding ``hours`` synthetic candles per symbol, throttled at RATE."""
    from ingestion.sample import synthetic_candles
    from tests.fakes.coinbase import FakeCoinbase

    fake = FakeCoinbase()
    for index, symbol in enumerate(symbols):
        price = 100.0 * (index + 1)
        fake.set_candles(symbol, synthetic_candles(symbol, hours, index, end, price))
    fake.limit_rate(RATE, max(RATE * 1.5, COINBASE_BURST))
    return fake.start()


def run_size(count: int, hours: int, steps: tuple[str, ...] = STEPS) -> list[StepResult]:
    """Every step for ``count`` symbols in a fresh temporary home (removed afterwards)."""
    from tests.fakes.coinbase import client_env

    symbols = symbol_names(count)
    root = Path(tempfile.mkdtemp(prefix=f"candlecast-bench-scale-{count}-"))
    ray_dir = tempfile.mkdtemp(prefix="cc-ray-")  # short: Ray's socket paths (<= 107 bytes)
    end = pd.Timestamp.now(tz="UTC").floor("h")
    results = []
    try:
        for step in steps:
            env: dict[str, str] = {END_ENV: end.isoformat(), "CANDLECAST_RAY_DIR": ray_dir}
            if step == "backfill":
                results.append(_backfill(root, symbols, hours, end, env, client_env))
            elif step == "materialize-redis":
                results.append(_redis_step(root, symbols, hours, env))
            elif step == "train-ray":  # its own model store: the serial run's champions
                env["BENTOML_HOME"] = str(root / "bentoml-ray")  # would change its gate
                results.append(run_step(step, root, symbols, hours, env))
            else:
                results.append(run_step(step, root, symbols, hours, env))
            print(f"  S={count}: {_row(results[-1])}", flush=True)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
        if not os.environ.get("BENCH_SCALE_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
    return results


def _backfill(root, symbols, hours, end, env, client_env) -> StepResult:
    fake = exchange(symbols, hours, end)
    try:
        env = {**env, **client_env(fake.url)}
        env["CANDLECAST_COINBASE_REQUESTS_PER_SECOND"] = f"{RATE}"
        env["CANDLECAST_COINBASE_MAX_ATTEMPTS"] = "8"
        result = run_step("backfill", root, symbols, hours, env)
        result.info["throttled_429"] = fake.throttled
        return result
    finally:
        fake.stop()


def _redis_step(root: Path, symbols: list[str], hours: int, env: dict) -> StepResult:
    from tests.integration.features.redis_server import RedisServer

    server = RedisServer(root).start()
    try:
        env = {**env, "CANDLECAST_STORE_PROFILE": "scale", "CANDLECAST_REDIS_URL": server.url}
        env["CANDLECAST_SCALE_RAY"] = "false"  # Redis alone, as before (the Ray engine's own
        # cost is in README "Ray": seconds per view on 2 cores)
        result = run_step("materialize-redis", root, symbols, hours, env)
        result.info["redis_used_memory_peak_mb"] = _redis_peak_mb(server.port)
        return result
    finally:
        server.kill()


def _redis_peak_mb(port: int) -> float:
    import redis

    info = redis.Redis(host="127.0.0.1", port=port).info("memory")
    return round(info["used_memory_peak"] / 2**20, 2)


def _row(r: StepResult) -> str:
    extra = ", ".join(f"{k} {_num(v)}" for k, v in r.info.items())
    return (
        f"| {r.step:<18} | {r.seconds:9.2f} | {r.process_seconds:9.2f} | {r.peak_mb:8.0f} | "
        f"{extra} |"
    )


def _num(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def print_budget(sizes: list[int], hours: int) -> None:
    """Requests of the backfill, the rate used, and what Coinbase's own limit implies."""
    pages = -(-hours // 300)
    for count in sizes:
        n = count * pages
        print(
            f"backfill budget S={count}: {n:,} requests ({pages} pages of <= 300 h per symbol); "
            f"at the bench's {RATE:g}/s >= {n / RATE:,.0f} s; at Coinbase's public "
            f"{COINBASE_RATE:g}/s (burst {COINBASE_BURST:g}) >= {n / COINBASE_RATE:,.0f} s; "
            f"at the client's default {CLIENT_DEFAULT_RATE:g}/s >= {n / CLIENT_DEFAULT_RATE:,.0f} s"
        )


def print_train_ratio(count: int, results: list[StepResult]) -> None:
    """Serial against Ray fit-and-register time for the same units, same run."""
    by = {r.step: r for r in results}
    if "train" not in by or "train-ray" not in by:
        return
    serial, ray = by["train"], by["train-ray"]
    print(
        f"  S={count} train lasso: serial {serial.seconds:.1f} s, Ray {ray.seconds:.1f} s on "
        f"{ray.info.get('ray_cpus')} CPUs (+{ray.info.get('ray_init_s', 0):.1f} s cluster "
        f"start): serial/Ray {serial.seconds / ray.seconds:.2f}x"
    )


def print_growth(runs: dict[int, list[StepResult]]) -> None:
    """The smallest-to-largest ratio per step, time and peak memory, against linear."""
    small, large = min(runs), max(runs)
    linear = large / small
    print(f"\ngrowth S={small} -> S={large} (linear: {linear:g}x), same run")
    print("| step               | time x  | time/sym x | peak RSS x | peak RSS above baseline x |")
    print("|--------------------|---------|------------|------------|---------------------------|")
    base = {s: next(r.peak_mb for r in runs[s] if r.step == "baseline") for s in runs}
    for a, b in zip(runs[small], runs[large], strict=True):
        t = b.seconds / a.seconds
        extra_a, extra_b = a.peak_mb - base[small], b.peak_mb - base[large]
        above = f"{extra_b / extra_a:.2f}" if extra_a > 50 else "-"  # not noise over the floor
        flag = "  <- faster than linear" if t > linear * 1.2 and a.step != "baseline" else ""
        print(
            f"| {a.step:<18} | {t:7.2f} | {t / linear:10.2f} | {b.peak_mb / a.peak_mb:10.2f} | "
            f"{above:>25} |{flag}"
        )
    for a, b in zip(runs[small], runs[large], strict=True):
        ratios = [
            f"{k} {b.info[k] / a.info[k]:.2f}x"
            for k, v in a.info.items()
            if isinstance(v, int | float) and v and isinstance(b.info.get(k), int | float)
        ]
        if ratios:
            print(f"  {a.step} figures S={large}/S={small}: " + ", ".join(ratios))


def save_runs(runs: dict[int, list[StepResult]], path: Path) -> None:
    """Write the runs as JSON (``BENCH_SCALE_SAVE``), for a later run to compare against."""
    data = {str(count): [asdict(r) for r in results] for count, results in runs.items()}
    path.write_text(json.dumps({"load_after": _load(), "runs": data}, indent=1))


def load_runs(path: Path) -> dict[int, list[StepResult]]:
    """Runs saved by :func:`save_runs` (``BENCH_SCALE_COMPARE``)."""
    data = json.loads(path.read_text())["runs"]
    return {int(count): [StepResult(**r) for r in results] for count, results in data.items()}


def main() -> dict[int, list[StepResult]]:
    from bench.serving import cpu_model

    print(f"cpu: {cpu_model()}; cores: {os.cpu_count()}; load avg before: {_load()}")
    print(
        f"sizes S={SIZES} x {HOURS:,} h; train: lasso, last {TRAIN_DAYS} d, walk-forward "
        f"{EVAL_DAYS} d, serial and on Ray; "
        f"serve: {REQUESTS} GET /predict, a random symbol each"
    )
    print_budget(SIZES, HOURS)
    print("step time = inside the step's child (imports excluded); process = its whole wall;")
    print("peak RSS = the step child's own VmHWM or its largest reaped descendant, MB")
    runs = {}
    for count in SIZES:
        started = time.perf_counter()
        print(f"\nS={count} symbols x {HOURS:,} h")
        print("  | step               |    step s | process s |  peak MB | figures |")
        runs[count] = run_size(count, HOURS, STEPS_RUN)
        print_train_ratio(count, runs[count])
        print(f"  S={count} total {time.perf_counter() - started:,.0f} s; load avg {_load()}")
    if os.environ.get("BENCH_SCALE_SAVE"):
        save_runs(runs, Path(os.environ["BENCH_SCALE_SAVE"]))
    if len(runs) > 1:
        print_growth(runs)
    if os.environ.get("BENCH_SCALE_COMPARE"):
        earlier = load_runs(Path(os.environ["BENCH_SCALE_COMPARE"]))
        print(f"\nagainst the earlier run's S={sorted(earlier)} (not the same run):")
        print_growth({**runs, **earlier})  # the earlier run's sizes replace this run's
    print(f"load avg after: {_load()}")
    return runs


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--step", choices=sorted(STEP_FUNCTIONS))
    parser.add_argument("--symbols", default="")
    parser.add_argument("--hours", type=int, default=HOURS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(None)
    if args.step:
        child(args.step, args.symbols.split(","), args.hours)
    else:
        main()
