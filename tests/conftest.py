"""Fixtures shared by every test: an isolated CANDLECAST_HOME and the real data path."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from candlecast.settings import PROJECT_ROOT, get_settings, reset_settings

pytest_plugins = ["tests.fakes.coinbase"]

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
BTC_CSV = SHARED_DATA / "coinbase_BTC-USD_3600_2024-01-01_2024-07-01.csv"


def pytest_configure(config: pytest.Config) -> None:
    """Point BentoML and Feast at throwaway state before either is imported.

    BentoML reads BENTOML_HOME once, at import, so it must be set here rather
    than per test; tests that need an empty model store use their own
    subprocess or a unique model name.
    """
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="candlecast-bentoml-")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


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


@pytest.fixture
def settings(home: Path):
    return get_settings()
