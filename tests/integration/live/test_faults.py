"""The live loop under faults: an exchange outage, an hour never published, kill -9, two loops.

Each test runs ``candlecast live`` as its own process (lasso only, to stay quick)
against the fake exchange on 127.0.0.1.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pandas as pd
import pytest

from candlecast.prediction_log import PredictionLog
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.live import live_command, live_env, replay
from tests.fakes.training_data import gapped_market_candles

pytestmark = pytest.mark.integration


def hours(start: str, end: str) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"), freq="h")


def as_of(frame: pd.DataFrame, model: str) -> pd.DatetimeIndex:
    found = pd.DatetimeIndex(frame.loc[frame["model"] == model, "as_of"])
    return found.tz_convert("UTC").as_unit("ns")


def test_outage_is_caught_up_and_a_missing_hour_is_never_invented(tmp_path):
    """Down for the cycles of 10:00-12:00: the 13:00 cycle fetches and forecasts them.

    The exchange never publishes the candle closing at 18:00 (no trades in the
    fake's market): that hour is reported and has no forecast and no outcome.
    """
    home = tmp_path / "home"
    with FakeCoinbase() as fake:
        fake.set_candles("BTC-USD", gapped_market_candles())
        fake.outage(pd.Timestamp("2024-06-26T10:00Z"), pd.Timestamp("2024-06-26T13:00Z"))
        env = live_env(home, fake, families="lasso")
        start, end = pd.Timestamp("2024-06-26T08:00Z"), pd.Timestamp("2024-06-26T20:00Z")
        result = replay(env, start, end, "--max-wait", "120", "--retrain-every", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fetch failed" in result.stderr
    assert "no candle for the hour closing 2024-06-26 18:00" in result.stderr
    logged = PredictionLog(home / "predictions").read()
    assert (logged.groupby(["as_of", "model"]).size() == 1).all()
    expected = hours("2024-06-26T08:00", "2024-06-26T20:00").drop(pd.Timestamp("2024-06-26T18:00Z"))
    assert as_of(logged, "naive").equals(expected)
    # lasso needs complete windows: the hours after the gap have none (nulls), so no forecast.
    assert as_of(logged, "lasso").equals(hours("2024-06-26T08:00", "2024-06-26T17:00"))
    caught_up = logged[logged["as_of"].between("2024-06-26T10:00Z", "2024-06-26T12:00Z")]
    assert len(caught_up) == 6
    assert (caught_up["issued_at"] >= pd.Timestamp("2024-06-26T13:00Z")).all()
    assert logged.loc[logged["as_of"] < "2024-06-26T17:00Z", "actual_close"].notna().all()
    # The forecast for 18:00 has no actual: there was no candle, and none is invented.
    assert logged.loc[logged["target_time"] == "2024-06-26T18:00Z", "actual_close"].isna().all()


@pytest.mark.slow  # ~1 min: `make test-slow`
def test_kill_9_mid_replay_then_rerun_leaves_every_hour_once(tmp_path):
    home = tmp_path / "home"
    start, end = pd.Timestamp("2024-06-22T00:00Z"), pd.Timestamp("2024-06-23T00:00Z")
    with FakeCoinbase() as fake:
        fake.set_candles("BTC-USD", gapped_market_candles())
        env = live_env(home, fake, families="lasso")
        cmd = live_command("--replay", start.isoformat(), end.isoformat(), "--retrain-every", "6h")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        heartbeat = home / "live" / "heartbeat.json"
        deadline = time.monotonic() + 300
        while _replayed_to(heartbeat) < start + pd.Timedelta(hours=9):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the replay made no progress"
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the next cycle
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = _replayed_to(heartbeat)
        result = replay(env, start, end, "--retrain-every", "6h")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming the replay" in result.stderr
    logged = PredictionLog(home / "predictions").read()
    assert (logged.groupby(["as_of", "model"]).size() == 1).all()
    assert killed_at < end
    for model in ("lasso", "naive"):
        assert as_of(logged, model).equals(hours("2024-06-22T00:00", "2024-06-23T00:00"))
    assert logged.loc[logged["target_time"] <= end, "actual_close"].notna().all()
    assert (logged["model_trained_until"].fillna(start) <= logged["as_of"]).all()


def _replayed_to(heartbeat) -> pd.Timestamp:
    try:
        return pd.Timestamp(json.loads(heartbeat.read_text())["last_cycle"]["hour"])
    except (FileNotFoundError, KeyError, ValueError):
        return pd.Timestamp("1970-01-01", tz="UTC")


def test_a_second_loop_refuses_naming_the_pid_and_sigterm_stops_the_first(tmp_path):
    """SIGTERM interrupts the first loop's wait for a candle at once (--max-wait is 600 s)."""
    home = tmp_path / "home"
    with FakeCoinbase() as fake:
        env = live_env(home, fake, families="lasso")
        first = subprocess.Popen(
            live_command("--max-wait", "600"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        heartbeat = home / "live" / "heartbeat.json"
        deadline = time.monotonic() + 120
        while not heartbeat.exists():
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Its first cycle runs at once and polls the exchange (which has no BTC-USD) for long.
        assert json.loads(heartbeat.read_text())["state"] in ("cycle", "waiting")
        second = subprocess.run(live_command("--once"), env=env, capture_output=True, text=True)
        assert second.returncode == 1
        assert f"PID {first.pid}" in second.stderr and "live.lock" in second.stderr
        health = subprocess.run(live_command("--healthcheck"), env=env, capture_output=True)
        assert health.returncode == 0
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    assert json.loads(heartbeat.read_text())["state"] == "stopped"
    assert "live loop stopped after 1 cycles" in first.stderr.read()
    stale = subprocess.run(
        live_command("--healthcheck", "--max-age", "0"), env=env, capture_output=True, text=True
    )
    assert stale.returncode == 1 and "old" in stale.stderr


def test_a_corrupt_log_file_is_named_and_nothing_else_is_touched(tmp_path):
    home = tmp_path / "home"
    start = pd.Timestamp("2024-06-22T00:00Z")
    with FakeCoinbase() as fake:
        fake.set_candles("BTC-USD", gapped_market_candles())
        env = live_env(home, fake, families="lasso")
        first = replay(env, start, start + pd.Timedelta(hours=2), "--retrain-every", "0")
        assert first.returncode == 0, first.stderr[-3000:]
        month = home / "predictions" / "BTC-USD" / "2024-06.parquet"
        month.write_bytes(b"PAR1 torn by a disk fault")
        candles = {p: p.read_bytes() for p in (home / "candles").rglob("*.parquet")}
        again = replay(env, start, start + pd.Timedelta(hours=6), "--retrain-every", "0")
    assert again.returncode == 1
    said = again.stderr.replace("\n", "")
    assert "error:" in said and str(month) in said and "move it out" in said
    assert "Traceback" not in again.stderr
    assert month.read_bytes() == b"PAR1 torn by a disk fault"
    assert {p: p.read_bytes() for p in (home / "candles").rglob("*.parquet")} == candles
