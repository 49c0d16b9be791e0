"""Comparison helpers for the feature tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from feast import FeatureStore

from candlecast import feast_store


def assert_rows_equal(left: pd.DataFrame, right: pd.DataFrame, names: list[str]) -> None:
    """Equal to float tolerance, NULLs in the same places."""
    a = left[names].astype("float64").to_numpy()
    b = right[names].astype("float64").to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=1e-9, atol=1e-12)


def online(store: FeatureStore, symbols: list[str]) -> dict[str, pd.DataFrame]:
    """Every FeatureService's online values and event timestamps for ``symbols``."""
    return {
        service: pd.DataFrame(
            store.get_online_features(
                features=feast_store.feature_refs(service, store),
                entity_rows=[{"symbol": s} for s in symbols],
            ).to_dict(include_event_timestamps=True)
        )
        for service in feast_store.service_names(store)
    }
