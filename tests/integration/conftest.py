"""Integration fixtures: homes with a market's candles, features and Feast stores ready.

``feature_home`` yields each market's home in turn (the synthetic gapped market always,
the real BTC data under the ``data`` marker) with CANDLECAST_HOME pointing at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MARKETS, Market
from tests.fakes.homes import candlecast_home

BTC = "BTC-USD"


@dataclass(frozen=True, eq=False)
class FeatureHome:
    """A built CANDLECAST_HOME (``root``) and the market whose candles it holds."""

    market: Market
    root: Path


def build_feature_home(root: Path, csv: Path, symbol: str = BTC) -> Path:
    """Load ``csv`` into a fresh home at ``root``, compute features, apply and materialize.

    The caller must have pointed CANDLECAST_HOME at ``root`` and reset the settings.
    """
    from candlecast.settings import get_settings
    from ingestion.csv_import import load_csv
    from ingestion.feature_jobs import publish
    from ingestion.store import CandleStore

    load_csv(CandleStore(get_settings().candles_dir), csv, symbol)
    publish([symbol])
    return root


def _built(tmp_path_factory: pytest.TempPathFactory, market: Market) -> FeatureHome:
    root = tmp_path_factory.mktemp(f"{market.name}-feature-home")
    with candlecast_home(root):
        build_feature_home(root, market.csv)
    return FeatureHome(market, root)


@pytest.fixture(scope="session")
def synthetic_feature_home(
    tmp_path_factory: pytest.TempPathFactory, synthetic_market: Market
) -> FeatureHome:
    return _built(tmp_path_factory, synthetic_market)


@pytest.fixture(scope="session")
def real_feature_home(tmp_path_factory: pytest.TempPathFactory, real_market: Market) -> FeatureHome:
    return _built(tmp_path_factory, real_market)


@pytest.fixture(scope="module", params=MARKETS)
def feature_home(request: pytest.FixtureRequest) -> Iterator[FeatureHome]:
    """Each market's home (candles loaded by ``load-csv``, features published offline and
    online), set as CANDLECAST_HOME for the module. Built once per session.

    Tests must not write into it; take a function-scoped ``home`` for that.
    """
    yield from _feature_home(request)


#: The real market run only with ``make test-slow`` (a module opts in by overriding
#: ``feature_home`` with this): where the synthetic market already covers the same path
#: and the real one only costs minutes of training.
SLOW_ON_REAL = ["synthetic", pytest.param("real", marks=[pytest.mark.data, pytest.mark.slow])]


def _feature_home(request: pytest.FixtureRequest) -> Iterator[FeatureHome]:
    built: FeatureHome = request.getfixturevalue(f"{request.param}_feature_home")
    with candlecast_home(built.root):
        yield built
