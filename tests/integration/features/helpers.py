"""Comparison helpers for the feature tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def assert_rows_equal(left: pd.DataFrame, right: pd.DataFrame, names: list[str]) -> None:
    """Equal to float tolerance, NULLs in the same places."""
    a = left[names].astype("float64").to_numpy()
    b = right[names].astype("float64").to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=1e-9, atol=1e-12)
