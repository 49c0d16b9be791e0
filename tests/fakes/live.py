"""Running ``candlecast live`` as its own process against the fake exchange.

Each run gets its own CANDLECAST_HOME and BENTOML_HOME (the test session's model
store is shared by other tests), the fake Coinbase's URL, and tiny Keras budgets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from candlecast.times import HOUR
from tests.fakes.coinbase import FakeCoinbase, client_env


def live_env(home: Path, fake: FakeCoinbase, families: str = "lasso,cnn") -> dict[str, str]:
    return {
        **os.environ,
        **client_env(fake.url),
        "CANDLECAST_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "CANDLECAST_SERVE_FAMILIES": families,
        "CANDLECAST_THREADS": "1",
    }


def live_command(*args: str) -> list[str]:
    """``candlecast live`` with the small training budget the tests use."""
    budget = ["--history-days", "30", "--eval-days", "7", "--max-epochs", "3", "--no-drift"]
    return [sys.executable, "-m", "candlecast", "live", *budget, *args]


def replay(
    env: dict[str, str], start: pd.Timestamp, end: pd.Timestamp, *extra: str, timeout=900
) -> subprocess.CompletedProcess:
    cmd = live_command("--replay", start.isoformat(), end.isoformat(), *extra)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def close_of(candles: pd.DataFrame) -> pd.Series:
    """Close price by close time (the candle opening at t closes at t + 1 h)."""
    return pd.Series(candles["close"].to_numpy(), index=candles["time"] + HOUR)
