"""Deployments through the webhook with a fake docker: success, rollback, failures, 409."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.deploy_docker import repo_digest
from tests.fakes.deploy_rig import REPOSITORY, SECRET, Rig, deploy_rig, signed_post

pytestmark = pytest.mark.integration

OLD = f"{REPOSITORY}:sha-1111111"


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> Iterator[Rig]:
    caplog.set_level(logging.INFO, logger="candlecast.deploy")
    with deploy_rig(tmp_path, monkeypatch) as rig:
        yield rig


def _deploy(rig: Rig, tag: str) -> tuple[int, dict]:
    return signed_post(rig.address, SECRET, {"image": REPOSITORY, "tag": tag})


def _deploy_log(caplog) -> list[dict]:
    records = [r for r in caplog.records if r.name == "candlecast.deploy"]
    return [json.loads(r.getMessage()) for r in records]


def test_deploy_pulls_records_previous_digest_and_starts_new_image(rig: Rig, caplog) -> None:
    rig.docker.start_running(OLD)
    status, result = _deploy(rig, "sha-2222222")
    target = f"{REPOSITORY}:sha-2222222"
    assert status == 200
    assert result["outcome"] == "deployed"
    assert result["previous"] == repo_digest(OLD)
    assert rig.docker.running() == target
    verbs = [c["verb"] for c in rig.docker.calls()]
    assert verbs == ["pull", "ps", "inspect", "image inspect", "up"]
    pull, up = rig.docker.calls("pull")[0], rig.docker.calls("up")[0]
    assert pull["image_ref"] == up["image_ref"] == target
    assert up["argv"][:5] == [
        "compose",
        "--project-name",
        "candlecast",
        "--file",
        str(rig.config.compose_file),
    ]
    assert up["argv"][5:7] == ["up", "-d"]
    assert not any(c["secret_in_env"] for c in rig.docker.calls())
    assert rig.config.state_file.read_text() == f"CANDLECAST_IMAGE_REF={target}\n"
    (line,) = _deploy_log(caplog)
    assert line["event"] == "deploy" and line["outcome"] == "deployed"
    assert line["target"] == target and line["duration_seconds"] >= 0


def test_failed_health_check_rolls_back_to_recorded_digest(rig: Rig, caplog) -> None:
    rig.docker.start_running(OLD)
    status, result = _deploy(rig, "sha-broken")
    assert status == 500
    assert result["outcome"] == "rolled_back"
    assert result["rolled_back_to"] == repo_digest(OLD)
    assert "not ready" in result["error"]
    ups = rig.docker.calls("up")
    assert [c["image_ref"] for c in ups] == [f"{REPOSITORY}:sha-broken", repo_digest(OLD)]
    assert rig.docker.running() == repo_digest(OLD)  # and /readyz is green again
    assert rig.config.state_file.read_text() == f"CANDLECAST_IMAGE_REF={repo_digest(OLD)}\n"
    (line,) = _deploy_log(caplog)
    assert line["outcome"] == "rolled_back" and line["rolled_back_to"] == repo_digest(OLD)


def test_failed_first_deploy_reports_nothing_to_roll_back(rig: Rig) -> None:
    status, result = _deploy(rig, "sha-broken")
    assert status == 500
    assert result["outcome"] == "failed"
    assert "nothing to roll back to" in result["error"]
    assert len(rig.docker.calls("up")) == 1


@pytest.mark.parametrize(
    ("verb", "outcome", "ups"),
    [
        ("pull", "failed", 0),  # before anything changed: the old container keeps running
        ("up", "rollback_failed", 2),  # up fails, and so does the rollback's up
    ],
)
def test_failing_docker_step_is_reported(rig: Rig, verb: str, outcome: str, ups: int) -> None:
    rig.docker.start_running(OLD)
    rig.docker.fail(verb)
    status, result = _deploy(rig, "sha-3333333")
    assert status == 500
    assert result["outcome"] == outcome
    assert f"told to fail '{verb}'" in result["error"]
    assert len(rig.docker.calls("up")) == ups
    assert result["rolled_back_to"] == (repo_digest(OLD) if ups else None)
    assert rig.docker.running() == OLD


def test_concurrent_request_gets_409_and_lock_is_released(rig: Rig) -> None:
    rig.docker.start_running(OLD)
    rig.docker.slow("pull", 1.5)
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(r=_deploy(rig, "sha-5555555")))
    worker.start()
    deadline = time.monotonic() + 10
    while not rig.docker.calls("pull") and time.monotonic() < deadline:
        time.sleep(0.02)
    status, answer = _deploy(rig, "sha-6666666")
    worker.join(timeout=30)
    assert status == 409
    assert "already running" in answer["error"]
    assert first["r"][0] == 200
    assert [c["image_ref"] for c in rig.docker.calls("pull")] == [f"{REPOSITORY}:sha-5555555"]
    rig.docker.slow("pull", 0)
    assert _deploy(rig, "sha-6666666")[0] == 200


def _notify(rig: Rig, *extra: str) -> subprocess.CompletedProcess:
    url = f"http://{rig.address[0]}:{rig.address[1]}/hooks/deploy"
    args = ["--url", url, "--image", REPOSITORY, "--tag", "sha-7777777", *extra]
    command = [sys.executable, "-m", "deploy.notify", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_notify_cli_signs_like_the_webhook_expects(rig: Rig) -> None:
    """CD's notifier and the webhook share deploy.auth: a real round trip deploys."""
    proc = _notify(rig)
    assert proc.returncode == 0, proc.stderr
    assert '"outcome": "deployed"' in proc.stdout
    assert rig.docker.running() == f"{REPOSITORY}:sha-7777777"
    assert SECRET.decode() not in proc.stdout + proc.stderr


def test_notify_cli_needs_the_secret_in_the_environment(rig: Rig, monkeypatch) -> None:
    monkeypatch.delenv("CANDLECAST_DEPLOY_SECRET")
    proc = _notify(rig)
    assert proc.returncode == 2
    assert "CANDLECAST_DEPLOY_SECRET is not set" in proc.stderr
    assert rig.docker.calls() == []


def test_unexpected_error_is_still_reported_and_releases_the_lock(rig: Rig, caplog) -> None:
    rig.config.state_file.parent.mkdir(parents=True)
    rig.config.state_file.mkdir()  # a directory where the state file should go: cannot replace
    status, result = _deploy(rig, "sha-8888888")
    assert status == 500
    assert result["outcome"] == "failed" and "internal error" in result["error"]
    assert _deploy_log(caplog)[-1]["outcome"] == "failed"
    rig.config.state_file.rmdir()
    assert _deploy(rig, "sha-9999999")[0] == 200


def test_notify_cli_retries_while_a_deployment_runs(rig: Rig) -> None:
    """Two quick pushes: the second notification waits for the first deployment, then lands."""
    rig.docker.slow("pull", 1.0)
    first = threading.Thread(target=_deploy, args=(rig, "sha-5555555"))
    first.start()
    while not rig.docker.calls("pull"):
        time.sleep(0.02)
    proc = _notify(rig, "--retry-interval", "0.3", "--wait-busy", "30")
    first.join(timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("409 ")
    assert rig.docker.running() == f"{REPOSITORY}:sha-7777777"
