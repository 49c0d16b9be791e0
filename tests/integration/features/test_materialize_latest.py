"""Materialize reads only the rows near each symbol's newest one, and ends where a
materialize of the whole history ends: the same online rows, bit for bit.

The home holds the synthetic market's feature history (BTC-USD) and a few symbols of one
or two rows scattered over that history (stale symbols, each its own window), so the
windows' grouping and their order are both exercised on real Feast, DuckDB and SQLite.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from candlecast import feast_store
from candlecast.settings import get_settings, reset_settings
from ingestion.feature_dataset import FeatureDataset
from ingestion.feature_jobs import materialize_all
from tests.integration.conftest import FeatureHome
from tests.integration.features.helpers import online

pytestmark = pytest.mark.integration
H = pd.Timedelta(hours=1)


@pytest.fixture
def mixed_home(home: Path, synthetic_feature_home: FeatureHome) -> list[str]:
    """BTC's whole history, two up-to-date copies of its last rows, and stale symbols."""
    shutil.copytree(synthetic_feature_home.root / "features", home / "features")
    reset_settings()
    dataset = FeatureDataset(get_settings().features_dir)
    rows = dataset.read()
    tail = rows.iloc[-3:]
    current = [tail.assign(symbol=f"CUR{i}-USD") for i in range(2)]  # same hours as BTC
    stale = rows.sample(4, random_state=7).assign(symbol=[f"OLD{i}-USD" for i in range(4)])
    pair = rows.iloc[[100, -200]].assign(symbol="PAIR-USD")  # two rows years apart
    for part in [*current, stale, pair]:
        dataset.write(pa.Table.from_pandas(part, preserve_index=False))
    feast_store.apply()
    return dataset.symbols()


def test_windows_group_stamps_no_wider_than_the_width_oldest_first():
    t = pd.Timestamp("2024-01-01", tz="UTC")
    stamps = [t + 5 * H, t, t + H, t + 5 * H, t + 30 * H]
    assert feast_store.latest_windows(stamps, timedelta(minutes=75)) == [
        (t, t + H),
        (t + 5 * H, t + 5 * H),
        (t + 30 * H, t + 30 * H),
    ]
    assert feast_store.latest_windows([], timedelta(hours=1)) == []


def test_the_online_window_is_the_views_ttl(home):
    store = feast_store.apply()
    assert feast_store.online_window(store) == timedelta(minutes=75)


def test_materialize_all_ends_with_the_online_rows_of_a_whole_range_materialize(mixed_home):
    symbols = mixed_home
    dataset = FeatureDataset(get_settings().features_dir)
    rows = dataset.read()
    latest = rows.groupby("symbol")["event_timestamp"].max()
    assert dataset.latest() == latest.to_dict()

    windows = materialize_all()
    width = feast_store.online_window(feast_store.get_store())
    assert all(start <= end <= start + width for start, end in windows)
    assert windows == sorted(windows)
    assert all(any(a <= t <= b for a, b in windows) for t in latest)
    read = pd.concat([rows[rows["event_timestamp"].between(a, b)] for a, b in windows])
    assert len(read) <= 3 * len(symbols) < len(rows) / 50  # a few rows, not the history
    recent = online(feast_store.get_store(), symbols)

    Path(feast_store._sqlite_path(feast_store.get_store())).unlink()  # an empty online store
    store = feast_store.apply()
    feast_store.materialize(rows["event_timestamp"].min(), rows["event_timestamp"].max(), store)
    whole = online(store, symbols)

    assert recent.keys() == whole.keys() and len(whole) >= 2
    for service, frame in whole.items():
        pd.testing.assert_frame_equal(recent[service], frame, check_exact=True, obj=service)
    reader = feast_store.OnlineReader(feast_store.PRICE_SERVICE, store)
    assert {s: reader.read(s).event_timestamp for s in symbols} == latest.to_dict()


def test_materialize_all_of_a_home_without_feature_rows_does_nothing(home):
    feast_store.apply()
    assert materialize_all() == []
