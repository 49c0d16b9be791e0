"""The scale profile on a real redis-server: the same answers as SQLite, shared, and 503s.

One home holds the synthetic market's feature rows (copied from the session's built
home, so ../shared/data is never needed) and one registry; the local profile's store
(SQLite) and the scale profile's (Redis) are materialized and pushed the same rows and
must answer every FeatureService identically. Each test runs its own redis-server on a
free loopback port and kills it afterwards.

The replica and outage tests run on two in-process ``FeatureSource`` objects (each with
its own Feast store and Redis connections, as each API worker has); the same, over HTTP
on two real ``bentoml serve`` processes, is marked ``slow`` (about two minutes).
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bentos.errors import FeaturesUnavailable
from candlecast import feast_store
from candlecast.settings import get_settings, reset_settings
from ingestion.feature_dataset import FeatureDataset
from tests.integration.conftest import FeatureHome
from tests.integration.features.helpers import online
from tests.integration.features.redis_server import RedisServer

pytestmark = pytest.mark.integration
BTC = "BTC-USD"
H = pd.Timedelta(hours=1)
#: A read of a down or stalled Redis gives up within its socket timeouts (1 s each in
#: feature_store.scale.yaml, no retries); this leaves room for a loaded 2-core box.
OUTAGE_ANSWER_SECONDS = 3.0


@pytest.fixture
def redis_server(tmp_path: Path):
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def scale_home(home: Path, synthetic_feature_home: FeatureHome, redis_server, monkeypatch):
    """A fresh home with the synthetic market's feature rows, applied, on the scale profile
    (CANDLECAST_REDIS_URL: this test's server). Nothing is materialized yet."""
    for part in ("candles", "features"):
        shutil.copytree(synthetic_feature_home.root / part, home / part)
    monkeypatch.setenv("CANDLECAST_STORE_PROFILE", "scale")
    monkeypatch.setenv("CANDLECAST_REDIS_URL", redis_server.url)
    # Redis alone: the profile's Ray store and engine have their own parity tests
    # (test_ray_profile.py); a Ray materialize here would cost minutes per test.
    monkeypatch.setenv("CANDLECAST_SCALE_RAY", "false")
    reset_settings()
    feast_store.apply("local")  # the one registry, and SQLite's tables
    feast_store.apply()
    return home


def assert_same(sqlite: dict[str, pd.DataFrame], redis: dict[str, pd.DataFrame]) -> None:
    """Identical frames: same columns, same values bit for bit, NULLs in the same places."""
    assert sqlite.keys() == redis.keys() and len(sqlite) >= 2
    for service, frame in sqlite.items():
        pd.testing.assert_frame_equal(redis[service], frame, check_exact=True, obj=service)


def next_hour(row: pd.DataFrame, scale: float) -> pd.DataFrame:
    """``row`` an hour later with every feature changed (so a missed write shows)."""
    later = row.copy()
    later["event_timestamp"] = later["event_timestamp"] + H
    numeric = [c for c in later.columns if c not in ("symbol", "event_timestamp")]
    later[numeric] = later[numeric] * scale
    return later


def test_sqlite_and_redis_answer_the_same_after_materialize_and_push(scale_home):
    dataset = FeatureDataset(get_settings().features_dir)
    rows = dataset.read()
    # 30 random hours as symbols of their own: the online store holds one row per symbol
    points = rows.sample(30, random_state=3).assign(symbol=[f"P{i:02d}-USD" for i in range(30)])
    dataset.write(pa.Table.from_pandas(points, preserve_index=False))
    symbols = [BTC, *points["symbol"]]
    sqlite, redis = feast_store.get_store("local"), feast_store.get_store("scale")
    assert (sqlite.config.online_store.type, redis.config.online_store.type) == (
        "sqlite",
        "redis",
    )
    start, end = rows["event_timestamp"].min(), rows["event_timestamp"].max()
    for store in (sqlite, redis):
        feast_store.materialize(start, end, store)
    materialized = online(sqlite, symbols)
    assert_same(materialized, online(redis, symbols))
    latest = rows[rows["symbol"] == BTC].iloc[[-1]]
    prices = materialized[feast_store.PRICE_SERVICE]
    assert prices["close"][0] == latest["close"].item()  # real rows, not two empty stores
    for frame in materialized.values():  # every symbol has a row in each view
        assert frame.filter(like="__ts").notna().all(axis=None)

    pushed = next_hour(latest, 1.01)
    for store in (sqlite, redis):
        feast_store.push_online(pushed, store)
    after_push = online(sqlite, [BTC])
    assert_same(after_push, online(redis, [BTC]))
    assert after_push[feast_store.PRICE_SERVICE]["close"][0] == pushed["close"].item()
    assert after_push["price_model_v2"]["log_return_1h"][0] == pushed["log_return_1h"].item()


def test_a_pushed_all_null_view_is_written_to_redis_as_to_sqlite(scale_home):
    """Feast's push skips a view whose features are all NULL; push_online writes it to both."""
    rows = FeatureDataset(get_settings().features_dir).read()
    latest = rows[rows["symbol"] == BTC].iloc[[-1]]
    sqlite, redis = feast_store.get_store("local"), feast_store.get_store("scale")
    view = redis.get_feature_view("price_features_v3_rvol")
    names = [f.name for f in view.features]
    assert latest[names].notna().any(axis=None)  # the previous hour had values there
    hour = next_hour(latest, 1.0)
    hour[names] = np.nan
    for store in (sqlite, redis):
        feast_store.push_online(latest, store)
        feast_store.push_online(hour, store)
    read = {}
    for label, store in (("sqlite", sqlite), ("redis", redis)):
        refs = [f"{view.name}:{name}" for name in names]
        got = store.get_online_features(features=refs, entity_rows=[{"symbol": BTC}])
        read[label] = pd.DataFrame(got.to_dict(include_event_timestamps=True))
    pd.testing.assert_frame_equal(read["redis"], read["sqlite"], check_exact=True)
    assert read["redis"][names].isna().all(axis=None)  # not the previous hour's values
    stamp = read["redis"][f"{names[0]}__ts"][0]
    assert pd.Timestamp(stamp, unit="s", tz="UTC") == hour["event_timestamp"].item()


def test_two_replicas_on_one_redis_serve_a_hour_pushed_once(scale_home):
    """Two API feature sources (separate stores and connections, as two replicas) share
    Redis: one push by a third writer (the live loop) is served by both on their next read.
    """
    from bentos.features import FeatureSource

    rows = FeatureDataset(get_settings().features_dir).read()
    latest = rows[rows["symbol"] == BTC].iloc[[-1]]
    feast_store.materialize(rows["event_timestamp"].min(), latest["event_timestamp"].item())
    replicas = [FeatureSource(feast_store.get_store()) for _ in range(2)]
    before = [r.live(BTC, "price_model_v2") for r in replicas]
    assert {b[0].as_of for b in before} == {latest["event_timestamp"].item().to_pydatetime()}

    pushed = next_hour(latest, 1.02)
    feast_store.push_online(pushed, feast_store.get_store())  # once, by another process' store
    for replica in replicas:
        prices, values = replica.live(BTC, "price_model_v2")
        assert prices.as_of == pushed["event_timestamp"].item().to_pydatetime()
        assert prices.values["close"] == pushed["close"].item()
        assert values.values["log_return_1h"] == pushed["log_return_1h"].item()


def test_a_redis_read_is_reused_until_any_writer_changes_the_symbols_hash(scale_home):
    """The Redis change token: no second Feast read without a write; a push of the next
    hour, and a rewrite of the same hour by another store (a recomputed row), are both
    read on the next request; a symbol with no row is never cached."""
    from bentos.features import FeatureSource

    rows = FeatureDataset(get_settings().features_dir).read()
    latest = rows[rows["symbol"] == BTC].iloc[[-1]]
    feast_store.materialize(rows["event_timestamp"].min(), latest["event_timestamp"].item())
    source = FeatureSource()
    before = source.live(BTC, "price_model_v2")
    assert source.live(BTC, "price_model_v2") is before  # no write: no second read

    pushed = next_hour(latest, 1.01)
    feast_store.push_online(pushed, feast_store.get_store())
    after = source.live(BTC, "price_model_v2")
    assert after[0].as_of == pushed["event_timestamp"].item().to_pydatetime()
    assert source.live(BTC, "price_model_v2") is after

    rewritten = pushed.assign(log_return_1h=0.5)  # the same hour, one value changed
    feast_store.push_online(rewritten, feast_store.get_store())
    again = source.live(BTC, "price_model_v2")
    assert again[1].as_of == after[1].as_of and again[1].values["log_return_1h"] == 0.5
    with pytest.raises(FeaturesUnavailable):
        source.live("ETH-USD", "price_model_v2")  # no hash: read (and refused) every time


def test_a_dead_redis_is_a_prompt_503_and_reads_recover_when_it_is_back(scale_home, redis_server):
    from bentos.features import FeatureSource

    rows = FeatureDataset(get_settings().features_dir).read()
    end = rows["event_timestamp"].max()
    feast_store.materialize(rows["event_timestamp"].min(), end)
    source = FeatureSource()
    assert source.live(BTC, "price_model_v2")[0].as_of == end.to_pydatetime()

    redis_server.kill()
    started = time.monotonic()
    with pytest.raises(FeaturesUnavailable) as err:
        source.live(BTC, "price_model_v2")
    assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS
    assert err.value.status == 503 and err.value.code == "features_unavailable"
    assert "unavailable" in err.value.message

    redis_server.start()  # same port, empty (no persistence): materialize again
    feast_store.materialize(rows["event_timestamp"].min(), end, feast_store.get_store())
    assert source.live(BTC, "price_model_v2")[0].as_of == end.to_pydatetime()


def test_a_stalled_redis_times_out_as_a_503_instead_of_hanging(scale_home, redis_server):
    from bentos.features import FeatureSource

    rows = FeatureDataset(get_settings().features_dir).read()
    feast_store.materialize(rows["event_timestamp"].min(), rows["event_timestamp"].max())
    source = FeatureSource()
    source.live(BTC, "price_model_v2")  # connected
    redis_server.proc.send_signal(signal.SIGSTOP)  # accepts nothing, answers nothing
    try:
        started = time.monotonic()
        with pytest.raises(FeaturesUnavailable):
            source.live(BTC, "price_model_v2")
        assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    assert source.live(BTC, "price_model_v2")[0].values["close"] is not None


@pytest.mark.slow  # two real servers on 2 cores: ~2 min (the tests above cover it in-process)
def test_two_real_api_replicas_share_redis_and_ride_out_its_outage(scale_home, redis_server):
    """Two ``bentoml serve`` processes on the scale profile: a push made once is served by
    both; Redis killed is a prompt JSON 503 ``features_unavailable`` from both (never a
    500, never a hang); Redis back (and refilled) is served again with no API restart."""
    from contextlib import ExitStack

    from deploy.serve import free_port, serve_in_background
    from tests.fakes.serving import register_lasso

    rows = FeatureDataset(get_settings().features_dir).read()
    latest = rows[rows["symbol"] == BTC].iloc[[-1]]
    start, end = rows["event_timestamp"].min(), latest["event_timestamp"].item()
    feast_store.materialize(start, end)
    register_lasso(BTC, ratio=0.98, features=feast_store.feature_names("price_model_v2"))
    env = {"CANDLECAST_SERVE_FAMILIES": "lasso", "CANDLECAST_RELOAD_SECONDS": "0"}
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(serve_in_background(free_port(), env=env)) for _ in range(2)
        ]
        assert {c.predict(BTC, model="lasso").as_of for c in replicas} == {end}

        pushed = next_hour(latest, 1.02)
        feast_store.push_online(pushed, feast_store.get_store())  # once, as the live loop
        for client in replicas:
            answer = client.predict(BTC, model="lasso")
            assert answer.as_of == pushed["event_timestamp"].item()
            assert answer.current_price == pushed["close"].item()

        redis_server.kill()
        for client in replicas:
            started = time.monotonic()
            r = client.session.get(f"{client.base_url}/predict", params={"symbol": BTC})
            assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS
            assert r.status_code == 503 and r.json()["error"] == "features_unavailable"

        redis_server.start()
        feast_store.materialize(start, end, feast_store.get_store())
        assert {c.predict(BTC, model="lasso").as_of for c in replicas} == {end}


def test_a_home_applied_only_on_redis_gets_sqlites_tables_when_run_locally(scale_home, monkeypatch):
    """The registry alone does not make SQLite ready: ``ensure_applied`` (the hourly
    update's) applies again when the local profile's file is missing."""
    (scale_home / "feast" / "online_store.db").unlink()  # as if applied on scale only
    monkeypatch.setenv("CANDLECAST_STORE_PROFILE", "local")
    reset_settings()
    latest = FeatureDataset(get_settings().features_dir).read().iloc[[-1]]
    store = feast_store.ensure_applied()
    feast_store.push_online(latest, store)
    online = feast_store.online_features(BTC, feast_store.PRICE_SERVICE, store)
    assert online.event_timestamp == latest["event_timestamp"].item()
