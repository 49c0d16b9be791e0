"""Point-in-time: features at entity time t use only candles closed by t (offline and online).

Every candle with open time >= t (close > t) is perturbed; features at t, t+30 min and
t+59 min must not change, and at t+1 h they must (the test can see a perturbation).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from candlecast import feast_store
from ingestion.csv_import import read_candle_csv
from ingestion.feature_jobs import compute_job, update_job
from ingestion.features import FEATURE_COLUMNS, compute_features
from ingestion.store import CandleStore
from tests.integration.features.helpers import assert_rows_equal

pytestmark = [pytest.mark.integration, pytest.mark.data]
CUTS = {
    "PITA-USD": pd.Timestamp("2024-02-10 13:00", tz="UTC"),
    "PITB-USD": pd.Timestamp("2024-04-20 00:00", tz="UTC"),
    "PITC-USD": pd.Timestamp("2024-06-01 07:00", tz="UTC"),
}
WITHIN_HOUR = [pd.Timedelta(0), pd.Timedelta(minutes=30), pd.Timedelta(minutes=59, seconds=59)]


def perturb_from(candles: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """Scale prices and volume of every candle opening at or after ``cut``."""
    out = candles.copy()
    later = out["time"] >= cut
    out.loc[later, ["open", "high", "low", "close"]] *= 1.37
    out.loc[later, "volume"] *= 3.0
    return out


@pytest.fixture(scope="module")
def real(btc_csv: Path) -> pd.DataFrame:
    return read_candle_csv(btc_csv, "BTC-USD")


@pytest.fixture(scope="module")
def truth(real: pd.DataFrame) -> pd.DataFrame:
    """Unperturbed feature rows, by event_timestamp."""
    return compute_features(real).to_pandas().set_index("event_timestamp")


def historical_all(entities: pd.DataFrame) -> pd.DataFrame:
    """Both services' point-in-time features for ``entities``, one row per entity."""
    keys = ["symbol", "event_timestamp"]
    v1 = feast_store.historical_features(entities, "price_model_v1")
    v2 = feast_store.historical_features(entities, "price_model_v2")
    return v1.merge(v2, on=keys, suffixes=("", "_v2")).sort_values(keys)


def test_offline_features_ignore_candles_closing_after_t(home, real, truth):
    store = CandleStore(home / "candles")
    for symbol, cut in CUTS.items():
        store.write(perturb_from(real, cut).assign(symbol=symbol))
    compute_job()
    feast_store.apply()
    times = [*WITHIN_HOUR, pd.Timedelta(hours=1)]
    entities = pd.DataFrame(
        [(s, cut + d) for s, cut in CUTS.items() for d in times],
        columns=["symbol", "event_timestamp"],
    )
    got = historical_all(entities)
    assert len(got) == len(entities)
    for symbol, cut in CUTS.items():
        rows = got[got["symbol"] == symbol]
        before = rows[rows["event_timestamp"] < cut + pd.Timedelta(hours=1)]
        assert len(before) == len(WITHIN_HOUR)
        assert_rows_equal(before, truth.loc[[cut] * len(before)], FEATURE_COLUMNS)
        seen = rows[rows["event_timestamp"] == cut + pd.Timedelta(hours=1)].iloc[0]
        assert seen["close"] == pytest.approx(
            1.37 * truth.loc[cut + pd.Timedelta(hours=1), "close"]
        )


def test_online_update_at_t_ignores_candles_closing_after_t(home, fake_coinbase, real, truth):
    """The hourly job run at t (+0..59 min) publishes exactly the unperturbed row of t."""
    cut = CUTS["PITB-USD"]
    CandleStore(home / "candles").write(real[real["time"] < cut - pd.Timedelta(hours=48)])
    fake_coinbase.set_candles("BTC-USD", perturb_from(real, cut))
    for offset in WITHIN_HOUR:
        [result] = update_job(["BTC-USD"], now=cut + offset)
        assert result.latest_close == cut
        for service in ("price_model_v1", "price_model_v2"):
            online = feast_store.online_features("BTC-USD", service)
            assert online.event_timestamp == cut
            names = list(online.values)
            assert_rows_equal(pd.DataFrame([online.values]), truth.loc[[cut]], names)
    [result] = update_job(["BTC-USD"], now=cut + pd.Timedelta(hours=1))
    assert (result.new_candles, result.feature_rows) == (1, 1)
    online = feast_store.online_features("BTC-USD", "price_model_v1")
    assert online.event_timestamp == cut + pd.Timedelta(hours=1)
    perturbed = truth.loc[cut + pd.Timedelta(hours=1), "close"] * 1.37
    assert online.values["close"] == pytest.approx(perturbed)
