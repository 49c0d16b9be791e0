"""The store profile: settings, the YAML each profile opens, and a Redis outage's mapping.

No server here: building a Feast store connects to nothing, and the outage is a fake
store raising what redis-py raises (the real one: tests/integration/features/
test_redis_profile.py).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from candlecast import feast_store
from candlecast.settings import PROJECT_ROOT, Settings, redis_connection_string


def test_the_default_profile_is_local_sqlite_and_needs_no_redis(settings):
    assert settings.store_profile == "local"
    assert settings.feature_store_yaml == PROJECT_ROOT / "feature_repo" / "feature_store.yaml"
    assert feast_store.get_store().config.online_store.type == "sqlite"


def test_an_unknown_profile_is_refused_naming_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("CANDLECAST_STORE_PROFILE", "redis")
    with pytest.raises(ValidationError) as err:
        Settings()
    assert "CANDLECAST_STORE_PROFILE='redis'" in str(err.value)
    assert "local or scale" in str(err.value)


@pytest.mark.parametrize(
    ("url", "connection"),
    [
        ("redis://127.0.0.1:6390/2", "127.0.0.1:6390,db=2"),
        ("redis://cache", "cache:6379,db=0"),
        ("redis://:s%40cret@cache:6380", "cache:6380,db=0,password=s@cret"),
        ("rediss://app:pw@cache:6380/1", "cache:6380,db=1,username=app,password=pw,ssl=true"),
    ],
)
def test_a_redis_url_becomes_feasts_connection_string(url, connection):
    assert redis_connection_string(url) == connection


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("127.0.0.1:6379", "expected redis://"),
        ("http://cache:6379", "expected redis://"),
        ("redis://cache:6379/zero", "must be numbers"),
        ("redis://:a,b@cache", "cannot carry"),
        ("redis://[::1]:6379", "IPv6"),
    ],
)
def test_a_redis_url_feast_could_not_use_is_refused_when_settings_load(monkeypatch, url, says):
    monkeypatch.setenv("CANDLECAST_REDIS_URL", url)
    with pytest.raises(ValidationError, match=says):
        Settings()


def test_the_scale_profile_opens_redis_at_the_url_with_bounded_waits(home, monkeypatch):
    monkeypatch.setenv("CANDLECAST_STORE_PROFILE", "scale")
    monkeypatch.setenv("CANDLECAST_REDIS_URL", "redis://127.0.0.1:6391/3")
    from candlecast.settings import reset_settings

    reset_settings()
    store = feast_store.get_store()
    online = store.config.online_store
    assert online.type == "redis" and online.key_ttl_seconds is None and online.skip_dedup
    nodes, params = type(store._get_provider().online_store)._parse_connection_string(
        online.connection_string
    )
    assert nodes == [{"host": "127.0.0.1", "port": "6391"}]
    assert params == {"db": 3, "socket_timeout": 1, "socket_connect_timeout": 1, "retry": None}
    assert store.config.registry.path == str(home / "feast" / "registry.db")  # shared
    assert feast_store.get_store("local").config.online_store.type == "sqlite"


class DownStore:
    """A Feast store on the scale profile whose Redis fails as redis-py does when it is down.

    ``probe``: the change token's HGETALL fails too (else it finds no row, so the
    Feast read is what fails).
    """

    def __init__(self, error: Exception, probe: bool = True) -> None:
        self.error = error
        online = SimpleNamespace(type="redis")
        self.config = SimpleNamespace(
            online_store=online, project="candlecast", entity_key_serialization_version=3
        )
        client = SimpleNamespace(hgetall=self.get_online_features if probe else lambda key: {})
        redis = SimpleNamespace(_get_client=lambda config: client)
        self._get_provider = lambda: SimpleNamespace(online_store=redis)

    def get_online_features(self, *_, **__):
        raise self.error


@pytest.mark.parametrize("probe", [True, False], ids=["token", "read"])
@pytest.mark.parametrize(
    "error", [RedisConnectionError("Connection refused"), RedisTimeoutError("Timeout reading")]
)
def test_a_redis_outage_is_features_unavailable_never_an_unexpected_error(settings, error, probe):
    from bentos.errors import FeaturesUnavailable
    from bentos.features import FeatureSource

    source = FeatureSource(DownStore(error, probe))
    source.reader = lambda service: feast_store.OnlineReader(["v:close"], source.store)
    assert source.cached("BTC-USD", None) is None  # never a network wait on the event loop
    with pytest.raises(FeaturesUnavailable) as err:
        source.live("BTC-USD", None)
    assert err.value.status == 503 and err.value.code == "features_unavailable"
    assert isinstance(err.value.__cause__, feast_store.OnlineStoreUnavailable)
    assert "redis" in err.value.message and str(error) in err.value.message


def test_other_errors_of_a_read_are_not_taken_for_an_outage(settings):
    with pytest.raises(KeyError):
        feast_store.OnlineReader(["v:close"], DownStore(KeyError("bug"))).read("BTC-USD")


def test_without_the_redis_package_no_error_is_taken_for_an_outage(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis.exceptions", None)  # importing it raises
    assert feast_store._outages() == ()


@pytest.mark.parametrize("package", ["candlecast", "bentos", "ingestion", "training"])
def test_nothing_imports_redis_at_module_level(package):
    """The image's bentofile installs feast[duckdb] alone: the local profile must import
    without the redis package (a subprocess proving it costs Feast's ~10 s import)."""
    for path in (PROJECT_ROOT / package).glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "redis" for n in names), path


def _scale(monkeypatch, **env: str):
    from candlecast.settings import reset_settings

    monkeypatch.setenv("CANDLECAST_STORE_PROFILE", "scale")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    return feast_store.get_store()


def test_the_scale_profile_reads_offline_through_ray_capped_and_materializes_with_ray(
    home, monkeypatch
):
    pytest.importorskip("ray", reason="the scale extra")
    from candlecast.settings import get_settings

    store = _scale(monkeypatch, CANDLECAST_RAY_NUM_CPUS="1")
    settings = get_settings()
    offline, engine = store.config.offline_store, store.config.batch_engine
    assert offline.type == "candlecast.ray_store.GlobRayOfflineStore"
    assert type(store._get_provider().offline_store).__name__ == "GlobRayOfflineStore"
    assert engine.type == "ray.engine" and engine.max_workers == 1
    for conf in (offline.ray_conf, engine.ray_conf):
        assert conf == {
            "address": "local",  # a new cluster, never one another user started
            "num_cpus": 1,
            "include_dashboard": False,
            "_temp_dir": str(settings.ray_temp_dir),
        }
    assert store.config.online_store.type == "redis"


def test_scale_ray_false_keeps_redis_with_duckdb_and_the_local_engine(home, monkeypatch):
    store = _scale(monkeypatch, CANDLECAST_SCALE_RAY="false")
    assert store.config.offline_store.type == "duckdb"
    assert store.config.batch_engine.type == "local"
    assert Path(store.repo_path) == PROJECT_ROOT / "feature_repo"
    assert store.config.online_store.type == "redis"
    assert store.config.registry.path == str(home / "feast" / "registry.db")


def test_rays_temp_dir_is_under_the_home_unless_its_sockets_would_not_fit(tmp_path):
    short = Settings(home=tmp_path.parent / "h")
    if len(str(short.home / "ray")) <= 44:
        assert short.ray_temp_dir == short.home / "ray"
    long = Settings(home=tmp_path / ("x" * 60))
    assert long.ray_temp_dir.name.startswith("candlecast-ray-")
    assert len(str(long.ray_temp_dir)) <= 44
    assert Settings(home=tmp_path / ("y" * 60)).ray_temp_dir != long.ray_temp_dir  # per home
