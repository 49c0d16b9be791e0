"""The one typed settings object for every stage.

Read lazily (``get_settings()``), never at import time, so tests can point
``CANDLECAST_HOME`` at a temporary directory before anything touches disk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Repository root (the folder holding ``feature_repo/``), resolved from this file
#: so nothing depends on the current working directory.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

StoreProfile = Literal["local", "scale"]
#: The Feast configuration of each store profile, inside the feature repo. The Feast
#: declarations (the repo's .py files) are the same for both; only the stores differ.
STORE_YAML: dict[str, str] = {"local": "feature_store.yaml", "scale": "feature_store.scale.yaml"}
#: The environment variable ``feature_store.scale.yaml`` expands into Feast's Redis
#: ``connection_string``; ``export_env`` derives it from ``CANDLECAST_REDIS_URL``.
REDIS_CONNECTION_ENV = "CANDLECAST_REDIS_CONNECTION"
#: The variables ``feature_store.scale.yaml`` expands into its Ray caps (``ray_conf``);
#: ``export_env`` derives them from ``ray_num_cpus`` and ``ray_temp_dir``.
RAY_CPUS_ENV, RAY_DIR_ENV = "CANDLECAST_RAY_CPUS", "CANDLECAST_RAY_TMP"
#: Ray puts its sockets under its temp dir (``<dir>/session_<stamp>/sockets/plasma_store``)
#: and refuses a Unix socket path over 107 bytes: a longer home gets a short /tmp dir.
RAY_DIR_MAX = 44


class Settings(BaseSettings):
    """Environment-driven configuration; every generated file lives under ``home``."""

    model_config = SettingsConfigDict(env_prefix="CANDLECAST_", extra="ignore")

    home: Path = Field(default=Path("data"), description="Root of all generated state.")
    coinbase_url: str = "https://api.exchange.coinbase.com"
    coinbase_requests_per_second: float = 5.0
    coinbase_max_attempts: int = 6
    coinbase_timeout_seconds: float = 10.0
    coinbase_backoff_base_seconds: float = 0.5
    coinbase_backoff_max_seconds: float = 30.0
    stale_after_seconds: int = 7200
    api_docs: bool = Field(
        default=True,
        description="Serve the API docs (/docs, Swagger UI from the service's own assets) "
        "and the OpenAPI document (/docs.json); false answers both with 404.",
    )
    serving_layout: Literal["inprocess", "split"] = Field(
        default="inprocess",
        description="Where the models run: 'inprocess' in each API worker (the default: no "
        "hop, fastest on a few cores), or 'split' in one BentoML model service per family, "
        "each its own process (scale the model services apart from the API).",
    )
    api_workers: int = Field(
        default_factory=lambda: min(2, os.cpu_count() or 1),
        ge=1,
        description="Worker processes of the prediction API (default: 2, or 1 on a "
        "one-core machine). One Python process tops out near 300 forecasts/s here; two "
        "reach ~500 on 2 cores, at the price of a second copy of the models and TensorFlow "
        "(~0.6 GB idle each).",
    )
    model_batching: bool = Field(
        default=True,
        description="Adaptive batching in the split layout's model services (false: each "
        "call runs at once; the dispatcher's wait for a batch is gone, and so is batching).",
    )
    reload_seconds: float = Field(
        default=5.0,
        description="How often the prediction service checks the model store for new "
        "champions and starts serving them, without a restart (0: keep the champions it "
        "started with).",
    )
    metrics_seconds: float = Field(
        default=60.0,
        description="How often each API worker refreshes the live-performance gauges on "
        "/metrics from the prediction log (0: only when GET /performance is served).",
    )
    feature_repo: Path = PROJECT_ROOT / "feature_repo"
    store_profile: StoreProfile = Field(
        default="local",
        description="Feast stores: 'local' (DuckDB offline, SQLite online: nothing to run) "
        "or 'scale' (Ray offline store and batch engine, Redis online at redis_url, shared "
        "by API replicas).",
    )
    scale_ray: bool = Field(
        default=True,
        description="The scale profile's offline store and materialization engine: Ray "
        "(true), or DuckDB and Feast's local engine (false: Redis alone, e.g. for API "
        "replicas, which only read online and need no Ray cluster).",
    )
    ray_num_cpus: int = Field(
        default=min(2, os.cpu_count() or 1),
        ge=1,
        description="CPUs of the local Ray cluster (Feast's Ray store and engine, the "
        "training fan-out): at most this many Ray workers run at once.",
    )
    ray_dir: Path | None = Field(
        default=None,
        description="Ray's temp dir (sessions, logs, sockets); default $CANDLECAST_HOME/ray, "
        "or a short /tmp/candlecast-ray-<hash> when that path is too long for Ray's sockets.",
    )
    executor: Literal["serial", "ray"] = Field(
        default="serial",
        description="How train and backtest run their (symbol, family) units: one after "
        "another in this process, or as tasks on the local Ray cluster.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="The scale profile's Redis online store: redis[s]://[[user]:password@]"
        "host[:port][/db].",
    )
    serve_symbols: str = Field(
        default="BTC-USD", description="Comma-separated symbols the prediction service serves."
    )
    serve_families: str = Field(
        default="lasso,cnn",
        description="Comma-separated model families the service serves (each needs a champion "
        "per served symbol); naive is always served.",
    )

    @field_validator("home", "feature_repo")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return Path(value).expanduser().resolve()

    @field_validator("store_profile", mode="before")
    @classmethod
    def _known_profile(cls, value: object) -> object:
        """Name the variable and the choices: pydantic's own message names neither well."""
        if value not in STORE_YAML:
            raise ValueError(
                f"CANDLECAST_STORE_PROFILE={value!r} is not a store profile; choose "
                f"{' or '.join(STORE_YAML)}"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_address(cls, value: str) -> str:
        redis_connection_string(value)  # raises ValueError on what Feast could not use
        return value

    @property
    def feature_store_yaml(self) -> Path:
        """The Feast configuration of the store profile (feature_repo/feature_store*.yaml)."""
        return self.feature_repo / STORE_YAML[self.store_profile]

    @property
    def redis_connection(self) -> str:
        """``redis_url`` in Feast's own ``connection_string`` form (``host:port,db=N,...``)."""
        return redis_connection_string(self.redis_url)

    @property
    def ray_temp_dir(self) -> Path:
        """Where the local Ray cluster keeps its sessions and logs (see ``RAY_DIR_MAX``)."""
        if self.ray_dir is not None:
            return Path(self.ray_dir).expanduser().resolve()
        under_home = self.home / "ray"
        if len(str(under_home)) <= RAY_DIR_MAX:
            return under_home
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"candlecast-ray-{digest}"

    @property
    def candles_dir(self) -> Path:
        return self.home / "candles"

    @property
    def features_dir(self) -> Path:
        return self.home / "features"

    @property
    def predictions_dir(self) -> Path:
        return self.home / "predictions"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def bentoml_home(self) -> Path:
        return Path(os.environ.get("BENTOML_HOME", self.home / "bentoml"))

    def export_env(self) -> None:
        """Publish paths for tools that read the environment (Feast's YAML, BentoML).

        ``feature_store.yaml`` expands ``${CANDLECAST_HOME}`` (and the scale profile's
        ``${CANDLECAST_REDIS_CONNECTION}`` and Ray caps); BentoML reads ``BENTOML_HOME`` when it is
        first imported, so call this before that.
        """
        os.environ["CANDLECAST_HOME"] = str(self.home)
        os.environ[REDIS_CONNECTION_ENV] = self.redis_connection
        os.environ[RAY_CPUS_ENV] = str(self.ray_num_cpus)
        os.environ[RAY_DIR_ENV] = str(self.ray_temp_dir)
        os.environ.setdefault("BENTOML_HOME", str(self.home / "bentoml"))


def redis_connection_string(url: str) -> str:
    """A ``redis://`` URL as Feast's Redis ``connection_string``: ``host:port,db=N,...``.

    Feast splits that string on commas and ``=``, so a password holding either cannot
    be passed through it; such a URL is refused here rather than misread later.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"CANDLECAST_REDIS_URL={url!r}: expected redis://host[:port][/db]")
    try:
        port = parts.port or 6379
        db = int(parts.path.strip("/") or 0)
    except ValueError:
        raise ValueError(
            f"CANDLECAST_REDIS_URL={url!r}: the port and the database must be numbers"
        ) from None
    if ":" in parts.hostname:  # Feast splits host:port on the colon
        raise ValueError(f"CANDLECAST_REDIS_URL={url!r}: Feast cannot take an IPv6 address")
    fields = [f"{parts.hostname}:{port}", f"db={db}"]
    for name, raw in (("username", parts.username), ("password", parts.password)):
        if raw:
            value = unquote(raw)
            if "," in value or "=" in value:
                raise ValueError(
                    f"CANDLECAST_REDIS_URL: the {name} holds ',' or '=', which Feast's "
                    "connection string cannot carry"
                )
            fields.append(f"{name}={value}")
    if parts.scheme == "rediss":
        fields.append("ssl=true")
    return ",".join(fields)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, built on first use."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
