"""bench.scale on tiny sizes: every step runs, is timed and measured, and serves every symbol.

The full run (every step in its own subprocess, a ``bentoml serve`` start among them)
takes a few minutes on 2 cores, so it is ``slow``; the growth table and the fake
exchange's rate limit are checked quickly.
"""

from __future__ import annotations

import json

import pytest

from bench import scale
from tests.fakes.coinbase import FakeCoinbase
from tests.integration.features.redis_server import require_redis_server

pytestmark = pytest.mark.integration
HOURS = 2000


@pytest.fixture(scope="module")
def tiny_run() -> list[scale.StepResult]:
    require_redis_server()
    return scale.run_size(2, HOURS)


@pytest.mark.slow
def test_every_step_is_timed_and_measured(tiny_run: list[scale.StepResult]) -> None:
    assert [r.step for r in tiny_run] == list(scale.STEPS)
    for result in tiny_run:
        assert result.seconds > 0, result
        assert result.process_seconds >= result.seconds, result
        assert result.peak_mb > 0, result


@pytest.mark.slow
def test_the_steps_did_their_work(tiny_run: list[scale.StepResult]) -> None:
    info = {r.step: r.info for r in tiny_run}
    pages = -(-HOURS // 300)
    assert info["backfill"]["requests"] >= 2 * pages
    assert info["backfill"]["candles"] == 2 * HOURS
    assert info["features"]["rows"] == 2 * HOURS
    assert info["materialize-sqlite"]["online_symbols"] == 2
    assert info["materialize-redis"]["online_symbols"] == 2
    assert info["materialize-redis"]["profile"] == "scale"
    for step, executor in (("train", "serial"), ("train-ray", "ray")):
        assert info[step]["executor"] == executor
        assert (info[step]["trained"], info[step]["failed"]) == (2, 0)
    assert info["train-ray"]["ray_cpus"] == 2
    serve = info["serve"]
    assert serve["served"] == 2  # a lasso prediction for every symbol
    assert 0 < serve["p50_ms"] <= serve["p99_ms"]


def test_growth_flags_a_step_faster_than_linear(capsys: pytest.CaptureFixture[str]) -> None:
    def run(train_seconds: float, count: int) -> list[scale.StepResult]:
        return [
            scale.StepResult("baseline", 1.0, 2.0, 100.0),
            scale.StepResult("features", 1.0 * count, 2.0, 100.0 + count, {"rows": count}),
            scale.StepResult("train", train_seconds, 2.0, 200.0),
        ]

    scale.print_growth({2: run(1.0, 2), 20: run(100.0, 20)})
    lines = {
        line.split("|")[1].strip(): line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| ") and not line.startswith("| step")
    }
    assert "faster than linear" in lines["train"]
    assert "faster than linear" not in lines["features"]


def test_fake_exchange_throttles_like_coinbase() -> None:
    fake = FakeCoinbase()
    fake.set_candles("BTC-USD", scale_candles())
    fake.limit_rate(1.0, burst=2)
    params = {"granularity": "3600"}
    statuses = [fake.respond("BTC-USD", params) for _ in range(3)]
    assert [s for s, _, _ in statuses] == [200, 200, 429]
    _, body, headers = statuses[2]
    assert float(headers["Retry-After"]) > 0
    assert "rate limit" in json.loads(body)["message"]
    assert fake.throttled == 1


def test_fake_exchange_is_unthrottled_by_default() -> None:
    fake = FakeCoinbase()
    fake.set_candles("BTC-USD", scale_candles())
    assert all(fake.respond("BTC-USD", {"granularity": "3600"})[0] == 200 for _ in range(50))
    assert fake.throttled == 0


def scale_candles():
    from ingestion.sample import synthetic_candles

    return synthetic_candles("BTC-USD", 48, seed=0)


def test_saved_runs_load_back_for_a_later_comparison(tmp_path) -> None:
    runs = {
        2: [
            scale.StepResult("baseline", 1.0, 2.0, 100.0),
            scale.StepResult("train", 2.0, 3.0, 5.0),
        ],
        20: [scale.StepResult("baseline", 1.0, 2.0, 99.0, {"windows": 1})],
    }
    path = tmp_path / "runs.json"
    scale.save_runs(runs, path)
    assert scale.load_runs(path) == runs
