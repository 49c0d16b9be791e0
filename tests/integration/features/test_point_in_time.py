"""Point-in-time: features at entity time t use only candles closed by t (offline and online).

Every candle with open time >= t (close > t) is perturbed; features at t, t+30 min and
t+59 min must not change, and at t+1 h they must (the test can see a perturbation).
On the synthetic market one cut falls 2 h after a gap (its row has NULL lags) and the
hourly update's fetched window spans another gap.
"""

from __future__ import annotations

import pandas as pd
import pytest

from candlecast import feast_store
from ingestion.feature_jobs import compute_job, update_job
from ingestion.features import FEATURE_COLUMNS, compute_features
from ingestion.store import CandleStore
from tests.conftest import Market
from tests.integration.features.helpers import assert_rows_equal

pytestmark = pytest.mark.integration
#: Per market: symbol -> cut (open time of the first perturbed candle).
MARKET_CUTS = {
    "real": {
        "PITA-USD": pd.Timestamp("2024-02-10 13:00", tz="UTC"),
        "PITB-USD": pd.Timestamp("2024-04-20 00:00", tz="UTC"),
        "PITC-USD": pd.Timestamp("2024-06-01 07:00", tz="UTC"),
    },
    "synthetic": {
        "PITA-USD": pd.Timestamp("2024-04-20 10:00", tz="UTC"),  # 2 h after a 3 h gap
        "PITB-USD": pd.Timestamp("2024-05-16 00:00", tz="UTC"),  # a gap 13 h before
        "PITC-USD": pd.Timestamp("2024-06-10 07:00", tz="UTC"),
    },
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
def real(market: Market) -> pd.DataFrame:
    """The market's candles (named ``real`` as they are unperturbed)."""
    return market.candles


@pytest.fixture(scope="module")
def cuts(market: Market) -> dict[str, pd.Timestamp]:
    cuts = MARKET_CUTS[market.name]
    for cut in cuts.values():  # the row at t and the candle opening at t both exist
        assert {cut - pd.Timedelta(hours=1), cut} <= set(market.candles["time"])
    return cuts


@pytest.fixture(scope="module")
def truth(real: pd.DataFrame) -> pd.DataFrame:
    """Unperturbed feature rows, by event_timestamp."""
    return compute_features(real).to_pandas().set_index("event_timestamp")


def historical_all(entities: pd.DataFrame) -> pd.DataFrame:
    """v1's and v3's (v2 and every v3 group) features for ``entities``, one row per entity."""
    keys = ["symbol", "event_timestamp"]
    v1 = feast_store.historical_features(entities, "price_model_v1")
    v3 = feast_store.historical_features(entities, "price_model_v3")
    return v1.merge(v3, on=keys, suffixes=("", "_v3")).sort_values(keys)


def test_offline_features_ignore_candles_closing_after_t(home, real, truth, cuts):
    store = CandleStore(home / "candles")
    for symbol, cut in cuts.items():
        store.write(perturb_from(real, cut).assign(symbol=symbol))
    compute_job()
    feast_store.apply()
    times = [*WITHIN_HOUR, pd.Timedelta(hours=1)]
    entities = pd.DataFrame(
        [(s, cut + d) for s, cut in cuts.items() for d in times],
        columns=["symbol", "event_timestamp"],
    )
    got = historical_all(entities)
    assert len(got) == len(entities)
    for symbol, cut in cuts.items():
        rows = got[got["symbol"] == symbol]
        before = rows[rows["event_timestamp"] < cut + pd.Timedelta(hours=1)]
        assert len(before) == len(WITHIN_HOUR)
        assert_rows_equal(before, truth.loc[[cut] * len(before)], FEATURE_COLUMNS)
        seen = rows[rows["event_timestamp"] == cut + pd.Timedelta(hours=1)].iloc[0]
        assert seen["close"] == pytest.approx(
            1.37 * truth.loc[cut + pd.Timedelta(hours=1), "close"]
        )


def test_online_update_at_t_ignores_candles_closing_after_t(
    home, fake_coinbase, market, real, truth, cuts
):
    """The hourly job run at t (+0..59 min) publishes exactly the unperturbed row of t."""
    cut = cuts["PITB-USD"]
    stored_until = cut - pd.Timedelta(hours=48)
    CandleStore(home / "candles").write(real[real["time"] < stored_until])
    fake_coinbase.set_candles("BTC-USD", perturb_from(real, cut))
    fetched_gaps = market.gaps[(market.gaps >= stored_until) & (market.gaps < cut)]
    for offset in WITHIN_HOUR:
        [result] = update_job(["BTC-USD"], now=cut + offset)
        assert result.latest_close == cut
        # the gaps of the fetched window are reported the first time (real data: none)
        expected_gaps = len(fetched_gaps) if offset == WITHIN_HOUR[0] else 0
        assert sum(g.hours for g in result.gaps) == expected_gaps
        for service in ("price_model_v1", "price_model_v2", "price_model_v3"):
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
