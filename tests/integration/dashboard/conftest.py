"""A living home served by a real ``bentoml serve``, and a real Chromium to look at it.

The home is made the way a user's is: ``candlecast live --replay`` runs the last 24
hours against the fake exchange (first champions trained, every hour fetched,
published, forecast, logged and scored). It serves
three symbols, one per state the page must handle:

* BTC-USD: fresh; its last candle closed within the hour before the replay's end.
* ETH-USD: stale; the exchange's ETH candles stop 8 hours earlier (and have gaps at
  other hours than BTC's), so its features are older than the 4 h threshold.
* SOL-USD: champions but no features at all (a symbol added before its first fetch).

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (Playwright's own
browser download is not reachable here); ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from candlecast.settings import PROJECT_ROOT
from candlecast.times import HOUR
from deploy.serve import free_port, serve_in_background
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.live import live_env

CHROMIUM = Path(os.environ.get("CANDLECAST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = PROJECT_ROOT / "reports" / "dashboard"
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
STALE_AFTER = 4 * 3600
REPLAY_HOURS = 12
ETH_LAG_HOURS = 8
#: Lasso only (and naive, always served): the page is the same for any family, and no
#: Keras training or TensorFlow start-up is spent on it.
FAMILIES = "lasso"


@dataclass(frozen=True)
class Served:
    """The served home, the API's base URL and the loop's environment."""

    home: Path
    url: str
    end: pd.Timestamp  # close time of the replay's last hour
    env: dict[str, str]

    def publish_next_hour(self) -> None:
        """One ``candlecast live --once`` cycle for BTC-USD (the exchange is hours ahead)."""
        cmd = [
            *(sys.executable, "-m", "candlecast", "live", "--once", "--symbol", "BTC-USD"),
            *("--retrain-every", "0", "--early-window", "0", "--no-drift", "--max-wait", "20"),
        ]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]


def market(symbol: str, seed: int, end: pd.Timestamp, price: float, gaps: list[int]):
    """40 days of the project's synthetic market ending at ``end``, with hours removed."""
    from ingestion.sample import synthetic_candles

    candles = synthetic_candles(symbol, 24 * 40, seed, end=end, start_price=price)
    return candles.drop(index=gaps).reset_index(drop=True)


def register_without_features(env: dict[str, str], symbol: str) -> None:
    """A tiny champion for ``symbol`` in the home's model store (its own process)."""
    code = (
        "from candlecast.feast_store import feature_names\n"
        "from tests.fakes.serving import register_lasso\n"
        "names = feature_names('price_model_v2')\n"
        f"register_lasso({symbol!r}, ratio=0.99, features=names)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    now = pd.Timestamp.now(tz="UTC").floor("h")
    end = now - pd.Timedelta(hours=1)  # the newest hour a replay may run
    home = tmp_path_factory.mktemp("dashboard") / "home"
    eth_end = now - pd.Timedelta(hours=ETH_LAG_HOURS)
    # BTC's exchange runs 3 h ahead of the replay, so a later `live --once` finds its hour.
    btc = market("BTC-USD", 7, now + 3 * HOUR, 40_000.0, [300, 640])
    with FakeCoinbase() as fake:
        fake.set_candles("BTC-USD", btc)
        fake.set_candles("ETH-USD", market("ETH-USD", 11, eth_end, 2_500.0, [150, 500, 700]))
        env = live_env(home, fake, families=FAMILIES)
        env["CANDLECAST_SERVE_SYMBOLS"] = "BTC-USD,ETH-USD"
        start = end - pd.Timedelta(hours=REPLAY_HOURS - 1)
        cmd = [
            *(sys.executable, "-m", "candlecast", "live", "--history-days", "30"),
            *("--eval-days", "7", "--max-epochs", "2", "--max-wait", "30"),
            *("--replay", start.isoformat(), end.isoformat()),
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        register_without_features(env, "SOL-USD")
        serve_env = {
            **env,
            "CANDLECAST_SERVE_SYMBOLS": ",".join(SYMBOLS),
            "CANDLECAST_STALE_AFTER_SECONDS": str(STALE_AFTER),
        }
        with serve_in_background(free_port(), env=serve_env) as client:
            yield Served(home, client.base_url, end, {**env, "CANDLECAST_SERVE_SYMBOLS": "BTC-USD"})


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def screenshot():
    """Save a page's screenshot as reports/dashboard/NAME.png (gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
