"""The feature module against independent pandas + ``ta`` code, on candles with gaps.

Each market: the synthetic one (its own hand-made gaps, always) and the real BTC data
with a 3-hour gap punched in (``data``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ta

from bench.reference_features import reference_features
from ingestion.features import FEATURE_COLUMNS, V1_FEATURES, V2_FEATURES, compute_features
from tests.conftest import Market
from tests.integration.features.helpers import assert_rows_equal

#: Per market: the 3 missing hours the lag checks look at (punched into the real data; the
#: synthetic market already lacks them) and a Monday 06:00 close for the time features.
GAPS = {
    "real": pd.date_range("2024-03-10 05:00", periods=3, freq="h", tz="UTC"),
    "synthetic": pd.date_range("2024-04-20 05:00", periods=3, freq="h", tz="UTC"),
}
#: The 24-hour features: all present 25 h after a gap (the v3 weekly windows need a week).
V1_V2 = list(dict.fromkeys([*V1_FEATURES, *V2_FEATURES]))
MONDAY_6AM = {
    "real": pd.Timestamp("2024-03-04 06:00", tz="UTC"),
    "synthetic": pd.Timestamp("2024-05-06 06:00", tz="UTC"),
}


@pytest.fixture(scope="module")
def gap(market: Market) -> pd.DatetimeIndex:
    return GAPS[market.name]


@pytest.fixture(scope="module")
def gapped(market: Market, gap: pd.DatetimeIndex) -> pd.DataFrame:
    candles = market.candles
    gapped = candles[~candles["time"].isin(gap)].reset_index(drop=True)
    # punched here into the gap-free real file; already missing from the synthetic market
    assert gap.isin(candles["time"]).all() or gap.isin(market.gaps).all()
    assert not gapped["time"].isin(gap).any()
    return gapped


@pytest.fixture(scope="module")
def module_rows(gapped: pd.DataFrame) -> pd.DataFrame:
    return compute_features(gapped).to_pandas().sort_values("event_timestamp", ignore_index=True)


def test_feature_sets_have_the_documented_sizes():
    assert len(V1_FEATURES) == 68
    assert {"close", "price_1_hour_ago", "price_24_hour_ago", "rsi"} <= set(V1_FEATURES)
    assert len(V2_FEATURES) == 35


def test_one_row_per_candle_keyed_by_close_time(gapped, module_rows):
    assert len(module_rows) == len(gapped)
    expected = (gapped["time"] + pd.Timedelta(hours=1)).reset_index(drop=True)
    pd.testing.assert_series_equal(
        module_rows["event_timestamp"], expected, check_names=False, check_dtype=False
    )
    assert str(module_rows["event_timestamp"].dtype) == "datetime64[us, UTC]"


def test_every_feature_matches_the_pandas_reference(gapped, module_rows):
    reference = reference_features(gapped)
    assert list(reference["event_timestamp"]) == list(module_rows["event_timestamp"])
    assert_rows_equal(module_rows, reference, FEATURE_COLUMNS)


def test_lags_are_by_time_so_a_gap_stays_missing(module_rows, gap):
    after_gap = gap[-1] + pd.Timedelta(hours=1)  # open time of the first candle after the gap
    by_time = module_rows.set_index("event_timestamp")
    first_after = by_time.loc[after_gap + pd.Timedelta(hours=1)]
    assert np.isnan(first_after["price_1_hour_ago"])  # not the candle before the gap
    assert not np.isnan(first_after["price_4_hour_ago"])  # 4 h back is before the gap
    for name in ["pr_24hr_mavg", "pr_24hr_mstd", "rsi", "volatility_24h", "rsi_14"]:
        assert np.isnan(first_after[name]), name
    healed = by_time.loc[after_gap + pd.Timedelta(hours=25)]  # lag 24 is the first after the gap
    assert not healed[V1_V2].isna().any()


def test_rsi_equals_ta_over_the_24_lagged_closes(module_rows):
    complete = module_rows.dropna(subset=["rsi", "rsi_14"]).sample(120, random_state=3)
    for _, row in complete.iterrows():
        lagged = pd.Series([row[f"price_{i}_hour_ago"] for i in range(24, 0, -1)])
        assert row["rsi"] == pytest.approx(ta.momentum.rsi(lagged, window=14).iloc[-1], rel=1e-9)
        window = pd.Series([*lagged.iloc[1:], row["close"]])
        assert row["rsi_14"] == pytest.approx(ta.momentum.rsi(window, window=14).iloc[-1], rel=1e-9)


def test_time_features_describe_the_close_hour_and_weekday(module_rows, market):
    row = module_rows.set_index("event_timestamp").loc[MONDAY_6AM[market.name]]
    assert row["hour_sin"] == pytest.approx(1.0)  # 06:00 -> quarter of the day
    assert row["dow_sin"] == pytest.approx(0.0, abs=1e-12)  # Monday
    assert row["dow_cos"] == pytest.approx(1.0)
