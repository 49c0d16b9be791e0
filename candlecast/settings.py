"""The one typed settings object for every stage.

Read lazily (``get_settings()``), never at import time, so tests can point
``CANDLECAST_HOME`` at a temporary directory before anything touches disk.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Repository root (the folder holding ``feature_repo/``), resolved from this file
#: so nothing depends on the current working directory.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


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

        ``feature_store.yaml`` expands ``${CANDLECAST_HOME}``; BentoML reads
        ``BENTOML_HOME`` when it is first imported, so call this before that.
        """
        os.environ["CANDLECAST_HOME"] = str(self.home)
        os.environ.setdefault("BENTOML_HOME", str(self.home / "bentoml"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, built on first use."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
