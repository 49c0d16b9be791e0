"""``python -m training`` end to end on the real BTC data through Feast.

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

from training.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.data]
START = "2024-06-17"  # two weekly folds
LAST_WEEK = "2024-06-24"  # one fold, for train


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


def test_backtest_writes_json_and_plots(btc_feature_home, btc_csv, tmp_path) -> None:
    out_json, reports = tmp_path / "bt.json", tmp_path / "reports"
    args = ["backtest", "--symbol", "BTC-USD", "--test-start", START, "--models", "lasso,cnn"]
    args += ["--max-epochs", "2", "--json", str(out_json), "--reports-dir", str(reports)]
    done = run(args, btc_feature_home, tmp_path / "bentoml")
    assert done.returncode == 0, done.stderr
    payload = json.loads(out_json.read_text())
    assert payload["feature_service"] == "price_model_v2" and payload["target"] == "return"
    assert payload["folds"] == 2
    keys = {"mae", "rmse", "mape", "directional_accuracy", "mae_ratio_vs_persistence", "n"}
    for entry in [*payload["models"].values(), payload["persistence"]]:
        assert keys <= set(entry)
        assert entry["n"] == 14 * 24
    # persistence MAE recomputed straight from the CSV: |close(t+1) - close(t)| over the period
    raw = pd.read_csv(btc_csv)
    closes = pd.Series(
        raw["close"].to_numpy(), pd.to_datetime(raw["time"] + 3600, unit="s", utc=True)
    )
    window = closes[(closes.index >= START) & (closes.index < "2024-07-01")]
    nxt = closes.shift(-1).loc[window.index]
    assert payload["persistence"]["mae"] == pytest.approx(np.mean(np.abs(nxt - window)))
    names = sorted(p.name for p in reports.glob("*.png"))
    assert names == [
        "btc-usd_price_model_v2_return_cnn_loss.png",
        "btc-usd_price_model_v2_return_errors.png",
        "btc-usd_price_model_v2_return_predictions.png",
    ]
    assert all((reports / n).stat().st_size > 10_000 for n in names)


def test_train_registers_first_versions_as_champions_lists_and_exports(
    btc_feature_home, tmp_path
) -> None:
    bentoml_home = tmp_path / "bentoml"
    args = ["train", "--symbol", "btc-usd", "--models", "lasso,cnn", "--test-start", LAST_WEEK]
    done = run([*args, "--max-epochs", "2"], btc_feature_home, bentoml_home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("-> champion (first registered version") == 2
    listed = run(["models", "--symbol", "BTC-USD"], btc_feature_home, bentoml_home)
    assert listed.stdout.count("candlecast-lasso-btc-usd:") == 1
    assert listed.stdout.count("candlecast-cnn-btc-usd:") == 1
    assert listed.stdout.count("│ champion") == 2
    target = tmp_path / "cnn.bentomodel"
    exported = run(["export", "candlecast-cnn-btc-usd:latest", str(target)], btc_feature_home,
                   bentoml_home)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert target.stat().st_size < 12_000_000  # ~2.2M float32 weights, no Adam slots


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
def test_bad_input_exits_2_with_a_message(btc_feature_home, args, needle) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
