"""The v3 groups through Feast and the feature jobs, on two symbols whose gaps differ.

BTC-USD and its peer ETH-USD (the market of ``tests/unit/test_features_v3.py``): offline
(``get_historical_features``) and online reads of the v3 services equal the feature
module's rows; the cross-asset columns stay point-in-time through Feast; the jobs keep a
symbol's rows equal to a full recompute when its peer's candles arrive after its own or
fill an old gap; the hourly update republishes the row of a symbol whose peer it fetched.
On each market of ``market`` (the real BTC data under ``data``) the v3 features equal the
pandas reference (bench/reference_features.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.reference_features import reference_features
from candlecast import feast_store
from candlecast.feature_catalog import CROSS_FEATURES, FEATURE_COLUMNS, V2_FEATURES, V3_GROUPS
from candlecast.settings import get_settings
from ingestion.feature_dataset import FeatureDataset
from ingestion.feature_jobs import compute_job, publish, update_job
from ingestion.features import compute_features
from ingestion.store import CandleStore
from tests.conftest import Market
from tests.fakes.homes import candlecast_home
from tests.integration.features.helpers import assert_rows_equal
from tests.unit.test_features_v3 import market as two_symbol_market

pytestmark = pytest.mark.integration
KEYS = ["symbol", "event_timestamp"]
SYMBOLS = ["BTC-USD", "ETH-USD"]
H = pd.Timedelta(hours=1)
V3 = [name for group in V3_GROUPS.values() for name in group]
CROSS = list(CROSS_FEATURES)


def rows_of(candles: pd.DataFrame, **kwargs) -> pd.DataFrame:
    return compute_features(candles, **kwargs).to_pandas().sort_values(KEYS, ignore_index=True)


def stored(home: Path) -> pd.DataFrame:
    return FeatureDataset(home / "features").read()


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return two_symbol_market()


@pytest.fixture(scope="module")
def recent(candles: pd.DataFrame) -> pd.DataFrame:
    """The last 400 hours: enough for the jobs' logic (a gap of each symbol is in it)."""
    return candles[candles["time"] >= candles["time"].max() - 400 * H]


@pytest.fixture(scope="module")
def truth(candles: pd.DataFrame) -> pd.DataFrame:
    return rows_of(candles)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, candles: pd.DataFrame):
    """A home with both symbols' candles, features offline and materialized online."""
    root = tmp_path_factory.mktemp("two-symbol-home")
    with candlecast_home(root):
        CandleStore(get_settings().candles_dir).write(candles)
        publish(SYMBOLS)
        yield root


def test_v3_features_match_the_pandas_oracle_on_each_market(market: Market):
    candles = market.candles
    if not len(market.gaps):  # the real file has none: punch 3 hours out of it
        candles = candles[~candles["time"].between("2024-03-10 05:00", "2024-03-10 07:00")]
    expected = reference_features(candles)
    assert_rows_equal(rows_of(candles), expected, V3)


def test_the_jobs_store_the_module_rows_of_both_symbols(published, truth):
    assert_rows_equal(stored(published), truth, FEATURE_COLUMNS)


def test_historical_v3_features_equal_the_module_rows(published, truth):
    points = pd.concat(
        [
            truth.groupby("symbol").sample(60, random_state=5),
            truth[truth[V3].isna().any(axis=1)].sample(60, random_state=6),  # warm-up, gaps
        ]
    ).drop_duplicates(KEYS)
    # Half the entity times fall inside the hour: they see the row of the candle closed before.
    inside = pd.to_timedelta(np.where(np.arange(len(points)) % 2, 0, 1799), unit="s")
    entities = points[KEYS].assign(event_timestamp=points["event_timestamp"] + inside)
    names = feast_store.feature_names("price_model_v3")
    assert names == [*V2_FEATURES, *V3]
    offline = feast_store.historical_features(entities, "price_model_v3")
    offline = offline.assign(event_timestamp=offline["event_timestamp"].dt.floor("h"))
    merged = offline.merge(truth, on=KEYS, suffixes=("", "_module"))
    assert len(merged) == len(points)
    module = merged[[f"{n}_module" for n in names]].set_axis(names, axis=1)
    assert_rows_equal(merged, module, names)
    assert merged[CROSS].notna().any().all()  # the peer columns arrived through Feast


@pytest.mark.parametrize("service", ["price_model_v3_cross", "price_model_v3"])
def test_online_after_materialize_equals_each_symbols_latest_row(published, truth, service):
    names = feast_store.feature_names(service)
    for symbol in SYMBOLS:
        latest = truth[truth["symbol"] == symbol].iloc[-1]
        online = feast_store.online_features(symbol, service)
        assert online.event_timestamp == latest["event_timestamp"]
        assert_rows_equal(pd.DataFrame([online.values]), pd.DataFrame([latest[names]]), names)


def test_a_pushed_all_null_group_replaces_the_previous_hour_online(home, candles):
    """Feast's push skips a view whose features are all NULL; the row must still be written."""
    eth_last = candles.loc[candles["symbol"] == "ETH-USD", "time"].max()  # ETH lacks BTC's last
    rows = rows_of(candles[candles["time"] <= eth_last + H], symbols=["BTC-USD"])
    before, last = rows.iloc[[-2]], rows.iloc[[-1]]
    assert before[CROSS].notna().all().all() and last[CROSS].isna().all().all()
    store = feast_store.apply()
    feast_store.push_online(before, store)
    feast_store.push_online(last, store)
    online = feast_store.online_features("BTC-USD", "price_model_v3", store)
    assert online.event_timestamp == last["event_timestamp"].item()  # no view an hour behind
    assert all(online.values[name] is None for name in CROSS)


def test_a_peer_candle_closing_after_t_never_changes_features_at_t_through_feast(
    home, candles, truth
):
    cut = pd.Timestamp("2024-02-20 09:00", tz="UTC")  # ETH candles opening from cut on change
    later = (candles["symbol"] == "ETH-USD") & (candles["time"] >= cut)
    assert {cut - H, cut} <= set(candles.loc[candles["symbol"] == "BTC-USD", "time"])
    changed = candles.copy()
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.37
    changed.loc[later, "volume"] *= 3.0
    CandleStore(home / "candles").write(changed)
    compute_job(SYMBOLS)
    feast_store.apply()
    offsets = [pd.Timedelta(0), pd.Timedelta(minutes=30), pd.Timedelta(minutes=59, seconds=59), H]
    entities = pd.DataFrame({"symbol": "BTC-USD", "event_timestamp": [cut + d for d in offsets]})
    got = feast_store.historical_features(entities, "price_model_v3").sort_values(KEYS)
    btc = truth[truth["symbol"] == "BTC-USD"].set_index("event_timestamp")
    names = feast_store.feature_names("price_model_v3")
    assert_rows_equal(got.iloc[:3], btc.loc[[cut] * 3], names)
    seen = got.iloc[3]["peer_log_return_1h"]  # the first row that may see a changed candle
    assert seen == pytest.approx(btc.loc[cut + H, "peer_log_return_1h"] + np.log(1.37))


def test_peer_candles_stored_after_the_symbols_rows_recompute_only_the_rows_they_reach(
    home, recent
):
    candles = recent
    store = CandleStore(home / "candles")
    eth = candles["symbol"] == "ETH-USD"
    late = eth & (candles["time"] >= candles.loc[eth, "time"].max() - 5 * H)
    store.write(candles[~late])
    assert all(run.full for run in compute_job(SYMBOLS))
    store.write(candles[late])  # ETH's last candles arrive after BTC's rows were computed
    [btc] = compute_job(["BTC-USD"])
    first_reached = candles.loc[late, "time"].min() + H  # close of the first late ETH candle
    rows = stored(home)
    reached = (rows["symbol"] == "BTC-USD") & (rows["event_timestamp"] >= first_reached)
    assert (btc.full, btc.count) == (False, int(reached.sum()))
    assert btc.count < len(rows) / 4
    assert compute_job(SYMBOLS)[0].count == 0  # nothing new since: nothing recomputed
    assert_rows_equal(stored(home), rows_of(candles), FEATURE_COLUMNS)
    (home / "features" / "BTC-USD" / "peer.json").write_text("{not json")
    assert compute_job(["BTC-USD"])[0].full  # no readable record of the peer: recompute


def test_a_backfilled_peer_gap_recomputes_the_symbol_in_full(home, recent):
    candles = recent
    store = CandleStore(home / "candles")
    old = (candles["symbol"] == "ETH-USD") & candles["time"].between(
        "2024-02-20 00:00", "2024-02-20 02:00"
    )
    assert old.sum() == 3
    store.write(candles[~old])
    compute_job(SYMBOLS)
    store.write(candles[old])
    btc, eth = compute_job(SYMBOLS)
    assert btc.full and eth.full  # BTC: its peer's history changed; ETH: its own did
    assert_rows_equal(stored(home), rows_of(candles), FEATURE_COLUMNS)


def test_the_hourly_update_republishes_the_row_whose_peer_it_fetched(home, fake_coinbase, recent):
    """The live cycle updates BTC, then ETH: BTC's online row must get ETH's candle too."""
    now = pd.Timestamp("2024-02-28 12:00", tz="UTC")  # both symbols have the hours before it
    closed = recent[recent["time"] < now]
    assert (closed.groupby("symbol")["time"].max() == now - H).all()
    CandleStore(home / "candles").write(closed[closed["time"] < now - 10 * H])
    compute_job(SYMBOLS)
    for symbol in SYMBOLS:
        fake_coinbase.set_candles(symbol, closed[closed["symbol"] == symbol])
    update_job(["BTC-USD"], now=now)
    update_job(["ETH-USD"], now=now)
    truth = rows_of(closed)
    assert_rows_equal(stored(home), truth, FEATURE_COLUMNS)
    names = feast_store.feature_names("price_model_v3")
    for symbol in SYMBOLS:
        online = feast_store.online_features(symbol, "price_model_v3")
        latest = truth[truth["symbol"] == symbol].iloc[-1]
        assert online.event_timestamp == now
        assert_rows_equal(pd.DataFrame([online.values]), pd.DataFrame([latest[names]]), names)
        assert all(online.values[name] is not None for name in CROSS)


def test_training_on_the_cross_group_without_the_peer_says_to_load_the_peer(home, candles):
    from training.dataset import DatasetError, load_dataset

    CandleStore(get_settings().candles_dir).write(candles[candles["symbol"] == "BTC-USD"])
    compute_job(["BTC-USD"])
    assert len(load_dataset("BTC-USD", "price_model_v3_rvol").frame)  # own-symbol groups train
    with pytest.raises(DatasetError, match="peer ETH-USD, which has no candles here") as info:
        load_dataset("BTC-USD", "price_model_v3_cross")
    assert "candlecast backfill --symbol ETH-USD" in str(info.value)
