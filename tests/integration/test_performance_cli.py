"""``candlecast performance`` through the real app: table, JSON, windows, errors.

The log is built from synthetic candles ending at the current hour and scored
against the real candle store. No forecast targets an hour within two hours of a
window's edge, so the windows hold the same rows whatever the minute the test runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from candlecast.cli import build_app
from candlecast.prediction_log import PredictionLog
from candlecast.settings import get_settings
from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore
from ingestion.validate import last_closed_end
from tests.fakes.predictions import forecast_rows, version_of

pytestmark = pytest.mark.integration
APP = build_app()
H = pd.Timedelta(hours=1)
EDGES = {"24h": pd.Timedelta(hours=24), "7d": pd.Timedelta(days=7), "30d": pd.Timedelta(days=30)}


def run(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(APP, ["performance", *args])


def log() -> PredictionLog:
    return PredictionLog(get_settings().predictions_dir)


def quiet(rows: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Drop forecasts whose target hour is within 2 h of now or of a window's start."""
    target = rows["as_of"] + H
    near = (target - now).abs() <= 2 * H
    for length in EDGES.values():
        near |= (target - (now - length)).abs() <= 2 * H
    return rows[~near]


@pytest.fixture
def logged(home: Path) -> dict[str, pd.DataFrame]:
    """45 days of BTC-USD (two hours with no candle) and ETH-USD forecasts, scored."""
    now = last_closed_end()
    store = CandleStore(get_settings().candles_dir)
    btc = synthetic_candles("BTC-USD", 45 * 24, seed=11)
    eth = synthetic_candles("ETH-USD", 45 * 24, seed=12, start_price=2_500.0)
    gaps = btc.index[[-100, -300]]  # 4 and 12 days ago
    store.write(pd.concat([btc.drop(index=gaps), eth]))
    rows = pd.concat([forecast_rows(btc), forecast_rows(eth, ("lasso", "cnn", "naive"), seed=1)])
    log().append(quiet(rows, now))
    result = log().score(store)
    assert len(result.missing) == 2
    return {"BTC-USD": btc.drop(index=gaps), "ETH-USD": eth}


def by_hand(candles: pd.DataFrame, model: str, length: pd.Timedelta | None) -> dict:
    """n, MAE and persistence MAE of ``model`` from the log's raw rows and the candles."""
    now = pd.Timestamp.now(tz="UTC")
    rows = log().read(candles["symbol"].iloc[0]).drop(columns="actual_close")
    rows = rows[(rows["model"] == model) & (rows["target_time"] <= now)]
    if length is not None:
        rows = rows[rows["target_time"] > now - length]
    closes = candles.assign(target_time=candles["time"] + H)[["target_time", "close"]]
    hand = rows.merge(closes, on="target_time")
    return {
        "n": len(hand),
        "unscored": len(rows) - len(hand),
        "mae": (hand["predicted_price"] - hand["close"]).abs().mean(),
        "persistence_mae": (hand["current_price"] - hand["close"]).abs().mean(),
    }


def table_rows(output: str) -> dict[tuple[str, str], list[str]]:
    """Cells of each table row, by (symbol, model)."""
    cells = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│ ") and "-USD" in line
    ]
    return {(c[0], c[1].rstrip(" *")): c for c in cells}


def test_table_shows_every_model_beside_persistence(logged):
    result = run()
    assert result.exit_code == 0, result.output
    assert "live performance, last 7d to" in result.output
    rows = table_rows(result.output)
    assert set(rows) == {
        ("BTC-USD", "lasso"),
        ("BTC-USD", "naive"),
        ("ETH-USD", "lasso"),
        ("ETH-USD", "cnn"),
        ("ETH-USD", "naive"),
    }
    for (symbol, model), cells in rows.items():
        hand = by_hand(logged[symbol], model, pd.Timedelta(days=7))
        assert cells[2] == version_of(model, symbol).rsplit(":", 1)[-1]  # v1, or naive
        assert cells[3] == str(hand["n"])
        assert cells[4] == f"{hand['mae']:,.2f}"
        assert cells[5] == f"{hand['persistence_mae']:,.2f}"
        assert cells[6] == f"{hand['mae'] / hand['persistence_mae']:.3f}"
        assert cells[-1] == str(hand["unscored"])
    assert rows[("BTC-USD", "naive")][6] == "1.000"
    assert rows[("BTC-USD", "lasso")][1] == "lasso *"  # the default model is marked
    assert rows[("BTC-USD", "lasso")][-1] == "1"  # the gap hour 4 days ago
    assert "ratio < 1 beats persistence" in result.output


@pytest.mark.parametrize("window", ["24h", "7d", "30d", "all"])
def test_json_figures_match_a_recomputation_per_window(logged, window):
    result = run("--window", window, "--json", "--symbol", "btc-usd")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {(r["symbol"], r["model"]) for r in rows} == {("BTC-USD", "lasso"), ("BTC-USD", "naive")}
    for r in rows:
        hand = by_hand(logged["BTC-USD"], r["model"], EDGES.get(window))
        assert r["window"] == window
        assert (r["n"], r["unscored"]) == (hand["n"], hand["unscored"])
        assert r["mae"] == pytest.approx(hand["mae"], rel=1e-12)
        assert r["persistence_mae"] == pytest.approx(hand["persistence_mae"], rel=1e-12)
        low, high = r["directional_accuracy_ci95"]
        assert 0 <= low <= r["directional_accuracy"] <= high <= 1
        assert pd.Timestamp(r["worst_target_time"]) > pd.Timestamp(r["first_target_time"]) - H
        assert r["worst_abs_error"] >= r["mae"]
    # the window's hours less the quiet ones: 3 at now, 5 at each earlier edge, 2 at its own
    counts = {"24h": 24 - 3 - 2, "7d": 168 - 3 - 5 - 2, "30d": 720 - 3 - 5 - 5 - 2}
    if window in counts:
        assert rows[0]["n"] + rows[0]["unscored"] == counts[window]


def test_windows_nest(logged):
    n = {}
    for window in ("24h", "7d", "30d", "all"):
        result = run("--window", window, "--json")
        assert result.exit_code == 0, result.output
        n[window] = sum(r["n"] for r in json.loads(result.stdout))
    assert 0 < n["24h"] < n["7d"] < n["30d"] < n["all"]


def test_unknown_window_exits_2_naming_the_choices(logged):
    result = run("--window", "5d")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.strip() == (
        "error: unknown window '5d': expected one of 24h, 7d, 30d, all"
    )


def test_empty_log_says_so(home):
    result = run()
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"no forecasts logged under {home / 'predictions'}"
    as_json = run("--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []


def test_no_forecast_in_the_window_says_so(home):
    old = synthetic_candles("BTC-USD", 48, seed=0, end=pd.Timestamp("2024-01-03", tz="UTC"))
    log().append(forecast_rows(old))
    result = run("--window", "24h")
    assert result.exit_code == 0, result.output
    assert "no forecasts with a target hour in the last 24h (try --window all)" in result.output
    cells = table_rows(run("--window", "all").output)[("BTC-USD", "lasso")]
    assert (cells[3], cells[4], cells[-1]) == ("0", "-", "48")  # nothing scored: no candles
    assert "no forecasts logged for ETH-USD under" in run("--symbol", "ETH-USD").output


def test_a_corrupt_log_file_is_one_error_line_and_nothing_changes(logged, home):
    bad = log().files("ETH-USD")[0]
    bad.write_bytes(bad.read_bytes()[:200])
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in home.rglob("*") if p.is_file()}
    for args in ([], ["--json"], ["--symbol", "ETH-USD", "--window", "all"]):
        result = run(*args)
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert str(bad) in lines[0] and "is corrupt or unreadable" in lines[0]
        assert "its forecasts cannot be re-issued" in lines[0]
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in home.rglob("*") if p.is_file()}
    assert after == before
    assert run("--symbol", "BTC-USD").exit_code == 0  # another symbol's files still read


def test_help_lists_the_windows():
    result = run("--help")
    assert result.exit_code == 0
    assert "24h, 7d, 30d or all" in result.output and "--json" in result.output
