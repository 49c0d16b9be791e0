"""Deployer configuration, read from ``CANDLECAST_DEPLOY_*`` environment variables.

Kept apart from ``candlecast.settings`` on purpose: the deployer runs on the Pi host with the
system Python (no pydantic), and its secret must never be part of a settings object that other
stages print or dump.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Docker's tag grammar in ASCII (``\w`` would admit Unicode); the first character can be
#: neither ``-`` nor ``.``, so a tag can never be read as a command-line option.
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
#: ``[registry[:port]/]path/name``, lowercase, as Docker requires for repositories.
REPOSITORY_PATTERN = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
MIN_SECRET_BYTES = 32
MAX_BODY_BYTES = 64 * 1024


class ConfigError(Exception):
    """The deployer cannot run with this environment; the message says what to set."""


@dataclass(frozen=True)
class DeployConfig:
    """Everything the deployer needs; ``secret`` is excluded from ``repr``."""

    secret: bytes = field(repr=False)
    repository: str
    compose_file: Path
    project: str = "candlecast"
    state_file: Path = Path("/var/lib/candlecast/deploy.env")
    readyz_url: str = "http://127.0.0.1:3000/readyz"
    ready_timeout: float = 300.0
    poll_interval: float = 2.0
    health_service: str = "api"


def _require(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: {hint}")
    return value


def load_config(env: Mapping[str, str] | None = None) -> DeployConfig:
    """Build the config from ``env`` (default ``os.environ``); raise ConfigError if incomplete."""
    env = os.environ if env is None else env
    secret = _require(
        env, "CANDLECAST_DEPLOY_SECRET", "generate one with `openssl rand -hex 32`"
    ).encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"CANDLECAST_DEPLOY_SECRET is shorter than {MIN_SECRET_BYTES} characters; "
            "generate one with `openssl rand -hex 32`"
        )
    repository = _require(env, "CANDLECAST_DEPLOY_IMAGE", "e.g. ghcr.io/OWNER/candlecast")
    if not REPOSITORY_PATTERN.fullmatch(repository):
        raise ConfigError(f"CANDLECAST_DEPLOY_IMAGE={repository!r} is not an image repository")
    compose = _require(env, "CANDLECAST_DEPLOY_COMPOSE_FILE", "path of deploy/pi/compose.yaml")
    timeout = env.get("CANDLECAST_DEPLOY_READY_TIMEOUT", "300")
    try:
        ready_timeout = float(timeout)
    except ValueError:
        raise ConfigError(f"CANDLECAST_DEPLOY_READY_TIMEOUT={timeout!r} is not a number") from None
    return DeployConfig(
        secret=secret,
        repository=repository,
        compose_file=Path(compose),
        project=env.get("CANDLECAST_DEPLOY_PROJECT", "candlecast"),
        state_file=Path(env.get("CANDLECAST_DEPLOY_STATE_FILE", DeployConfig.state_file)),
        readyz_url=env.get("CANDLECAST_DEPLOY_READYZ_URL", DeployConfig.readyz_url),
        ready_timeout=ready_timeout,
    )
