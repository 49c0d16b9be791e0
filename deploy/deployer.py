"""The docker steps of one deployment: pull, record what runs, ``up -d``, wait, roll back.

Every command is an argument list (never a shell string), so nothing in a request can be
interpreted by a shell. The deployer never leaves the Pi without a working service when it can
help it: if the new image does not become ready, the digest that ran before is started again.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.config import DeployConfig

logger = logging.getLogger("candlecast.deploy")

#: Variable that ``deploy/pi/compose.yaml`` reads for the image of every service.
IMAGE_REF_VAR = "CANDLECAST_IMAGE_REF"
PULL_TIMEOUT_SECONDS = 1800.0
STEP_TIMEOUT_SECONDS = 300.0
_SECRET_VARS = ("CANDLECAST_DEPLOY_SECRET",)


class DeployInProgressError(Exception):
    """Another deployment holds the lock."""


class StepFailedError(Exception):
    """A docker command failed or the service did not become ready."""


@dataclass
class DeployResult:
    """What happened, as logged (one JSON line) and returned to the caller."""

    outcome: str  # "deployed" | "rolled_back" | "rollback_failed" | "failed"
    target: str
    previous: str | None = None
    rolled_back_to: str | None = None
    error: str | None = None
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "deployed"

    def to_dict(self) -> dict[str, object]:
        return {"event": "deploy", **asdict(self)}


def wait_ready(url: str, timeout: float, interval: float) -> bool:
    """Poll ``url`` until it answers 200 or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=min(5.0, max(timeout, 0.1))) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))


def write_state(path: Path, ref: str) -> None:
    """Atomically record the image ref compose starts on boot (the systemd unit reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{IMAGE_REF_VAR}={ref}\n")
    os.replace(tmp, path)


class Deployer:
    """Runs one deployment at a time against the compose project in ``config``."""

    def __init__(self, config: DeployConfig, docker: str = "docker") -> None:
        self.config = config
        self.docker = docker
        self._lock = threading.Lock()

    def deploy(self, image: str, tag: str) -> DeployResult:
        """Deploy ``image:tag``; raise DeployInProgressError if a deployment is running."""
        if not self._lock.acquire(blocking=False):
            raise DeployInProgressError("a deployment is already running")
        started = time.monotonic()
        try:
            result = self._deploy(f"{image}:{tag}")
        except Exception as exc:  # e.g. the state file is not writable: still log one line
            result = DeployResult("failed", f"{image}:{tag}", error=f"internal error: {exc!r}")
        finally:
            self._lock.release()
        result.duration_seconds = round(time.monotonic() - started, 3)
        logger.info(json.dumps(result.to_dict(), sort_keys=True))
        return result

    def _deploy(self, target: str) -> DeployResult:
        try:
            self._run(self._compose("pull"), target, PULL_TIMEOUT_SECONDS)
            previous = self.running_ref(target)
        except StepFailedError as exc:
            return DeployResult("failed", target, error=f"{exc}; nothing was changed")
        try:
            self._start(target)
        except StepFailedError as exc:
            return self._rollback(target, previous, str(exc))
        write_state(self.config.state_file, target)
        return DeployResult("deployed", target, previous=previous)

    def _start(self, ref: str) -> None:
        self._run(self._compose("up", "-d", "--remove-orphans"), ref, STEP_TIMEOUT_SECONDS)
        if not wait_ready(
            self.config.readyz_url, self.config.ready_timeout, self.config.poll_interval
        ):
            raise StepFailedError(
                f"{self.config.readyz_url} not ready within {self.config.ready_timeout:g} s"
            )

    def _rollback(self, target: str, previous: str | None, error: str) -> DeployResult:
        if previous is None:
            return DeployResult("failed", target, error=f"{error}; nothing to roll back to")
        try:
            self._start(previous)
        except StepFailedError as exc:
            write_state(self.config.state_file, previous)
            return DeployResult(
                "rollback_failed", target, previous, previous, f"{error}; rollback: {exc}"
            )
        write_state(self.config.state_file, previous)
        return DeployResult("rolled_back", target, previous, previous, error)

    def running_ref(self, target: str) -> str | None:
        """The repo digest (``repo@sha256:…``) of the running service, or None if none runs."""
        service = self.config.health_service
        # --all: a crashed (exited) container still tells which image to go back to.
        ids = self._run(self._compose("ps", "--all", "--quiet", service), target).split()
        if not ids:
            return None
        image_id = self._run([self.docker, "inspect", "--format", "{{.Image}}", ids[0]]).strip()
        listing = self._run(
            [self.docker, "image", "inspect", "--format", "{{json .RepoDigests}}", image_id]
        )
        digests = json.loads(listing or "null") or []
        prefix = self.config.repository + "@"
        return next((d for d in digests if d.startswith(prefix)), image_id or None)

    def _compose(self, *args: str) -> list[str]:
        config = self.config
        head = [self.docker, "compose", "--project-name", config.project]
        return [*head, "--file", str(config.compose_file), *args]

    def _run(
        self, argv: list[str], ref: str | None = None, timeout: float = STEP_TIMEOUT_SECONDS
    ) -> str:
        """Run ``argv`` without a shell and without the deploy secret in its environment."""
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_VARS}
        if ref is not None:
            env[IMAGE_REF_VAR] = ref
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StepFailedError(f"`{' '.join(argv)}` failed: {exc}") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()[-400:]
            raise StepFailedError(f"`{' '.join(argv)}` exited {proc.returncode}: {detail}")
        return proc.stdout
