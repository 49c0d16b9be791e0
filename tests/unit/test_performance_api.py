"""GET /performance's request logic and the gauges it sets, with an injected report.

The real report on a real log, through a real server, is
tests/integration/test_performance_api.py.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from bentos.errors import ServiceUnavailable, UnknownSymbol, UnknownWindow
from bentos.gauges import Gauges
from bentos.live import LivePerformance
from candlecast.errors import CorruptFileError
from tests.fakes.serving import spec

SYMBOL = "GAUGE-USD"


def row(version: str, mae: float | None, n: int = 10, window: str = "7d", **extra) -> dict:
    """A performance row; with n 0 its figures are unknown (None), as the report has them."""
    return {
        "symbol": SYMBOL,
        "model": "lasso",
        "model_version": version,
        "window": window,
        "n": n,
        "mae": mae,
        "persistence_mae": None if mae is None else 2 * mae,
        "mae_ratio_vs_persistence": None if mae is None else 0.5,
        "directional_accuracy": None if n == 0 else 0.6,
        **extra,
    }


class Reports:
    """Answers each (symbol, window) with the rows set for the window; records the calls."""

    def __init__(self, rows: dict[str, list[dict]]) -> None:
        self.rows, self.calls = rows, []

    def __call__(self, symbol: str | None, window: str) -> list[dict]:
        self.calls.append((symbol, window))
        return self.rows.get(window, [])


def sample(name: str, version: str, window: str = "7d") -> float | None:
    from prometheus_client import REGISTRY

    labels = {"symbol": SYMBOL, "model": "lasso", "model_version": version, "window": window}
    return REGISTRY.get_sample_value(name, labels)


def answer(live: LivePerformance, symbol=SYMBOL, window="7d") -> dict:
    return asyncio.run(live.answer(symbol, window))


def test_rows_pass_through_untouched_and_set_the_gauges():
    drift = {"psi": 0.12, "features": ["rsi_14"]}
    reports = Reports({"7d": [row("lasso:v1", 100.0, drift=drift)]})
    live = LivePerformance([SYMBOL], Gauges(), reports)
    body = answer(live, symbol=SYMBOL.lower(), window="7d")
    assert body == {"window": "7d", "rows": reports.rows["7d"]}
    assert body["rows"][0]["drift"] == drift
    assert reports.calls == [(SYMBOL, "7d")]
    assert sample("candlecast_live_mae", "lasso:v1") == 100.0
    assert sample("candlecast_live_persistence_mae", "lasso:v1") == 200.0
    assert sample("candlecast_live_mae_ratio", "lasso:v1") == 0.5
    assert sample("candlecast_live_directional_accuracy", "lasso:v1") == 0.6
    assert sample("candlecast_live_n", "lasso:v1") == 10


def test_unknown_figures_and_versions_gone_from_the_window_are_nan():
    gauges = Gauges()
    unknown = row("lasso:v3", None, n=0, window="24h")  # its hours are not scored yet
    reports = Reports({"24h": [row("lasso:v2", 50.0, window="24h"), unknown]})
    live = LivePerformance([SYMBOL], gauges, reports)
    answer(live, window="24h")
    assert sample("candlecast_live_mae", "lasso:v2", "24h") == 50.0
    assert math.isnan(sample("candlecast_live_mae", "lasso:v3", "24h"))
    assert sample("candlecast_live_n", "lasso:v3", "24h") == 0
    reports.rows["24h"] = [row("lasso:v3", 70.0, window="24h")]
    asyncio.run(live.refresh())  # the periodic update: every gauged window, every symbol
    assert math.isnan(sample("candlecast_live_mae", "lasso:v2", "24h"))
    assert sample("candlecast_live_mae", "lasso:v3", "24h") == 70.0
    assert set(reports.calls[1:]) == {(None, "24h"), (None, "7d")}


def test_windows_without_gauges_are_answered_but_not_gauged():
    reports = Reports({"30d": [row("lasso:v4", 80.0, window="30d")]})
    live = LivePerformance([SYMBOL], Gauges(), reports)
    assert answer(live, window="30d")["rows"][0]["mae"] == 80.0
    assert sample("candlecast_live_mae", "lasso:v4", "30d") is None


def test_every_symbol_when_none_is_given():
    reports = Reports({})
    assert answer(LivePerformance([SYMBOL], None, reports), symbol="") == {
        "window": "7d",
        "rows": [],
    }
    assert reports.calls == [(None, "7d")]


def test_an_unknown_window_is_a_400_listing_the_windows():
    with pytest.raises(UnknownWindow) as err:
        answer(LivePerformance([SYMBOL], None, Reports({})), window="1y")
    assert err.value.status == 400
    assert err.value.to_body()["choices"] == ["24h", "7d", "30d", "all"]


def test_an_unknown_symbol_is_a_404_like_predict():
    with pytest.raises(UnknownSymbol) as err:
        answer(LivePerformance([SYMBOL], None, Reports({})), symbol="DOGE-USD")
    assert err.value.status == 404 and err.value.to_body()["known_symbols"] == [SYMBOL]


def test_a_corrupt_log_file_is_a_503_naming_it():
    path = Path("/home/predictions/GAUGE-USD/2024-06.parquet")

    def corrupt(symbol, window):
        raise CorruptFileError(path, "bad magic bytes", "move it out")

    with pytest.raises(ServiceUnavailable, match=r"2024-06\.parquet is corrupt") as err:
        answer(LivePerformance([SYMBOL], None, corrupt))
    assert err.value.status == 503 and err.value.to_body()["file"] == str(path)


def test_model_info_marks_the_served_version_and_unmarks_the_replaced_one():
    from prometheus_client import REGISTRY

    gauges = Gauges()
    old, new = (
        spec("lasso", SYMBOL, 0.9, version="lasso:old"),
        spec("lasso", SYMBOL, 0.8, version="lasso:new"),
    )
    gauges.served({"lasso": {SYMBOL: old}})
    gauges.served({"lasso": {SYMBOL: new}})

    def info(version: str) -> float | None:
        labels = {"symbol": SYMBOL, "model": "lasso", "model_version": version}
        return REGISTRY.get_sample_value("candlecast_model_info", labels)

    assert (info("lasso:old"), info("lasso:new")) == (0.0, 1.0)
