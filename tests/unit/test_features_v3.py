"""The v3 groups of the feature SQL against the independent pandas implementation.

Two synthetic symbols (BTC-USD and its peer ETH-USD) with gaps at different hours, long
enough for every weekly window to fill: every feature equals ``bench.reference_features``
(written from the catalogue's definitions with pandas idioms), the rows of an
incremental run equal a full run's, and a peer candle that closes after ``t`` never
changes the row at ``t``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.reference_features import reference_features
from candlecast.feature_catalog import (
    CROSS_FEATURES,
    FEATURE_COLUMNS,
    V3_GROUPS,
    peer_symbol,
)
from ingestion.features import LOOKBACK_HOURS, compute_features
from ingestion.sample import synthetic_candles

H = pd.Timedelta(hours=1)
END = pd.Timestamp("2024-03-01", tz="UTC")
HOURS = 1100  # > 4 weeks (672 h) of warm-up plus room for gaps
V3 = [name for group in V3_GROUPS.values() for name in group]
CROSS = list(CROSS_FEATURES)
#: Missing hours by position: BTC has a 3 h gap in its 5th week and one hour in its 6th
#: week; ETH misses other hours, one of them BTC's last hour.
GAPS = {"BTC-USD": [800, 801, 802, 950], "ETH-USD": [300, 870, HOURS - 1]}


def assert_rows_equal(left: pd.DataFrame, right: pd.DataFrame, names: list[str]) -> None:
    """Equal to float tolerance, NULLs in the same places (as the integration helper)."""
    a = left[names].astype("float64").to_numpy()
    b = right[names].astype("float64").to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=1e-9, atol=1e-12)


def market(gaps: dict[str, list[int]] = GAPS) -> pd.DataFrame:
    parts = []
    for seed, symbol in enumerate(("BTC-USD", "ETH-USD"), start=11):
        candles = synthetic_candles(symbol, HOURS, seed=seed, end=END)
        parts.append(candles.drop(index=gaps.get(symbol, [])))
    return pd.concat(parts, ignore_index=True)


def module(candles: pd.DataFrame, **kwargs) -> pd.DataFrame:
    rows = compute_features(candles, **kwargs).to_pandas()
    return rows.sort_values(["symbol", "event_timestamp"], ignore_index=True)


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return market()


@pytest.fixture(scope="module")
def rows(candles: pd.DataFrame) -> pd.DataFrame:
    return module(candles)


def test_every_v3_feature_matches_the_pandas_oracle(candles, rows):
    expected = reference_features(candles)
    assert list(rows["event_timestamp"]) == list(expected["event_timestamp"])
    assert_rows_equal(rows, expected, V3)
    one_candle = {"rv_parkinson_1h", "rv_gk_1h"}  # never NULL: no window, no lag
    for name in V3:  # every window fills somewhere, and is NULL somewhere (warm-up, gaps)
        assert rows[name].notna().any(), name
        assert rows[name].isna().any() or name in one_candle, name


def test_windows_are_null_until_full_and_while_they_hold_a_gap(rows):
    btc = rows[rows["symbol"] == "BTC-USD"].set_index("event_timestamp")
    start = btc.index.min()  # close of the first candle: the window of n ends n - 1 h later
    assert btc.loc[start + 22 * H, ["rv_parkinson_24h", "rv_gk_24h"]].isna().all()
    assert btc.loc[start + 23 * H, ["rv_parkinson_24h", "rv_gk_24h"]].notna().all()
    assert np.isnan(btc.loc[start + 166 * H, "rv_gk_168h"])
    assert not np.isnan(btc.loc[start + 167 * H, "rv_gk_168h"])
    assert np.isnan(btc.loc[start + 167 * H, "volume_z_168h"])  # 168 candles before it
    assert not np.isnan(btc.loc[start + 168 * H, "volume_z_168h"])
    first_after = start + 951 * H  # the candle after the 1 h gap at position 950
    window = pd.date_range(first_after, periods=23, freq="h")
    assert btc.loc[window, "rv_parkinson_24h"].isna().all()  # the gap is in the window
    assert btc.loc[first_after + 23 * H, "rv_parkinson_24h"] > 0  # 24 candles after it
    assert btc.loc[first_after:, "rv_parkinson_168h"].isna().all()  # to the end (< 168 h)
    assert btc.loc[first_after, "rv_parkinson_1h"] > 0  # the current candle alone


def test_the_seasonal_feature_reads_the_forecast_hour_of_each_past_week(candles, rows):
    btc = candles[candles["symbol"] == "BTC-USD"].set_index("time")["close"]
    row = rows[rows["symbol"] == "BTC-USD"].iloc[-1]  # closes at t; the next hour opens at t
    t = row["event_timestamp"]
    weekly = [abs(np.log(btc[t - k * 168 * H] / btc[t - k * 168 * H - H])) for k in (1, 2, 3, 4)]
    assert row["how_abs_return_4w"] == pytest.approx(np.mean(weekly), rel=1e-12)
    assert pd.Timestamp(t).dayofweek == (t - 168 * H).dayofweek  # the same hour of week


def test_the_peer_rule_and_the_null_peer_hour(rows):
    assert (peer_symbol("BTC-USD"), peer_symbol("ETH-USD")) == ("ETH-USD", "BTC-USD")
    assert peer_symbol("SOL-USD") == "BTC-USD"
    btc = rows[rows["symbol"] == "BTC-USD"].set_index("event_timestamp")
    eth_missing_close = btc.index.min() + 870 * H  # ETH has no candle closing then
    assert btc.loc[eth_missing_close, CROSS].isna().all()
    assert btc.loc[eth_missing_close - H, CROSS].notna().all()


def test_without_the_peer_candles_the_cross_group_is_null(candles):
    alone = module(candles[candles["symbol"] == "BTC-USD"])
    assert alone[CROSS].isna().all().all()
    assert alone[list(V3_GROUPS["rvol"])].notna().any().all()


def test_symbols_limits_the_rows_returned_not_the_peers_read(candles, rows):
    btc = module(candles, symbols=["BTC-USD"])
    assert set(btc["symbol"]) == {"BTC-USD"}
    assert_rows_equal(btc, rows[rows["symbol"] == "BTC-USD"].reset_index(drop=True), V3)
    assert compute_features(candles, symbols=[]).num_rows == 0


def test_the_lookback_is_the_oldest_candle_a_row_reads():
    assert LOOKBACK_HOURS == 4 * 168  # the |return| of the hour 4 weeks back needs the one before


@pytest.mark.parametrize("cut", [700, 803, 951])  # the first rows after BTC's two gaps
def test_incremental_rows_equal_a_full_recompute(candles, rows, cut):
    """Rows after ``since`` from LOOKBACK_HOURS (+1) of candles, as the dataset extends."""
    since = END - HOURS * H + cut * H  # the close of the candle at position cut - 1
    recent = candles[candles["time"] >= since - (LOOKBACK_HOURS + 1) * H]
    part = module(recent, since=since.to_pydatetime())
    full = rows[rows["event_timestamp"] > since].reset_index(drop=True)
    assert list(part["event_timestamp"]) == list(full["event_timestamp"])
    assert_rows_equal(part, full, FEATURE_COLUMNS)
    shorter = candles[candles["time"] >= since - (LOOKBACK_HOURS - 1) * H]  # an hour short
    seasonal = module(shorter, since=since.to_pydatetime())["how_abs_return_4w"]
    assert not np.isnan(full["how_abs_return_4w"].iloc[0]) and np.isnan(seasonal.iloc[0])


def test_a_peer_candle_closing_after_t_never_changes_the_row_at_t(candles, rows):
    cut = END - 200 * H  # perturb every ETH candle that opens at or after the cut
    later = (candles["symbol"] == "ETH-USD") & (candles["time"] >= cut)
    changed = candles.copy()
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.37
    changed.loc[later, "volume"] *= 3.0
    btc_before = rows[rows["symbol"] == "BTC-USD"]
    btc_after = module(changed, symbols=["BTC-USD"])
    until_t = btc_before["event_timestamp"] <= cut  # rows at t <= cut: ETH closed by t only
    assert_rows_equal(
        btc_after[until_t.to_numpy()], btc_before[until_t].reset_index(drop=True), FEATURE_COLUMNS
    )
    next_row = btc_after.set_index("event_timestamp").loc[cut + H]
    assert next_row["peer_log_return_1h"] == pytest.approx(
        btc_before.set_index("event_timestamp").loc[cut + H, "peer_log_return_1h"] + np.log(1.37)
    )
