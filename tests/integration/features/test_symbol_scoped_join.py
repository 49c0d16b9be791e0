"""A symbol's training set is Feast's point-in-time join over that symbol's files only.

Narrowing the views' FileSource to one symbol's glob must give exactly the rows of the
join over the whole dataset, for every FeatureService, and training must not read (or
be stopped by) another symbol's files: with S symbols, each symbol's join no longer
grows with S.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from candlecast import feast_store
from candlecast.errors import CorruptFileError
from candlecast.settings import get_settings, reset_settings
from ingestion.feature_dataset import FeatureDataset
from ingestion.store import CandleStore
from tests.integration.conftest import FeatureHome
from training.dataset import KEYS, label_rows, load_dataset

pytestmark = pytest.mark.integration
BTC = "BTC-USD"


@pytest.fixture
def two_symbol_home(home: Path, synthetic_feature_home: FeatureHome) -> FeatureDataset:
    """BTC's candles and features, and a second symbol's rows over the same hours."""
    for part in ("candles", "features"):
        shutil.copytree(synthetic_feature_home.root / part, home / part)
    reset_settings()
    dataset = FeatureDataset(get_settings().features_dir)
    other = dataset.read(BTC).assign(symbol="OTHER-USD")
    other[other.columns[2:]] = other[other.columns[2:]] * 1.5
    dataset.write(pa.Table.from_pandas(other, preserve_index=False))
    feast_store.apply()
    return dataset


def sorted_by_keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEYS, ignore_index=True)[sorted(frame.columns)]


def test_the_join_over_one_symbols_files_equals_the_join_over_all(two_symbol_home):
    dataset = two_symbol_home
    entities = label_rows(CandleStore(get_settings().candles_dir).read(BTC))[KEYS]
    entities = entities.iloc[::7].reset_index(drop=True)  # every hour kind, fewer rows
    services = feast_store.service_names()
    assert len(services) >= 5
    for service in services:
        whole = feast_store.historical_features(entities, service)
        narrow = feast_store.historical_features(entities, service, files=dataset.symbol_glob(BTC))
        assert len(narrow) == len(entities)
        pd.testing.assert_frame_equal(
            sorted_by_keys(narrow), sorted_by_keys(whole), check_exact=True, obj=service
        )


def test_training_reads_only_its_symbols_files(two_symbol_home):
    dataset = two_symbol_home
    before = load_dataset(BTC, "price_model_v1").frame
    for path in dataset.files("OTHER-USD"):
        path.write_bytes(b"not parquet")  # unreadable: a read of it would fail
    entities = before[KEYS].iloc[:5]
    with pytest.raises(CorruptFileError), dataset.guard():
        feast_store.historical_features(entities, "price_model_v1")  # the whole dataset
    after = load_dataset(BTC, "price_model_v1").frame
    pd.testing.assert_frame_equal(after, before, check_exact=True)


def test_training_a_symbol_without_feature_files_says_which_command_to_run(two_symbol_home):
    from training.dataset import DatasetError

    for path in two_symbol_home.files(BTC):
        path.unlink()
    with pytest.raises(DatasetError, match=r"candlecast features --symbol BTC-USD"):
        load_dataset(BTC, "price_model_v1")
