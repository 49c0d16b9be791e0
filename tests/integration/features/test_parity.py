"""Offline (get_historical_features) == online == the feature module.

On every market of ``feature_home``: the synthetic one with gaps (always) and the real
BTC data (``data``). On a gapped market the rows right after each gap (NULL lags) are
checked too, besides the random points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from candlecast import feast_store
from candlecast.settings import get_settings
from ingestion.feature_dataset import FeatureDataset
from tests.integration.conftest import FeatureHome
from tests.integration.features.helpers import assert_rows_equal

pytestmark = pytest.mark.integration
SERVICES = ["price_model_v1", "price_model_v2", "price_model_v3"]


def module_rows(home: Path | None = None, symbol: str = "BTC-USD") -> pd.DataFrame:
    """The feature module's own output, as stored in the offline dataset."""
    root = home / "features" if home else get_settings().features_dir
    return FeatureDataset(root).read(symbol)


def after_gaps(rows: pd.DataFrame, market_gaps: pd.DatetimeIndex) -> pd.DataFrame:
    """Rows whose 24 h look-back reaches into a gap (their lag features are partly NULL)."""
    stamps = rows["event_timestamp"]
    near = pd.Series(False, index=rows.index)
    for gap in market_gaps:  # open time t of a missing candle: rows closing in (t+1h, t+26h]
        near |= (stamps > gap + pd.Timedelta(hours=1)) & (stamps <= gap + pd.Timedelta(hours=26))
    return rows[near]


@pytest.mark.parametrize("service", SERVICES)
def test_historical_matches_feature_module_at_random_points(
    feature_home: FeatureHome, service: str
):
    rows = module_rows()
    points = rows.sample(150, random_state=7)
    points = pd.concat([points, after_gaps(rows, feature_home.market.gaps)])
    points = points.drop_duplicates(["symbol", "event_timestamp"])[["symbol", "event_timestamp"]]
    if feature_home.market.gaps.size:  # the gapped market must exercise NULL lags
        assert rows.set_index("event_timestamp").loc[points["event_timestamp"]].isna().any().any()
    # Half the entity times fall inside the hour: they must see the candle closed before.
    offsets = pd.to_timedelta(np.where(np.arange(len(points)) % 2, 0, 1799), unit="s")
    entities = points.assign(event_timestamp=points["event_timestamp"] + offsets)
    offline = feast_store.historical_features(entities, service)
    offline = offline.assign(event_timestamp=offline["event_timestamp"].dt.floor("h"))
    merged = offline.merge(rows, on=["symbol", "event_timestamp"], suffixes=("", "_module"))
    assert len(merged) == len(points)
    names = feast_store.feature_names(service)
    module = merged[[f"{n}_module" for n in names]].set_axis(names, axis=1)
    assert_rows_equal(merged, module, names)


@pytest.mark.parametrize("service", SERVICES)
def test_online_after_materialize_matches_latest_row(feature_home: FeatureHome, service: str):
    latest = module_rows().iloc[-1]
    online = feast_store.online_features("BTC-USD", service)
    assert online.event_timestamp == latest["event_timestamp"]
    names = feast_store.feature_names(service)
    assert_rows_equal(pd.DataFrame([online.values]), pd.DataFrame([latest[names]]), names)


def _as_point_symbols(rows: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """One row per fake symbol, so the online store (one row per key) holds every point."""
    return rows.assign(symbol=[f"{prefix}{i:03d}-USD" for i in range(len(rows))])


def test_online_equals_module_at_random_points_materialize_and_push(
    feature_home: FeatureHome, home: Path
):
    """100 points materialized from the offline dataset and 100 pushed, read back online."""
    rows = module_rows(feature_home.root).sample(200, random_state=11)
    materialized = _as_point_symbols(rows.iloc[:100], "M")
    pushed = _as_point_symbols(rows.iloc[100:], "P")
    FeatureDataset(get_settings().features_dir).write(
        pa.Table.from_pandas(materialized, preserve_index=False)
    )
    store = feast_store.apply()
    feast_store.materialize(
        materialized["event_timestamp"].min(), materialized["event_timestamp"].max(), store
    )
    feast_store.push_online(pushed, store)
    expected = pd.concat([materialized, pushed], ignore_index=True)
    for service in SERVICES:
        names = feast_store.feature_names(service, store)
        response = store.get_online_features(
            features=feast_store.feature_service(service, store),
            entity_rows=[{"symbol": s} for s in expected["symbol"]],
        ).to_df()
        assert_rows_equal(response, expected, names)
