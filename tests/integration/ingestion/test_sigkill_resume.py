"""A backfill killed with SIGKILL part-way loses nothing stored; a rerun completes exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore
from tests.fakes.coinbase import FakeCoinbase, client_env

pytestmark = pytest.mark.integration
END = pd.Timestamp("2024-06-01", tz="UTC")
HOURS = 4500  # 15 pages of 300


def backfill_command() -> list[str]:
    start = (END - pd.Timedelta(hours=HOURS)).isoformat()
    return [sys.executable, "-m", "ingestion", "backfill", "--symbol", "BTC-USD",
            "--start", start, "--end", END.isoformat()]  # fmt: skip


def wait_for_requests(fake: FakeCoinbase, proc: subprocess.Popen, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(fake.requests) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "backfill made no progress"
        time.sleep(0.01)


def test_sigkill_mid_backfill_then_rerun_matches_the_exchange_row_for_row(home):
    exchange = synthetic_candles("BTC-USD", HOURS, seed=3, end=END).drop(index=[5, 1000, 1001])
    store = CandleStore(home / "candles")
    with FakeCoinbase() as fake:
        fake.set_candles("BTC-USD", exchange)
        fake.delay = 0.2  # slow exchange: the kill lands mid-run
        env = {**os.environ, **client_env(fake.url), "CANDLECAST_HOME": str(home)}
        proc = subprocess.Popen(backfill_command(), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
        wait_for_requests(fake, proc, 6)  # pages 1-5 answered, 6th in flight
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL

        partial = store.read("BTC-USD")
        served = fake.candles("BTC-USD")
        assert 0 < len(partial) < len(served)
        prefix = served[served["time"] <= partial["time"].max()].reset_index(drop=True)
        pd.testing.assert_frame_equal(partial, prefix)  # whole pages, no torn or extra rows

        fake.delay = 0.0
        rerun = subprocess.run(backfill_command(), env=env, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        pd.testing.assert_frame_equal(store.read("BTC-USD"), served)
        assert not list(store.symbol_dir("BTC-USD").glob("*.tmp"))  # orphans cleaned
        summary = next(line for line in rerun.stdout.splitlines() if "│ BTC-USD" in line)
        cells = [cell.strip() for cell in summary.strip("│").split("│")]
        assert cells[3:6] == [str(len(served)), str(len(served) - len(partial)), str(len(partial))]
