"""Fixtures shared by every test: an isolated CANDLECAST_HOME and the markets tests run on.

The core guarantees (feature parity, point-in-time, serving, leakage, the training
CLI) run on two markets through the ``market`` fixture (and, in integration tests,
``feature_home``): a synthetic GARCH market with hand-made gaps, always, and the
real 2024 H1 BTC-USD candles in ../shared/data, marked ``data`` and skipped with a
reason when that folder is absent. ``CANDLECAST_SHARED_DATA`` points elsewhere
(e.g. ``/nonexistent`` to check what a repo-only checkout runs).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from candlecast.settings import PROJECT_ROOT, get_settings, reset_settings

pytest_plugins = ["tests.fakes.coinbase"]

SHARED_DATA = Path(
    os.environ.get("CANDLECAST_SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data"
)
BTC_CSV = SHARED_DATA / "coinbase_BTC-USD_3600_2024-01-01_2024-07-01.csv"
#: Params of every fixture that yields a market: the synthetic one always, the real one
#: only with ../shared/data (``-m "not data"`` deselects it).
MARKETS = ["synthetic", pytest.param("real", marks=pytest.mark.data)]
_BENTOML_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Point BentoML and Feast at throwaway state before either is imported.

    BentoML reads BENTOML_HOME once, at import, so it must be set here rather
    than per test; tests that need an empty model store use their own
    subprocess or a unique model name.
    """
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="candlecast-bentoml-")
    config.stash[_BENTOML_HOME] = os.environ["BENTOML_HOME"]
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("FEAST_USAGE", "False")
    # One API worker per test server: the default two double every server's start-up on
    # 2 cores; tests that need two workers ask for them (serve_in_background(api_workers=2)).
    os.environ.setdefault("CANDLECAST_API_WORKERS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's BentoML home: every run made one in /tmp, and none was ever removed."""
    if (path := config.stash.get(_BENTOML_HOME, None)) is not None:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty CANDLECAST_HOME for one test."""
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("CANDLECAST_HOME", str(root))
    reset_settings()
    yield root
    reset_settings()


@pytest.fixture(scope="session")
def btc_csv() -> Path:
    """The real 2024 H1 BTC-USD hourly candles, read by path from ../shared/data."""
    if not BTC_CSV.exists():
        pytest.skip(f"real data not found at {BTC_CSV} (../shared/data beside the project)")
    return BTC_CSV


@dataclass(frozen=True, eq=False)
class Market:
    """BTC-USD hourly candles as a Coinbase CSV and as parsed store rows (sorted by time)."""

    name: str  # "synthetic" or "real": the key of per-market constants in the tests
    csv: Path
    candles: pd.DataFrame

    @property
    def gaps(self) -> pd.DatetimeIndex:
        """Open times of the hours between the first and last candle that have no candle."""
        times = pd.DatetimeIndex(self.candles["time"])
        return pd.date_range(times.min(), times.max(), freq="h").difference(times)

    @property
    def last_close(self) -> pd.Timestamp:
        return self.candles["time"].max() + pd.Timedelta(hours=1)


@pytest.fixture(scope="session")
def synthetic_market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    """2,000 hours of the project's GARCH market ending 2024-07-01, with 11 hours missing."""
    from ingestion.csv_import import read_candle_csv
    from tests.fakes.training_data import gapped_market_candles, write_coinbase_csv

    path = tmp_path_factory.mktemp("synthetic-market") / "synthetic_BTC-USD_gapped.csv"
    write_coinbase_csv(gapped_market_candles(), path)
    market = Market("synthetic", path, read_candle_csv(path, "BTC-USD"))
    assert len(market.gaps) > 0  # the point of this market
    return market


@pytest.fixture(scope="session")
def real_market(btc_csv: Path) -> Market:
    from ingestion.csv_import import read_candle_csv

    return Market("real", btc_csv, read_candle_csv(btc_csv, "BTC-USD"))


@pytest.fixture(scope="module", params=MARKETS)
def market(request: pytest.FixtureRequest) -> Market:
    """Each market in turn: synthetic (always) and real (``data``)."""
    return request.getfixturevalue(f"{request.param}_market")


@pytest.fixture
def settings(home: Path):
    return get_settings()
