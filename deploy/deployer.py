"""The docker steps of one deployment: pull, record what runs, ``up -d``, wait, roll back.

Every command is an argument list (never a shell string), so nothing in a request can be
interpreted by a shell. The deployer never leaves the Pi without a working service when it can
help it: if the new image does not become ready, the digest that ran before is started again.

A deployment takes minutes (a pull, then up to ``ready_timeout`` for ``/readyz``), longer than
a proxy or CI keeps a request open, so the webhook starts it with :meth:`Deployer.submit`,
which returns at once, and reports it from :meth:`Deployer.status`.

Compose sees only the variables the deployer sets (the image ref and ``config.compose_env``),
and the state file records exactly those: ``deploy.boot`` starts the same stack from it alone.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from deploy.config import DeployConfig

logger = logging.getLogger("candlecast.deploy")

#: Variable that ``deploy/pi/compose.yaml`` reads for the image of every service.
IMAGE_REF_VAR = "CANDLECAST_IMAGE_REF"
#: State-file entries that say how to run compose (for ``deploy.boot``), not compose variables.
COMPOSE_VAR, PROJECT_VAR, COMPOSE_FILE_VAR = (
    "CANDLECAST_DEPLOY_COMPOSE",
    "CANDLECAST_DEPLOY_PROJECT",
    "CANDLECAST_DEPLOY_COMPOSE_FILE",
)
PULL_TIMEOUT_SECONDS = 1800.0
STEP_TIMEOUT_SECONDS = 300.0
#: Deployments whose status the deployer remembers (in memory; a restart forgets them).
KEEP_DEPLOYMENTS = 50
#: Terminal states; before them a deployment is "queued", then "running".
OUTCOMES = ("deployed", "rolled_back", "rollback_failed", "failed")


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


def write_state(path: Path, variables: Mapping[str, str]) -> None:
    """Atomically write ``NAME=value`` lines: a reboot reads either the old or the new file.

    The temporary file is flushed to disk before the rename, so a power cut (a Pi's usual
    "reboot") cannot leave an empty state file behind a successful deployment.
    """
    for name, value in variables.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"{name}: a state-file value cannot contain a line break")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    lines = "".join(f"{name}={value}\n" for name, value in variables.items())
    with open(tmp, "w") as handle:
        handle.write("# Written by the candlecast deployer after each deployment; read on boot.\n")
        handle.write(lines)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of a state file (comments and blank lines skipped)."""
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            entries[name.strip()] = value
    return entries


def compose_process_env(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ``CANDLECAST_*`` (the secret among them), plus
    ``variables``: compose sees the same settings when deploying and when booting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLECAST_")}
    return {**env, **variables, **compose_profiles(variables)}


def compose_profiles(variables: Mapping[str, str]) -> dict[str, str]:
    """``COMPOSE_PROFILES=scale`` (the ``redis`` service) when the stack uses the scale
    profile's Redis online store; otherwise none (compose starts only api and ingest)."""
    if variables.get("CANDLECAST_STORE_PROFILE", "").strip().lower() == "scale":
        return {"COMPOSE_PROFILES": "scale"}
    return {}


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Deployment:
    """One requested deployment, as ``GET /deployments/<id>`` reports it."""

    id: str
    target: str
    status: str = "queued"  # "queued" | "running" | one of OUTCOMES
    requested_at: str = field(default_factory=utc_now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    result: DeployResult | None = None

    def to_dict(self) -> dict[str, object]:
        """Always the same keys; the DeployResult fields are null until the outcome is known."""
        result = self.result or DeployResult(outcome="", target=self.target)
        fields = {**asdict(result), "outcome": result.outcome or None}
        if self.result is None:
            fields["duration_seconds"] = None
        times = {"requested_at": self.requested_at, "started_at": self.started_at}
        return {
            "id": self.id,
            "status": self.status,
            **fields,
            **times,
            "finished_at": self.finished_at,
        }


class Deployer:
    """Runs one deployment at a time against the compose project in ``config``."""

    def __init__(self, config: DeployConfig, docker: str = "docker") -> None:
        self.config = config
        self.docker = docker
        self._lock = threading.Lock()
        self._records_lock = threading.Lock()
        self._records: OrderedDict[str, Deployment] = OrderedDict()

    def deploy(self, image: str, tag: str) -> DeployResult:
        """Deploy ``image:tag`` and wait; raise DeployInProgressError if one is running."""
        deployment = self._claim(image, tag)
        self._run_deployment(deployment)
        assert deployment.result is not None
        return deployment.result

    def submit(self, image: str, tag: str) -> Deployment:
        """Start deploying ``image:tag`` in a background thread and return at once.

        Raises DeployInProgressError (before any thread starts) if a deployment is running.
        """
        deployment = self._claim(image, tag)
        worker = threading.Thread(
            target=self._run_deployment, args=(deployment,), name=f"deploy-{deployment.id}"
        )
        worker.daemon = True  # a stopping deployer does not wait for a pull
        try:
            worker.start()
        except RuntimeError:  # no thread to be had: do not keep the lock forever
            self._lock.release()
            raise
        return deployment

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no deployment runs (tests, and a deployer that stops cleanly)."""
        if not self._lock.acquire(timeout=timeout):
            return False
        self._lock.release()
        return True

    def status(self, deployment_id: str) -> dict[str, object] | None:
        """The record of ``deployment_id`` ("latest": the newest), or None if unknown."""
        with self._records_lock:
            if deployment_id == "latest":
                record = next(reversed(self._records.values()), None)
            else:
                record = self._records.get(deployment_id)
            return None if record is None else record.to_dict()

    def _claim(self, image: str, tag: str) -> Deployment:
        """Take the lock and register a queued deployment; the lock is released when it ends."""
        if not self._lock.acquire(blocking=False):
            raise DeployInProgressError("a deployment is already running")
        deployment = Deployment(id=uuid.uuid4().hex[:16], target=f"{image}:{tag}")
        with self._records_lock:
            self._records[deployment.id] = deployment
            while len(self._records) > KEEP_DEPLOYMENTS:
                self._records.popitem(last=False)
        return deployment

    def _run_deployment(self, deployment: Deployment) -> None:
        """Run a claimed deployment to its outcome, log one line, release the lock."""
        started = time.monotonic()
        with self._records_lock:
            deployment.status, deployment.started_at = "running", utc_now_iso()
        try:
            result = self._deploy(deployment.target)
        except Exception as exc:  # e.g. the state file is not writable: still log one line
            result = DeployResult("failed", deployment.target, error=f"internal error: {exc!r}")
        result.duration_seconds = round(time.monotonic() - started, 3)
        logger.info(json.dumps({**result.to_dict(), "id": deployment.id}, sort_keys=True))
        with self._records_lock:
            # Free before the outcome shows: a client that saw it may submit the next one at
            # once (a submit between the two lines waits here to register).
            self._lock.release()
            deployment.result, deployment.finished_at = result, utc_now_iso()
            deployment.status = result.outcome

    def _deploy(self, target: str) -> DeployResult:
        try:
            self._run(self._compose("pull"), target, PULL_TIMEOUT_SECONDS)
            previous = self.running_ref(target)
        except StepFailedError as exc:
            return DeployResult("failed", target, error=f"{exc}; nothing was changed")
        try:
            self._start(target, self.config.ready_timeout)
        except StepFailedError as exc:
            return self._rollback(target, previous, str(exc))
        self.record(target)
        return DeployResult("deployed", target, previous=previous)

    def _start(self, ref: str, timeout: float) -> None:
        self._run(self._compose("up", "-d", "--remove-orphans"), ref, STEP_TIMEOUT_SECONDS)
        if not wait_ready(self.config.readyz_url, timeout, self.config.poll_interval):
            raise StepFailedError(f"{self.config.readyz_url} not ready within {timeout:g} s")

    def _rollback(self, target: str, previous: str | None, error: str) -> DeployResult:
        if previous is None:
            return DeployResult("failed", target, error=f"{error}; nothing to roll back to")
        try:
            self._start(previous, self.config.rollback_ready_timeout)
        except StepFailedError as exc:
            self.record(previous)
            return DeployResult(
                "rollback_failed", target, previous, previous, f"{error}; rollback: {exc}"
            )
        self.record(previous)
        return DeployResult("rolled_back", target, previous, previous, error)

    def compose_variables(self, ref: str) -> dict[str, str]:
        """Everything compose reads for ``ref``: the image ref and the configured settings."""
        return {IMAGE_REF_VAR: ref, **self.config.compose_env}

    def record(self, ref: str) -> None:
        """Write the state file: what compose ran ``ref`` with, and how to run compose."""
        config = self.config
        how = {
            COMPOSE_VAR: shlex.join(config.compose_command),
            PROJECT_VAR: config.project,
            COMPOSE_FILE_VAR: str(config.compose_file),
        }
        write_state(config.state_file, {**self.compose_variables(ref), **how})

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
        return compose_argv(config.compose_command, config.project, config.compose_file, *args)

    def _run(
        self, argv: list[str], ref: str | None = None, timeout: float = STEP_TIMEOUT_SECONDS
    ) -> str:
        """Run ``argv`` without a shell and without the deploy secret in its environment."""
        env = compose_process_env(self.compose_variables(ref) if ref is not None else {})
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


def compose_argv(
    command: tuple[str, ...], project: str, compose_file: Path, *args: str
) -> list[str]:
    """``<compose> --project-name P --file F args…``: the same for v2 and docker-compose 1.29."""
    return [*command, "--project-name", project, "--file", str(compose_file), *args]
