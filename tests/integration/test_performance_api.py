"""GET /performance and the live gauges on /metrics of a real ``bentoml serve``.

A home of its own (no features: only the prediction log is read) serving a tiny
lasso champion of PERF-USD. Scored forecasts of that version and of persistence
are written into the home's prediction log before the server starts; both
``/performance`` and the gauges must show exactly what
``candlecast.performance.report`` computes here, in-process.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from deploy.serve import free_port, serve_in_background
from tests.fakes.homes import candlecast_home
from tests.fakes.serving import register_lasso

pytestmark = pytest.mark.integration
SYMBOL = "PERF-USD"
GAUGES = {
    "candlecast_live_mae": "mae",
    "candlecast_live_persistence_mae": "persistence_mae",
    "candlecast_live_mae_ratio": "mae_ratio_vs_persistence",
    "candlecast_live_directional_accuracy": "directional_accuracy",
    "candlecast_live_n": "n",
}

#: A drift report of the lasso version as ``candlecast.drift`` saves it (the figures only).
DRIFT = {
    "verdict": "major",
    "max_psi": 0.42,
    "ks_rejected_share": 0.25,
    "errors": {"ks_pvalue": 0.003},
}


def forecasts(tag: str) -> list[dict]:
    """Hourly forecasts of the last day (scored but the latest two) and three from 3 days ago."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = []
    for k in [*range(2, 22), *range(72, 75)]:
        as_of = hour - timedelta(hours=k)
        current = 60_000.0 + 37.0 * math.sin(k)
        actual = None if k < 4 else current + 55.0 * math.cos(1.7 * k)
        for model, version, predicted in (
            ("lasso", tag, current + 21.0 * math.sin(0.9 * k)),
            ("naive", "naive", current),
        ):
            rows.append(
                {
                    "symbol": SYMBOL,
                    "model": model,
                    "model_version": version,
                    "feature_service": "price_model_v2",
                    "is_default": model == "lasso",
                    "issued_at": as_of + timedelta(minutes=2),
                    "as_of": as_of,
                    "current_price": current,
                    "predicted_price": predicted,
                    "actual_close": actual,
                }
            )
    return rows


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from candlecast.drift import save
    from candlecast.prediction_log import PredictionLog
    from candlecast.settings import get_settings

    with candlecast_home(tmp_path_factory.mktemp("performance-home")) as root:
        tag = register_lasso(SYMBOL, ratio=0.97)
        PredictionLog(get_settings().predictions_dir).append(forecasts(tag))
        save([DRIFT | {"symbol": SYMBOL, "model": "lasso", "model_version": tag}])
        env = {
            "CANDLECAST_SERVE_SYMBOLS": SYMBOL,
            "CANDLECAST_SERVE_FAMILIES": "lasso",
            "CANDLECAST_METRICS_SECONDS": "1",
        }
        with serve_in_background(free_port(), env=env) as client:
            yield client, tag, root


def report(window: str, symbol: str | None = SYMBOL) -> list[dict]:
    """What ``candlecast performance`` computes, as JSON would carry it."""
    from candlecast.performance import report

    return json.loads(json.dumps(report(symbol, window)))


def scrape(client) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of every candlecast sample on /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.session.get(f"{client.base_url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("candlecast_")
    }


def gauges_of(row: dict) -> dict[tuple[str, tuple], float]:
    """The samples /metrics must show for one performance row."""
    labels = {k: row[k] for k in ("symbol", "model", "model_version", "window")}
    key = tuple(sorted(labels.items()))
    return {(name, key): row[field] for name, field in GAUGES.items()}


def same(value: float, expected: float | None) -> bool:
    if expected is None:
        return math.isnan(value)
    return value == pytest.approx(expected, rel=1e-12)


def test_gauges_show_the_live_figures_without_anyone_asking_for_performance(served):
    client, tag, _ = served
    expected = {
        k: v
        for window in ("24h", "7d")
        for row in report(window)
        for k, v in gauges_of(row).items()
    }
    assert len(expected) == 2 * 2 * len(GAUGES)  # lasso and naive, in both windows
    deadline, seen = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        seen = scrape(client)
        if all(k in seen and same(seen[k], v) for k, v in expected.items()):
            break
        time.sleep(0.5)
    assert {k: seen.get(k) for k in expected} == pytest.approx(
        {k: math.nan if v is None else v for k, v in expected.items()}, nan_ok=True
    )
    info = (
        "candlecast_model_info",
        (("model", "lasso"), ("model_version", tag), ("symbol", SYMBOL)),
    )
    assert seen[info] == 1.0


@pytest.mark.parametrize("window", ["24h", "7d", "all"])
def test_performance_answers_the_reports_rows(served, window):
    client, tag, _ = served
    r = client.session.get(
        f"{client.base_url}/performance", params={"symbol": SYMBOL, "window": window}, timeout=30
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["window"] == window and body["rows"] == report(window)
    lasso = next(row for row in body["rows"] if row["model"] == "lasso")
    assert lasso["model_version"] == tag and lasso["n"] == (18 if window == "24h" else 21)
    assert lasso["unscored"] == 2


def test_performance_of_every_symbol_and_the_gauges_it_sets(served):
    client, _, _ = served
    r = client.session.get(f"{client.base_url}/performance", timeout=30)  # 7d, every symbol
    assert r.status_code == 200 and r.json() == {"window": "7d", "rows": report("7d", None)}
    seen = scrape(client)
    for row in report("7d"):
        assert all(same(seen[k], v) for k, v in gauges_of(row).items())


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"window": "1y"}, 400, "unknown_window"),
        ({"symbol": "DOGE-USD"}, 404, "unknown_symbol"),
    ],
)
def test_bad_requests_are_json_errors(served, params, status, error):
    client, _, _ = served
    r = client.session.get(f"{client.base_url}/performance", params=params, timeout=30)
    assert r.status_code == status and r.json()["error"] == error
    assert r.json()["message"]


def test_a_corrupt_log_file_is_a_503_naming_it(served):
    client, _, root = served
    broken = root / "predictions" / SYMBOL / "2020-01.parquet"
    broken.write_bytes(b"not a parquet file")
    try:
        r = client.session.get(
            f"{client.base_url}/performance", params={"symbol": SYMBOL}, timeout=30
        )
    finally:
        broken.unlink()
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "service_unavailable" and body["file"] == str(broken)
    assert str(broken) in body["message"]


def test_drift_is_in_performance_and_on_metrics(served):
    client, tag, _ = served
    rows = client.session.get(f"{client.base_url}/performance", timeout=10).json()["rows"]
    lasso = next(r for r in rows if r["model"] == "lasso")
    assert lasso["drift"]["max_psi"] == 0.42
    labels = (("model", "lasso"), ("model_version", tag), ("symbol", SYMBOL))
    seen = scrape(client)
    assert seen[("candlecast_drift_max_psi", labels)] == 0.42
    assert seen[("candlecast_drift_ks_rejected_share", labels)] == 0.25
    assert seen[("candlecast_drift_errors_ks_pvalue", labels)] == 0.003
    assert seen[("candlecast_drift_level", labels)] == 2.0  # major
