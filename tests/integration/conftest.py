"""Integration fixtures: a home with the real BTC candles, features and Feast stores ready."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from candlecast.settings import reset_settings

BTC = "BTC-USD"


def build_feature_home(root: Path, csv: Path, symbol: str = BTC) -> Path:
    """Load ``csv`` into a fresh home at ``root``, compute features, apply and materialize.

    The caller must have pointed CANDLECAST_HOME at ``root`` and reset the settings.
    """
    from candlecast import feast_store
    from candlecast.settings import get_settings
    from ingestion.csv_import import load_csv
    from ingestion.feature_jobs import compute_job, materialize_all
    from ingestion.store import CandleStore

    load_csv(CandleStore(get_settings().candles_dir), csv, symbol)
    compute_job([symbol])
    feast_store.apply()
    materialize_all([symbol])
    return root


@pytest.fixture(scope="session")
def btc_feature_home(tmp_path_factory: pytest.TempPathFactory, btc_csv: Path) -> Iterator[Path]:
    """CANDLECAST_HOME with the real 2024 H1 BTC-USD candles, features, Feast applied and
    materialized (offline and online agree). Set for the session; settings are reset.

    Tests must not write into it; take a function-scoped ``home`` for that.
    """
    root = tmp_path_factory.mktemp("btc-feature-home")
    previous = os.environ.get("CANDLECAST_HOME")
    os.environ["CANDLECAST_HOME"] = str(root)
    reset_settings()
    try:
        yield build_feature_home(root, btc_csv)
    finally:
        if previous is None:
            os.environ.pop("CANDLECAST_HOME", None)
        else:
            os.environ["CANDLECAST_HOME"] = previous
        reset_settings()
