"""BTC-USD and ETH-USD side by side, each with gaps at its own hours.

One home holds two gapped synthetic markets over the same window: BTC-USD
(``synthetic_market``, tests/conftest.py) and ETH-USD from the same generator with
its own seed, price level (~2,500) and holes (``second_gapped_market_candles``,
tests/fakes/training_data.py), none at an hour, or hour of the day, that BTC-USD
misses. Both are loaded by ``load-csv`` and published together. Per symbol, on
that one store:

- features: the offline dataset, Feast's point-in-time rows and the online row of
  each symbol equal the one feature computation run on that symbol's candles
  *alone*, so ETH's features never hold BTC's values (or the reverse); a hole makes
  NULLs in its own symbol's rows only; changing one symbol's later candles changes
  neither its own earlier features nor any of the other's. Checked on the
  own-symbol services ``price_model_v1``/``v2`` (frozen); the v3 cross-asset
  columns copy the peer's row on purpose and are tested with the feature module.
- training: ``train`` per symbol registers one champion per symbol, each judged on
  its own candles (its own scored hours and persistence MAE), and neither demotes the
  other's; retraining ETH-USD is judged against ETH-USD's champion only (``slow``).
- serving: one ``bentoml serve`` for both symbols; each symbol's ``/predict``
  answers with its own champion and features, ``/models`` lists both, and a hole
  refuses a forecast for its own symbol only.

Training runs as ``python -m training`` subprocesses with a BENTOML_HOME of this
module (the session's model store holds other tests' fake BTC-USD/ETH-USD champions).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bentos.client import BadTime, FeaturesUnavailable
from deploy.serve import free_port, serve_in_background
from tests.conftest import Market
from tests.fakes.homes import candlecast_home
from tests.fakes.training_data import SECOND_SYMBOL, second_gapped_market_candles
from tests.integration.features.helpers import assert_rows_equal
from tests.integration.test_training_cli import scored_hours

pytestmark = pytest.mark.integration
BTC, ETH = "BTC-USD", SECOND_SYMBOL
SYMBOLS = (BTC, ETH)
OTHER = {BTC: ETH, ETH: BTC}
#: Services whose every feature is computed from the symbol's own candles (never edited).
OWN_SERVICES = ("price_model_v1", "price_model_v2")
SERVICE = "price_model_v2"  # what the models here are trained on
TRAIN_WEEK = "2024-06-24"  # one weekly fold; each symbol has a hole in it
END = pd.Timestamp("2024-07-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True, eq=False)
class TwoSymbolHome:
    root: Path
    markets: dict[str, Market]
    _alone: dict[str, pd.DataFrame] = field(default_factory=dict)

    def alone(self, symbol: str) -> pd.DataFrame:
        """``symbol``'s features computed from its own candles only, by close time."""
        from ingestion.features import compute_features

        if symbol not in self._alone:
            rows = compute_features(self.markets[symbol].candles).to_pandas()
            self._alone[symbol] = rows.sort_values("event_timestamp").reset_index(drop=True)
        return self._alone[symbol]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, synthetic_market: Market):
    """The home with both gapped markets loaded by ``load-csv`` and published together."""
    from ingestion.csv_import import load_csv, read_candle_csv
    from ingestion.feature_jobs import publish
    from ingestion.store import CandleStore
    from tests.fakes.training_data import write_coinbase_csv

    csv = tmp_path_factory.mktemp("eth-market") / "synthetic_ETH-USD_gapped.csv"
    write_coinbase_csv(second_gapped_market_candles(), csv)
    eth = Market("synthetic", csv, read_candle_csv(csv, ETH))
    root = tmp_path_factory.mktemp("two-symbol-home")
    with candlecast_home(root):
        from candlecast.settings import get_settings

        store = CandleStore(get_settings().candles_dir)
        for symbol, market in ((BTC, synthetic_market), (ETH, eth)):
            load_csv(store, market.csv, symbol)
        publish(list(SYMBOLS))
        yield TwoSymbolHome(root, {BTC: synthetic_market, ETH: eth})


def _rows_at(rows: pd.DataFrame, stamps) -> pd.DataFrame:
    return rows.set_index("event_timestamp").loc[list(stamps)].reset_index()


def after_gaps(gaps: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Close times whose 24 lags reach into one of ``gaps`` (open times of missing candles):
    the row closing at ``t`` reads the candles opened ``t - 25 h .. t - 1 h``."""
    hours = [gap + k * HOUR for gap in gaps for k in range(2, 26)]
    return pd.DatetimeIndex(sorted(set(hours))).difference(gaps + HOUR)


def test_each_symbol_misses_other_hours(pair: TwoSymbolHome):
    from candlecast.settings import get_settings
    from ingestion.status import store_status
    from ingestion.store import CandleStore

    btc, eth = pair.markets[BTC].gaps, pair.markets[ETH].gaps
    assert len(btc) and len(eth) and btc.intersection(eth).empty
    assert not set(btc.hour) & set(eth.hour)
    status = {r.symbol: r.as_dict() for r in store_status(CandleStore(get_settings().candles_dir))}
    assert {s: status[s]["missing_hours"] for s in SYMBOLS} == {BTC: len(btc), ETH: len(eth)}
    closes = {s: pair.markets[s].candles["close"] for s in SYMBOLS}
    assert closes[BTC].min() > 10 * closes[ETH].max()  # two price levels: any mix-up shows


def test_offline_dataset_is_each_symbols_own_computation(pair: TwoSymbolHome):
    """Both symbols were computed in one run; each equals its candles computed alone."""
    from candlecast import feast_store
    from candlecast.settings import get_settings
    from ingestion.feature_dataset import FeatureDataset

    dataset = FeatureDataset(get_settings().features_dir)
    for symbol in SYMBOLS:
        stored = dataset.read(symbol).sort_values("event_timestamp").reset_index(drop=True)
        alone = pair.alone(symbol)
        assert set(stored["symbol"]) == {symbol}
        pd.testing.assert_series_equal(stored["event_timestamp"], alone["event_timestamp"])
        for service in OWN_SERVICES:
            assert_rows_equal(stored, alone, feast_store.feature_names(service))


@pytest.mark.parametrize("service", OWN_SERVICES)
def test_point_in_time_rows_per_symbol_in_one_query(pair: TwoSymbolHome, service: str):
    """One entity frame with both symbols: random hours, the hours after each symbol's
    holes (NULL lags for that symbol, complete features for the other), half of them
    29:59 into the hour. Each row equals its own symbol's computation alone."""
    from candlecast import feast_store

    names = feast_store.feature_names(service)
    gaps = {s: pair.markets[s].gaps for s in SYMBOLS}
    hurt = {s: after_gaps(gaps[s]) for s in SYMBOLS}
    rng = np.random.default_rng(3)
    entities = []
    for symbol in SYMBOLS:
        closes = pair.alone(symbol)["event_timestamp"]
        picked = closes.iloc[rng.choice(len(closes), 80, replace=False)]
        stamps = pd.DatetimeIndex(picked).union(hurt[BTC]).union(hurt[ETH])
        stamps = stamps.intersection(pd.DatetimeIndex(closes))  # hours that have a candle
        entities.append(pd.DataFrame({"symbol": symbol, "event_timestamp": stamps}))
    points = pd.concat(entities, ignore_index=True).sample(frac=1.0, random_state=5)
    offsets = pd.to_timedelta(np.where(np.arange(len(points)) % 2, 0, 1799), unit="s")
    offline = feast_store.historical_features(
        points.assign(event_timestamp=points["event_timestamp"] + offsets), service
    )
    offline = offline.assign(event_timestamp=offline["event_timestamp"].dt.floor("h"))
    assert len(offline) == len(points)
    for symbol in SYMBOLS:
        got = offline[offline["symbol"] == symbol].sort_values("event_timestamp")
        expected = _rows_at(pair.alone(symbol), got["event_timestamp"])
        assert_rows_equal(got.reset_index(drop=True), expected, names)
        own = got["event_timestamp"].isin(hurt[symbol])
        other = got["event_timestamp"].isin(hurt[OTHER[symbol]])
        assert own.any() and other.any()
        assert got.loc[own, names].isna().any(axis=1).all()  # its own holes: NULL lags
        assert not got.loc[other, names].isna().any().any()  # the other's holes: complete


def test_online_row_per_symbol_is_its_latest(pair: TwoSymbolHome):
    from candlecast import feast_store

    for symbol in SYMBOLS:
        latest = pair.alone(symbol).iloc[-1]
        assert latest["event_timestamp"] == END
        for service in OWN_SERVICES:
            online = feast_store.online_features(symbol, service)
            names = feast_store.feature_names(service)
            assert online.event_timestamp == END
            assert_rows_equal(pd.DataFrame([online.values]), pd.DataFrame([latest[names]]), names)


@pytest.mark.parametrize("changed", SYMBOLS)
def test_later_candles_of_one_symbol_change_no_earlier_or_other_features(
    pair: TwoSymbolHome, changed: str
):
    """The one computation over both symbols' candles, before and after rewriting one
    symbol's candles that close after ``t`` (prices scaled, one dropped)."""
    from candlecast import feast_store
    from ingestion.features import compute_features

    names = [n for s in OWN_SERVICES for n in feast_store.feature_names(s)]
    t = pd.Timestamp("2024-06-15 12:00", tz="UTC")
    before = {s: pair.markets[s].candles for s in SYMBOLS}
    after = dict(before)
    candles = before[changed].copy()
    later = candles["time"] + HOUR > t
    for col in ("open", "high", "low", "close"):
        candles.loc[later, col] *= 1.37
    candles.loc[later, "volume"] *= 3.0
    after[changed] = candles.drop(index=candles.index[later.to_numpy()][5])

    def rows(markets: dict[str, pd.DataFrame]) -> pd.DataFrame:
        frame = compute_features(pd.concat(markets.values(), ignore_index=True)).to_pandas()
        return frame.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)

    old, new = rows(before), rows(after)
    for frame in (old, new):
        assert set(frame["symbol"]) == set(SYMBOLS)
    keep = OTHER[changed]
    assert_rows_equal(old[old["symbol"] == keep], new[new["symbol"] == keep], names)
    early_old = old[(old["symbol"] == changed) & (old["event_timestamp"] <= t)]
    early_new = new[(new["symbol"] == changed) & (new["event_timestamp"] <= t)]
    assert_rows_equal(early_old, early_new, names)
    late_old, late_new = (
        f[(f["symbol"] == changed) & (f["event_timestamp"] > t)] for f in (old, new)
    )
    assert len(late_new) == len(late_old) - 1  # one candle dropped: the change did arrive
    assert not np.allclose(late_new["close"].iloc[:5], late_old["close"].iloc[:5])


# --- training and registry per symbol ---------------------------------------------------


@dataclass(frozen=True)
class Trained:
    bentoml_home: Path
    outputs: dict[str, str]  # symbol -> its train command's stdout
    first: dict[str, str]  # symbol -> tag of its first lasso version


def _train(pair: TwoSymbolHome, bentoml_home: Path, symbol: str) -> subprocess.Popen:
    args = ["train", "--symbol", symbol, "--models", "lasso", "-f", SERVICE]
    env = {
        **os.environ,
        "CANDLECAST_HOME": str(pair.root),
        "BENTOML_HOME": str(bentoml_home),
        "CANDLECAST_THREADS": "1",  # two runs share the box
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "training", *args, "--test-start", TRAIN_WEEK],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


def _store(bentoml_home: Path):
    from bentoml._internal.models import ModelStore

    return ModelStore(bentoml_home / "models")


@pytest.fixture(scope="module")
def trained(pair: TwoSymbolHome, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """``train --models lasso`` for BTC-USD and ETH-USD at once, into one fresh store."""
    from candlecast import model_store

    bentoml_home = tmp_path_factory.mktemp("two-symbol-bentoml")
    runs = {symbol: _train(pair, bentoml_home, symbol) for symbol in SYMBOLS}
    outputs = {symbol: _finish(proc) for symbol, proc in runs.items()}
    store = _store(bentoml_home)
    first = {s: model_store.versions("lasso", s, store)[0].tag for s in SYMBOLS}
    return Trained(bentoml_home, outputs, first)


@pytest.mark.slow  # training subprocesses and a served process: ~1.5 min
def test_train_registers_a_champion_per_symbol_judged_on_its_own_candles(
    pair: TwoSymbolHome, trained: Trained
):
    from candlecast import model_store
    from candlecast.contract import CHAMPION

    store = _store(trained.bentoml_home)
    for symbol in SYMBOLS:
        tag = trained.first[symbol]
        assert tag.startswith(f"candlecast-lasso-{symbol.lower()}:")
        # the first version of each symbol's family is its champion, whatever the other holds
        assert f"{tag} -> champion (first registered version" in trained.outputs[symbol]
        spec = model_store.get(tag, store).spec
        assert (spec.symbol, spec.feature_service) == (symbol, SERVICE)
        now, nxt = scored_hours(pair.markets[symbol], TRAIN_WEEK, "2024-07-01")
        assert spec.metrics["n"] == len(now) < 7 * 24  # its own hole costs its own hours
        persistence = float(np.mean(np.abs(nxt.to_numpy() - now.to_numpy())))
        assert spec.persistence["mae"] == pytest.approx(persistence, rel=1e-9)
    counts = {s: len(scored_hours(pair.markets[s], TRAIN_WEEK, "2024-07-01")[0]) for s in SYMBOLS}
    assert counts[BTC] != counts[ETH]  # holes at other hours, of other lengths
    for symbol in SYMBOLS:  # registering one symbol's champion demoted nothing of the other's
        versions = model_store.versions("lasso", symbol, store)
        assert [(v.tag, v.stage) for v in versions] == [(trained.first[symbol], CHAMPION)]


# --- one service, both symbols ------------------------------------------------------------


@pytest.fixture(scope="module")
def client(pair: TwoSymbolHome, trained: Trained):
    env = {
        "CANDLECAST_HOME": str(pair.root),
        "BENTOML_HOME": str(trained.bentoml_home),
        "CANDLECAST_SERVE_SYMBOLS": ",".join(SYMBOLS),
        "CANDLECAST_SERVE_FAMILIES": "lasso",
    }
    with serve_in_background(free_port(), env=env) as client:
        yield client


def _champion(trained: Trained, symbol: str):
    from candlecast import model_store

    return model_store.champion("lasso", symbol, _store(trained.bentoml_home))


def _closes(market: Market) -> pd.Series:
    candles = market.candles
    return pd.Series(candles["close"].to_numpy(), pd.DatetimeIndex(candles["time"]) + HOUR)


@pytest.mark.slow  # training subprocesses and a served process: ~1.5 min
def test_models_and_symbols_list_both(client, trained: Trained):
    assert client.symbols() == list(SYMBOLS)
    listed = {(m["symbol"], m["model"]): m for m in client.models()}
    for symbol in SYMBOLS:
        assert listed[(symbol, "lasso")]["model_version"] == _champion(trained, symbol).tag
        assert (symbol, "naive") in listed


@pytest.mark.slow  # training subprocesses and a served process: ~1.5 min
def test_each_symbol_is_forecast_by_its_own_champion_from_its_own_features(
    pair: TwoSymbolHome, client, trained: Trained
):
    from candlecast.contract import forecast_prices, model_input

    for symbol in SYMBOLS:
        champion = _champion(trained, symbol)
        p = client.predict(symbol, model="lasso")
        assert (p.symbol, p.model_version, p.as_of) == (symbol, champion.tag, END)
        closes = _closes(pair.markets[symbol])
        assert p.current_price == closes[END]
        past = [END - h * HOUR for h in range(24, 0, -1)]
        assert p.past_24_hour_prices == list(closes[past])
        row = pair.alone(symbol).iloc[[-1]]
        x = model_input(champion.spec, row[list(champion.spec.features)].to_numpy(float))
        expected = forecast_prices(champion.spec, champion.forward()(x), row["close"].to_numpy())
        assert p.predicted_price == pytest.approx(float(expected[0]), rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_hole_refuses_its_own_symbol_only(pair: TwoSymbolHome, client, symbol: str):
    """At ``symbol``'s first hole and the hour after it, the other symbol answers."""
    other = OTHER[symbol]
    gaps = pair.markets[symbol].gaps
    first, run_end = gaps[0], gaps[0]
    while run_end + HOUR in gaps:
        run_end += HOUR
    missing_at = (first + HOUR + timedelta(minutes=30)).isoformat()  # no candle closes then
    with pytest.raises(BadTime, match="No stored features"):
        client.predict(symbol, model="naive", at=missing_at)
    assert client.predict(other, model="naive", at=missing_at).as_of == first + HOUR
    after = run_end + 2 * HOUR  # close of the first candle after the hole
    with pytest.raises(FeaturesUnavailable, match="incomplete"):
        client.predict(symbol, model="lasso", at=after.isoformat())
    answer = client.predict(other, model="lasso", at=after.isoformat())
    assert answer.as_of == after and answer.current_price == _closes(pair.markets[other])[after]
    assert None not in answer.past_24_hour_prices


@pytest.mark.slow
def test_retraining_one_symbol_leaves_the_other_alone(pair: TwoSymbolHome, trained: Trained):
    """A second ETH-USD version is judged against ETH-USD's champion; BTC-USD's one version
    stays its champion. Last in the module: the service above may reload ETH's champion."""
    from candlecast import model_store
    from candlecast.contract import CHAMPION

    out = _finish(_train(pair, trained.bentoml_home, ETH))
    store = _store(trained.bentoml_home)
    btc = model_store.versions("lasso", BTC, store)
    assert [(v.tag, v.stage) for v in btc] == [(trained.first[BTC], CHAMPION)]
    eth = model_store.versions("lasso", ETH, store)
    [retrained] = [v.tag for v in eth if v.tag != trained.first[ETH]]
    assert sum(v.stage == CHAMPION for v in eth) == 1
    assert f"{retrained} ->" in out
    assert trained.first[ETH] in out and trained.first[BTC] not in out  # judged against ETH's
