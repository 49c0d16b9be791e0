"""Deployer configuration, read from ``CANDLECAST_DEPLOY_*`` environment variables.

Kept apart from ``candlecast.settings`` on purpose: the deployer runs on the Pi host with the
system Python (no pydantic), and its secret must never be part of a settings object that other
stages print or dump.
"""

from __future__ import annotations

import os
import re
import shlex
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
#: ``docker compose`` (the v2 plugin, as on a current Pi); ``docker-compose`` for legacy 1.29.
DEFAULT_COMPOSE = ("docker", "compose")
#: Variables that ``compose.yaml`` interpolates (``${NAME}``, ``${NAME:-default}``, …), but not
#: ``$${NAME}``, compose's escape for a literal ``$``.
_COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{(CANDLECAST_[A-Z0-9_]+)")
#: Never handed to compose nor recorded: the deployer's own settings, the secret among them.
_DEPLOYER_PREFIX = "CANDLECAST_DEPLOY_"


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
    #: How long the image that ran before gets to be ready again (None: ``ready_timeout``).
    #: It is known to work, so a short ``ready_timeout`` for new images need not cut it off.
    rollback_timeout: float | None = None
    poll_interval: float = 2.0
    health_service: str = "api"
    #: argv prefix of the compose command, from ``CANDLECAST_DEPLOY_COMPOSE`` (shlex-split).
    compose_command: tuple[str, ...] = DEFAULT_COMPOSE
    #: The ``CANDLECAST_*`` settings compose.yaml reads (e.g. ``CANDLECAST_API_PORT``) that
    #: the deployer's environment sets: passed to every compose call and kept in the state
    #: file, so a reboot starts the stack exactly as the last deployment did.
    compose_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def rollback_ready_timeout(self) -> float:
        return self.ready_timeout if self.rollback_timeout is None else self.rollback_timeout


def _require(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: {hint}")
    return value


def compose_variables(compose_file: Path) -> set[str]:
    """The ``CANDLECAST_*`` names ``compose_file`` interpolates (none if it is unreadable).

    Read from the file itself so that a setting added to compose.yaml is passed and recorded
    without a list here to keep in step; the image ref and the deployer's own variables are
    left out (the deployer sets the one, the other never reaches compose).
    """
    try:
        text = compose_file.read_text()
    except OSError:
        return set()
    names = set(_COMPOSE_VARIABLE.findall(text)) - {"CANDLECAST_IMAGE_REF"}
    return {name for name in names if not name.startswith(_DEPLOYER_PREFIX)}


def parse_compose_command(value: str) -> tuple[str, ...]:
    """``"docker-compose"`` -> ``("docker-compose",)``: shlex words, never a shell string."""
    try:
        argv = tuple(shlex.split(value))
    except ValueError as exc:
        raise ConfigError(f"CANDLECAST_DEPLOY_COMPOSE={value!r}: {exc}") from None
    if not argv:
        raise ConfigError("CANDLECAST_DEPLOY_COMPOSE is empty: e.g. `docker compose`")
    return argv


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
    ready_timeout = _seconds(env, "CANDLECAST_DEPLOY_READY_TIMEOUT", "300")
    rollback = env.get("CANDLECAST_DEPLOY_ROLLBACK_TIMEOUT", "").strip()
    rollback_timeout = _seconds(env, "CANDLECAST_DEPLOY_ROLLBACK_TIMEOUT") if rollback else None
    compose_env = {
        name: env[name] for name in sorted(compose_variables(Path(compose))) if name in env
    }
    for name, value in compose_env.items():
        if "\n" in value or "\r" in value:
            raise ConfigError(f"{name} contains a line break")
    return DeployConfig(
        secret=secret,
        repository=repository,
        compose_file=Path(compose),
        project=env.get("CANDLECAST_DEPLOY_PROJECT", "candlecast"),
        state_file=Path(env.get("CANDLECAST_DEPLOY_STATE_FILE", DeployConfig.state_file)),
        readyz_url=env.get("CANDLECAST_DEPLOY_READYZ_URL", _default_readyz(compose_env)),
        ready_timeout=ready_timeout,
        rollback_timeout=rollback_timeout,
        compose_command=parse_compose_command(
            env.get("CANDLECAST_DEPLOY_COMPOSE", "docker compose")
        ),
        compose_env=compose_env,
    )


def _seconds(env: Mapping[str, str], name: str, default: str = "") -> float:
    value = env.get(name, default)
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None


def _default_readyz(compose_env: Mapping[str, str]) -> str:
    """``/readyz`` on the port compose gives the API (``CANDLECAST_API_PORT``, default 3000)."""
    port = compose_env.get("CANDLECAST_API_PORT")
    return DeployConfig.readyz_url if not port else f"http://127.0.0.1:{port}/readyz"
