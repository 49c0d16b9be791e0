"""``python -m deploy.boot --state-file F [up|down]``: start the stack from the state file alone.

``candlecast-compose.service`` runs this on boot. The deployer's state file records the image
ref of the last good deployment, every ``CANDLECAST_*`` setting it passed to compose (the API
port, the exchange URL, …) and how it ran compose (command, project, compose file), so the
stack comes back exactly as the deployer left it, without the deployer's own env file (which
holds the secret). Nothing is pulled or waited for: the image is local since it was deployed,
and Docker's restart policy and healthchecks take over once ``up -d`` returns.

Standard library only, like the deployer: the Pi runs it with the system Python.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
from pathlib import Path

from deploy.config import DEFAULT_COMPOSE
from deploy.deployer import (
    COMPOSE_FILE_VAR,
    COMPOSE_VAR,
    IMAGE_REF_VAR,
    PROJECT_VAR,
    STEP_TIMEOUT_SECONDS,
    compose_argv,
    compose_process_env,
    read_state,
)

logger = logging.getLogger("candlecast.boot")
DEFAULT_STATE_FILE = Path("/var/lib/candlecast/deploy.env")
#: A state file written before it recorded the compose file: the checkout's own.
DEFAULT_COMPOSE_FILE = Path(__file__).resolve().parent / "pi" / "compose.yaml"
_ACTIONS = {"up": ("up", "-d", "--remove-orphans"), "down": ("down",)}


class BootError(Exception):
    """The state file is missing or does not name an image."""


def boot_command(state: dict[str, str], action: str = "up") -> tuple[list[str], dict[str, str]]:
    """``(argv, compose variables)`` that run ``action`` for the stack ``state`` describes."""
    if not state.get(IMAGE_REF_VAR):
        raise BootError(f"the state file sets no {IMAGE_REF_VAR}")
    how = (COMPOSE_VAR, PROJECT_VAR, COMPOSE_FILE_VAR)
    command = tuple(shlex.split(state[COMPOSE_VAR])) if state.get(COMPOSE_VAR) else DEFAULT_COMPOSE
    project = state.get(PROJECT_VAR) or "candlecast"
    compose_file = Path(state.get(COMPOSE_FILE_VAR) or DEFAULT_COMPOSE_FILE)
    variables = {name: value for name, value in state.items() if name not in how}
    return compose_argv(command, project, compose_file, *_ACTIONS[action]), variables


def boot(state_file: Path, action: str = "up", timeout: float = STEP_TIMEOUT_SECONDS) -> int:
    """Run compose ``action`` from ``state_file`` alone; return compose's exit code."""
    try:
        state = read_state(state_file)
    except OSError as exc:
        raise BootError(f"cannot read {state_file}: {exc}") from None
    argv, variables = boot_command(state, action)
    logger.info("%s (%s=%s)", shlex.join(argv), IMAGE_REF_VAR, variables[IMAGE_REF_VAR])
    try:
        proc = subprocess.run(argv, env=compose_process_env(variables), timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.error("`%s` failed: %s", shlex.join(argv), exc)
        return 1
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.boot",
        description="Start (up -d) or stop (down, keeping the volume) the candlecast stack "
        "with the image and settings the deployer last recorded in its state file.",
    )
    parser.add_argument(
        "--state-file", type=Path, default=DEFAULT_STATE_FILE, help="default: %(default)s"
    )
    parser.add_argument("action", nargs="?", choices=sorted(_ACTIONS), default="up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return boot(args.state_file, args.action)
    except BootError as exc:
        print(f"error: {exc} (a successful deployment writes it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
