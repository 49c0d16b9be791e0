"""Hot reload without a server: row encoding, version codes, the model cache, the swap.

The store-backed parts (``LiveChampions``, ``find_tag``, ``load_version``) use the
session's BentoML store (tests/conftest.py) with symbols no other test registers.
The real-server behaviour (zero failed requests across a promotion) is
tests/integration/test_hot_reload.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bentos.encoding import (
    FAILED,
    MISSING,
    OK,
    ROW_WIDTH,
    VersionNotFound,
    decode,
    encode,
    run_grouped,
    version_code,
)
from bentos.errors import ServiceUnavailable
from bentos.model_cache import Loaded, ModelCache
from bentos.predictor import Predictor, ServedFamily
from bentos.reload import ChampionWatch, every
from candlecast.contract import ModelSpec
from candlecast.feature_catalog import FEATURE_COLUMNS
from tests.fakes.serving import LAST_CLOSE, FakeFeatures, spec

OLD, NEW = "candlecast-lasso-btc-usd:old", "candlecast-lasso-btc-usd:new"
#: What each fake version outputs: a different log return per version.
OUTPUT = {OLD: 0.01, NEW: 0.02}


def versioned(tag: str, ratio: float = 0.98, **extra) -> ModelSpec:
    return spec("lasso", "BTC-USD", ratio, version=tag, **extra)


def constant(tag: str):
    return lambda x: np.full(len(x), OUTPUT[tag])


# --- encoding -------------------------------------------------------------------------


def test_version_code_is_a_deterministic_float64_exact_integer():
    code = version_code(OLD)
    assert code == version_code(OLD) != version_code(NEW)
    assert 0 <= code < 2**48 and int(float(code)) == code
    row = encode(3, OLD, np.ones(4))
    assert int(row[0, 1]) == code and row[0, 0] == 3


def test_rows_of_every_version_have_one_width_and_batch_together():
    narrow, wide = versioned(OLD, features=["a"]), versioned(NEW, features=["b", "c", "d"])
    rows = np.vstack(
        [encode(0, NEW, np.array([1.0, 2.0, 3.0])), encode(0, OLD, np.array([5.0]))] * 2
    )
    assert rows.shape == (4, 2 + len(FEATURE_COLUMNS))
    out = run_grouped(rows, [(narrow, lambda x: -x[:, 0]), (wide, lambda x: x.sum(axis=1))])
    assert out.tolist() == [[6.0, OK], [-5.0, OK]] * 2


def test_too_many_features_for_a_row_is_refused():
    with pytest.raises(ValueError, match="features"):
        encode(0, OLD, np.ones(ROW_WIDTH))


def test_an_unknown_or_unloadable_version_fails_only_its_own_rows():
    def resolve(index: int, code: int):
        if code == version_code(OLD):
            return versioned(OLD), constant(OLD)
        if code == version_code(NEW):
            raise VersionNotFound("deleted")
        raise OSError("truncated model.joblib")

    rows = np.vstack([encode(0, NEW, [1.0]), encode(0, OLD, [1.0]), encode(0, "x:y", [1.0])])
    out = run_grouped(rows, resolve)
    assert out[:, 1].tolist() == [MISSING, OK, FAILED]
    assert out[1, 0] == OUTPUT[OLD] and np.isnan(out[[0, 2], 0]).all()
    assert decode(out[1:]) == (OUTPUT[OLD], OK) and decode(np.array([0.5])) == (0.5, OK)


# --- model cache ------------------------------------------------------------------------


class Store:
    """Versions a fake model store holds; counts loads; can be slowed down."""

    def __init__(self, tags: list[str], delay: float = 0.0) -> None:
        self.tags, self.delay, self.loads = list(tags), delay, []

    def find(self, symbol: str, code: int) -> str | None:
        return next((t for t in self.tags if version_code(t) == code), None)

    def load(self, tag: str) -> Loaded:
        if tag not in self.tags:
            raise VersionNotFound(tag)
        self.loads.append(tag)
        time.sleep(self.delay)
        symbol = "ETH-USD" if "-eth-usd:" in tag else "BTC-USD"
        return Loaded(tag, spec("lasso", symbol, 0.9, version=tag), lambda x: np.zeros(len(x)))


def test_an_unknown_version_is_loaded_on_demand_once_for_concurrent_callers():
    store = Store([OLD, NEW], delay=0.3)
    cache = ModelCache(["BTC-USD"], store.find, store.load)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: cache.resolve(0, version_code(NEW)), range(8)))
    assert store.loads == [NEW]
    assert {s.version for s, _ in found} == {NEW}
    with pytest.raises(VersionNotFound, match="no version of BTC-USD"):
        cache.resolve(0, version_code("candlecast-lasso-btc-usd:gone"))
    with pytest.raises(VersionNotFound):
        cache.resolve(7, version_code(OLD))  # not loaded, and no such served symbol


def test_the_cache_keeps_the_most_recently_used_versions_per_symbol():
    tags = [f"candlecast-lasso-btc-usd:v{i}" for i in range(4)]
    other = "candlecast-lasso-eth-usd:v0"
    store = Store([*tags, other])
    cache = ModelCache(["BTC-USD", "ETH-USD"], store.find, store.load, keep=2)
    cache.get(other)
    cache.get(tags[0])
    cache.get(tags[1])
    cache.get(tags[0])  # used again: tags[1] is now the least recently used
    cache.get(tags[2])
    assert sorted(cache.tags()) == sorted([other, tags[0], tags[2]])
    cache.resolve(0, version_code(tags[1]))  # evicted, so loaded again on demand
    assert store.loads.count(tags[1]) == 2


def test_a_failed_load_is_retried_by_the_next_caller():
    store = Store([OLD])
    calls = []

    def flaky(tag: str) -> Loaded:
        calls.append(tag)
        if len(calls) == 1:
            raise OSError("model.yaml written, weights not yet")
        return store.load(tag)

    cache = ModelCache(["BTC-USD"], store.find, flaky)
    with pytest.raises(OSError):
        cache.get(OLD)
    assert cache.get(OLD).tag == OLD and calls == [OLD, OLD]


# --- snapshot swap ------------------------------------------------------------------------


class Service:
    """A fake model service: runs rows by version code, loads versions when told."""

    def __init__(self, tags: list[str]) -> None:
        self.tags = set(tags)
        self.warmed: list[list[str]] = []
        self.gate: asyncio.Event | None = None  # when set, a run waits for it
        self.entered: asyncio.Event | None = None

    async def run(self, rows: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        models = [(versioned(t), constant(t)) for t in self.tags]
        return run_grouped(rows, models)

    async def load(self, tags: list[str]) -> list[str]:
        self.warmed.append(tags)
        missing = set(tags) - self.tags
        if missing:
            raise RuntimeError(f"cannot load {sorted(missing)}")
        return tags


def make(service: Service, tag: str = OLD) -> Predictor:
    family = ServedFamily({"BTC-USD": versioned(tag)}, service.run, service.load)
    return Predictor(["BTC-USD"], {"lasso": family}, FakeFeatures(), clock=lambda: LAST_CLOSE)


def expected_price(tag: str):
    return pytest.approx(60000.0 * float(np.exp(OUTPUT[tag])), rel=1e-12)


def test_a_swap_warms_the_new_version_first_then_serves_it_everywhere():
    service = Service([OLD, NEW])
    predictor = make(service)
    swapped = []
    new_spec = versioned(NEW, ratio=0.95)
    watch = ChampionWatch(predictor, lambda: {"lasso": {"BTC-USD": new_spec}}, swapped.append)

    async def scenario():
        before = await predictor.predict("BTC-USD", "lasso")
        assert await watch.check() is True
        assert await watch.check() is False  # nothing changed since
        return before, await predictor.predict("BTC-USD"), predictor.models()

    before, after, models = asyncio.run(scenario())
    assert service.warmed == [[NEW]]
    assert (before["model_version"], before["predicted_price"]) == (OLD, expected_price(OLD))
    assert (after["model_version"], after["predicted_price"]) == (NEW, expected_price(NEW))
    assert after["mae_ratio_vs_persistence"] == 0.95
    lasso = next(m for m in models if m["model"] == "lasso")
    assert lasso["model_version"] == NEW and lasso["mae_ratio_vs_persistence"] == 0.95
    assert [s["lasso"]["BTC-USD"].version for s in swapped] == [NEW]
    with pytest.raises(TypeError):
        predictor.snapshot["lasso"] = {}  # immutable: replaced whole, never edited


def test_a_request_in_flight_during_a_swap_keeps_the_version_it_chose():
    service = Service([OLD, NEW])
    predictor = make(service)
    watch = ChampionWatch(predictor, lambda: {"lasso": {"BTC-USD": versioned(NEW)}})

    async def scenario():
        service.gate, service.entered = asyncio.Event(), asyncio.Event()
        flight = asyncio.create_task(predictor.predict("BTC-USD", "lasso"))
        await service.entered.wait()  # it has chosen OLD and waits in the model service
        await watch.check()
        service.gate.set()
        return await flight, await predictor.predict("BTC-USD", "lasso")

    during, after = asyncio.run(scenario())
    assert (during["model_version"], during["predicted_price"]) == (OLD, expected_price(OLD))
    assert (after["model_version"], after["predicted_price"]) == (NEW, expected_price(NEW))


def test_a_version_the_model_service_cannot_load_is_never_swapped_in():
    service = Service([OLD])  # NEW is in the store listing but cannot be loaded
    predictor = make(service)
    watch = ChampionWatch(predictor, lambda: {"lasso": {"BTC-USD": versioned(NEW)}})
    with pytest.raises(RuntimeError, match="could not load lasso " + NEW):
        asyncio.run(watch.check())
    assert predictor.snapshot["lasso"]["BTC-USD"].version == OLD
    assert asyncio.run(predictor.predict("BTC-USD", "lasso"))["model_version"] == OLD


def test_a_version_missing_in_the_model_service_is_a_clear_503():
    predictor = make(Service([NEW]), tag=OLD)
    with pytest.raises(ServiceUnavailable, match=f"lasso has no version {OLD}") as err:
        asyncio.run(predictor.predict("BTC-USD", "lasso"))
    assert err.value.status == 503 and err.value.to_body()["model_version"] == OLD


def test_a_failing_check_warns_once_and_the_loop_goes_on(caplog):
    calls = []

    async def step():
        calls.append(1)
        if len(calls) <= 3:
            raise OSError("model.yaml is being written")

    async def scenario():
        task = asyncio.create_task(every(0.01, step, "champion reload", first=0))
        while len(calls) < 5:
            await asyncio.sleep(0.01)
        task.cancel()

    with caplog.at_level(logging.INFO, logger="bentos.reload"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "model.yaml is being written" in warnings[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)


# --- the live model store -------------------------------------------------------------------


def test_live_champions_follow_the_store_and_fall_back_to_the_packed_ones():
    from bentos.registry import Champion, LiveChampions
    from tests.fakes.serving import register_lasso

    first = register_lasso("HOTA-USD", ratio=0.99)
    packed = {
        "HOTA-USD": Champion("candlecast-lasso-hota-usd:packed", versioned("packed")),
        "HOTB-USD": Champion("candlecast-lasso-hotb-usd:packed", versioned("packed-b")),
    }
    live = LiveChampions("lasso", packed)
    read = live.read()
    assert read["HOTA-USD"].tag == first and read["HOTB-USD"] is packed["HOTB-USD"]
    second = register_lasso("HOTA-USD", ratio=0.97)
    assert live.read()["HOTA-USD"].tag == second
    assert live.read()["HOTA-USD"].spec.mae_ratio_vs_persistence == 0.97


def test_the_model_service_finds_and_loads_any_stored_version_by_code():
    from bentos.runners import find_tag, load_version
    from tests.fakes.serving import register_lasso

    old, new = register_lasso("HOTC-USD", ratio=0.99), register_lasso("HOTC-USD", ratio=0.9)
    assert find_tag("lasso", {}, "HOTC-USD", version_code(old)) == old
    assert find_tag("lasso", {}, "HOTC-USD", version_code("candlecast-lasso-hotc-usd:x")) is None
    loaded = load_version("lasso", old)
    assert loaded.spec.version == old and loaded.forward(np.zeros((2, 4))).shape == (2,)
    with pytest.raises(VersionNotFound, match="not cnn"):
        load_version("cnn", new)
    with pytest.raises(VersionNotFound):
        load_version("lasso", "candlecast-lasso-hotc-usd:deleted")


def test_threads_preload_in_the_background_until_stopped():
    from bentos.reload import repeat_in_thread

    ticks = threading.Semaphore(0)
    stop = repeat_in_thread(0.01, ticks.release, "test preload")
    assert all(ticks.acquire(timeout=2) for _ in range(3))
    stop.set()
