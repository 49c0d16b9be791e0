"""``python -m training`` end to end through Feast, on each market of ``feature_home``:
the synthetic gapped market (always) and the real BTC data (``data``).

``train``/``backtest`` run as subprocesses with their own BENTOML_HOME, so the
registry starts empty and the session's model store is untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import Market
from tests.integration.conftest import SLOW_ON_REAL, _feature_home
from training.cli import app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=SLOW_ON_REAL)
def feature_home(request):
    """Both markets, the real one in ``make test-slow`` only (training it costs ~1.5 min)."""
    yield from _feature_home(request)


START = "2024-06-17"  # two weekly folds (both markets end 2024-07-01)
LAST_WEEK = "2024-06-24"  # one fold, for train
END = "2024-07-01"


def scored_hours(market: Market, start: str, end: str) -> tuple[pd.Series, pd.Series]:
    """(close, next close) at each close time in [start, end) that a backtest can score.

    Derived from the candles alone: a row is scored when its candle and the 24 before it
    exist (complete lag features) and the next candle does (its label), so every row
    whose look-back or label touches a gap is out.
    """
    candles = market.candles
    closes = pd.Series(candles["close"].to_numpy(), pd.DatetimeIndex(candles["time"]))
    hour = pd.Timedelta(hours=1)
    first, stop = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    have = set(closes.index)
    opens = [
        o
        for o in closes.index
        if first <= o + hour < stop and all(o + k * hour in have for k in range(-24, 2))
    ]
    now = closes.loc[opens].set_axis(pd.DatetimeIndex(opens) + hour)
    nxt = closes.loc[[o + hour for o in opens]].set_axis(now.index)
    return now, nxt


def run(args: list[str], home: Path, bentoml_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CANDLECAST_HOME": str(home), "BENTOML_HOME": str(bentoml_home)}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_backtest_writes_json_and_plots(feature_home, tmp_path) -> None:
    market = feature_home.market
    out_json, reports = tmp_path / "bt.json", tmp_path / "reports"
    args = ["backtest", "--symbol", "BTC-USD", "--test-start", START, "--models", "lasso,cnn"]
    args += ["--max-epochs", "2", "--json", str(out_json), "--reports-dir", str(reports)]
    done = run(args, feature_home.root, tmp_path / "bentoml")
    assert done.returncode == 0, done.stderr
    payload = json.loads(out_json.read_text())
    assert payload["feature_service"] == "price_model_v2" and payload["target"] == "return"
    assert payload["folds"] == 2
    now, nxt = scored_hours(market, START, END)
    if market.name == "real":  # no gaps: every hour of the two weeks
        assert len(now) == 14 * 24
    else:  # gaps of 4 h and 1 h in the test weeks: each costs its own hours, the hour before
        # it (no label) and the 24 after it (their look-back reaches into the gap)
        assert len(now) == 14 * 24 - (4 + 1) - 2 * (1 + 24)
    keys = {"mae", "rmse", "mape", "directional_accuracy", "mae_ratio_vs_persistence", "n"}
    for entry in [*payload["models"].values(), payload["persistence"]]:
        assert keys <= set(entry)
        assert entry["n"] == len(now)
    # persistence MAE recomputed from the CSV: |close(t+1) - close(t)| over the scored hours
    if market.name == "real":  # straight from the raw file, as the reference figure is
        raw = pd.read_csv(market.csv)
        closes = pd.Series(
            raw["close"].to_numpy(), pd.to_datetime(raw["time"] + 3600, unit="s", utc=True)
        )
        window = closes[(closes.index >= START) & (closes.index < END)]
        raw_next = closes.shift(-1).loc[window.index]
        assert payload["persistence"]["mae"] == pytest.approx(np.mean(np.abs(raw_next - window)))
    assert payload["persistence"]["mae"] == pytest.approx(np.mean(np.abs(nxt - now)))
    names = sorted(p.name for p in reports.glob("*.png"))
    assert names == [
        "btc-usd_price_model_v2_return_cnn_loss.png",
        "btc-usd_price_model_v2_return_errors.png",
        "btc-usd_price_model_v2_return_predictions.png",
    ]
    assert all((reports / n).stat().st_size > 10_000 for n in names)


def test_train_registers_first_versions_as_champions_lists_exports_and_imports(
    feature_home, tmp_path
) -> None:
    home, bentoml_home = feature_home.root, tmp_path / "bentoml"
    args = ["train", "--symbol", "btc-usd", "--models", "lasso,cnn", "--test-start", LAST_WEEK]
    done = run([*args, "--max-epochs", "2"], home, bentoml_home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("-> champion (first registered version") == 2
    listed = run(["models", "--symbol", "BTC-USD"], home, bentoml_home)
    assert listed.stdout.count("candlecast-lasso-btc-usd:") == 1
    assert listed.stdout.count("candlecast-cnn-btc-usd:") == 1
    assert listed.stdout.count("│ champion") == 2
    target = tmp_path / "cnn.bentomodel"
    exported = run(["export", "candlecast-cnn-btc-usd:latest", str(target)], home, bentoml_home)
    assert exported.returncode == 0, exported.stderr
    assert target.stat().st_size < 12_000_000  # ~2.2M float32 weights, no Adam slots
    fresh = tmp_path / "imported-bentoml"  # another machine's empty model store
    imported = run(["import", str(target)], home, fresh)
    assert imported.returncode == 0, imported.stderr
    relisted = run(["models", "--symbol", "BTC-USD"], home, fresh)
    assert relisted.stdout.count("candlecast-cnn-btc-usd:") == 1
    assert "candlecast-lasso-btc-usd:" not in relisted.stdout
    assert relisted.stdout.count("│ champion") == 1  # the stage travels with the file


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["backtest", "--symbol", "ETH-USD", "--test-start", START], "candlecast backfill"),
        (["train", "--symbol", "BTC-USD", "--models", "svm"], "unknown model family"),
        (["train", "--symbol", "BTC-USD", "--target", "level"], "unknown target"),
        (["train", "--symbol", "BTC", "--models", "lasso"], "invalid symbol"),
        (["train", "--symbol", "BTC-USD", "-f", "price_model_v9"], "unknown feature service"),
    ],
)
def test_bad_input_exits_2_with_a_message(feature_home, args, needle) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
