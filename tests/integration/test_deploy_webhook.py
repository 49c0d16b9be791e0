"""Deployments through the webhook with a fake docker: success, rollback, failures, 409.

The webhook answers 202 with an id at once; each test then follows the deployment through
the signed ``GET /deployments/<id>`` until it ends, as ``deploy.notify`` does.
"""

from __future__ import annotations

import http.client
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from deploy import boot
from deploy.auth import signed_headers
from deploy.deployer import OUTCOMES, Deployer, read_state
from deploy.webhook import status_message
from tests.fakes.deploy_docker import repo_digest
from tests.fakes.deploy_rig import REPOSITORY, SECRET, Rig, deploy_rig, signed_post

pytestmark = pytest.mark.integration

OLD = f"{REPOSITORY}:sha-1111111"


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> Iterator[Rig]:
    caplog.set_level(logging.INFO, logger="candlecast.deploy")
    with deploy_rig(tmp_path, monkeypatch) as rig:
        yield rig


def signed_get(address: tuple[str, int], path: str, secret: bytes = SECRET) -> tuple[int, dict]:
    """GET ``path`` signed like ``deploy.notify`` signs status requests."""
    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.request("GET", path, headers=signed_headers(secret, status_message(path)))
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _wait_finished(rig: Rig, deployment_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, record = signed_get(rig.address, f"/deployments/{deployment_id}")
        assert status == 200, record
        if record["status"] in OUTCOMES:
            return record
        time.sleep(0.05)
    raise AssertionError(f"deployment {deployment_id} not finished after {timeout} s")


def _submit(rig: Rig, tag: str) -> tuple[int, dict]:
    return signed_post(rig.address, SECRET, {"image": REPOSITORY, "tag": tag})


def _deploy(rig: Rig, tag: str) -> tuple[int, dict]:
    """Submit and follow to the end: (the POST's status, the final record)."""
    status, accepted = _submit(rig, tag)
    if status != 202:
        return status, accepted
    return status, _wait_finished(rig, accepted["id"])


def _deploy_log(caplog) -> list[dict]:
    records = [r for r in caplog.records if r.name == "candlecast.deploy"]
    return [json.loads(r.getMessage()) for r in records]


def test_deploy_pulls_records_previous_digest_and_starts_new_image(rig: Rig, caplog) -> None:
    rig.docker.start_running(OLD)
    status, result = _deploy(rig, "sha-2222222")
    target = f"{REPOSITORY}:sha-2222222"
    assert status == 202
    assert result["status"] == result["outcome"] == "deployed"
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
    assert read_state(rig.config.state_file) == {
        "CANDLECAST_IMAGE_REF": target,
        "CANDLECAST_DEPLOY_COMPOSE": "docker compose",
        "CANDLECAST_DEPLOY_PROJECT": "candlecast",
        "CANDLECAST_DEPLOY_COMPOSE_FILE": str(rig.config.compose_file),
    }
    (line,) = _deploy_log(caplog)
    assert line["event"] == "deploy" and line["outcome"] == "deployed"
    assert line["id"] == result["id"]
    assert line["target"] == target and line["duration_seconds"] >= 0


def test_failed_health_check_rolls_back_to_recorded_digest(rig: Rig, caplog) -> None:
    rig.docker.start_running(OLD)
    status, result = _deploy(rig, "sha-broken")
    assert status == 202
    assert result["status"] == "rolled_back"
    assert result["rolled_back_to"] == repo_digest(OLD)
    assert "not ready" in result["error"]
    ups = rig.docker.calls("up")
    assert [c["image_ref"] for c in ups] == [f"{REPOSITORY}:sha-broken", repo_digest(OLD)]
    assert rig.docker.running() == repo_digest(OLD)  # and /readyz is green again
    assert read_state(rig.config.state_file)["CANDLECAST_IMAGE_REF"] == repo_digest(OLD)
    (line,) = _deploy_log(caplog)
    assert line["outcome"] == "rolled_back" and line["rolled_back_to"] == repo_digest(OLD)


def test_failed_first_deploy_reports_nothing_to_roll_back(rig: Rig) -> None:
    status, result = _deploy(rig, "sha-broken")
    assert status == 202
    assert result["status"] == "failed"
    assert "nothing to roll back to" in result["error"]
    assert not rig.config.state_file.exists()
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
    assert status == 202
    assert result["status"] == outcome
    assert f"told to fail '{verb}'" in result["error"]
    assert len(rig.docker.calls("up")) == ups
    assert result["rolled_back_to"] == (repo_digest(OLD) if ups else None)
    assert rig.docker.running() == OLD


def test_concurrent_request_gets_409_and_lock_is_released(rig: Rig) -> None:
    rig.docker.start_running(OLD)
    rig.docker.slow("pull", 1.5)
    started = time.monotonic()
    status, first = _submit(rig, "sha-5555555")
    assert status == 202 and time.monotonic() - started < 1.0  # answered before the pull ends
    status, answer = _submit(rig, "sha-6666666")
    assert status == 409
    assert "already running" in answer["error"]
    assert _wait_finished(rig, first["id"])["status"] == "deployed"
    assert [c["image_ref"] for c in rig.docker.calls("pull")] == [f"{REPOSITORY}:sha-5555555"]
    rig.docker.slow("pull", 0)
    assert _deploy(rig, "sha-6666666")[1]["status"] == "deployed"


def test_accepted_deployment_reports_queued_or_running_then_its_outcome(rig: Rig) -> None:
    rig.docker.start_running(OLD)
    rig.docker.slow("pull", 1.0)
    status, accepted = _submit(rig, "sha-4444444")
    assert status == 202
    assert accepted["status"] in ("queued", "running")
    assert accepted["status_url"] == f"/deployments/{accepted['id']}"
    assert accepted["target"] == f"{REPOSITORY}:sha-4444444" and accepted["outcome"] is None
    status, running = signed_get(rig.address, accepted["status_url"])
    assert status == 200 and running["status"] == "running"
    assert running["duration_seconds"] is None
    final = _wait_finished(rig, accepted["id"])
    assert final["previous"] == repo_digest(OLD) and final["error"] is None
    assert final["duration_seconds"] >= 1.0 and final["finished_at"]
    assert set(final) == set(running)  # the same keys at every stage
    assert signed_get(rig.address, "/deployments/latest")[1] == final


def test_status_needs_a_signature_and_a_known_id(rig: Rig) -> None:
    _, accepted = _deploy(rig, "sha-4444444")
    path = f"/deployments/{accepted['id']}"
    assert signed_get(rig.address, path, secret=b"w" * 40)[0] == 401
    connection = http.client.HTTPConnection(*rig.address, timeout=30)
    connection.request("GET", path)
    unsigned = connection.getresponse()
    assert unsigned.status == 401 and REPOSITORY not in unsigned.read().decode()
    connection.close()
    assert signed_get(rig.address, "/deployments/" + "0" * 16)[0] == 404
    assert signed_get(rig.address, "/deployments/../../etc")[0] == 404


def test_state_file_records_the_compose_settings_and_boot_starts_from_it_alone(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reboot: the deployer's environment is gone, the state file alone restarts the stack."""
    config = replace(rig.config, compose_env={"CANDLECAST_API_PORT": "3999"})
    target = f"{REPOSITORY}:sha-1212121"
    assert Deployer(config).deploy(REPOSITORY, "sha-1212121").outcome == "deployed"
    state = read_state(config.state_file)
    assert state["CANDLECAST_IMAGE_REF"] == target and state["CANDLECAST_API_PORT"] == "3999"
    assert SECRET.decode() not in config.state_file.read_text()
    argv, variables = boot.boot_command(state)
    compose = ["docker", "compose", "--project-name", "candlecast"]
    assert argv == [*compose, "--file", str(config.compose_file), "up", "-d", "--remove-orphans"]
    assert variables == {"CANDLECAST_IMAGE_REF": target, "CANDLECAST_API_PORT": "3999"}
    monkeypatch.delenv("CANDLECAST_DEPLOY_SECRET")
    monkeypatch.setenv("CANDLECAST_IMAGE_REF", "ignored:from-the-environment")
    assert boot.boot(config.state_file) == 0
    up = rig.docker.calls("up")[-1]
    assert up["argv"] == argv[1:]  # the fake records what follows `docker`
    assert up["image_ref"] == target
    assert boot.boot(config.state_file, "down") == 0
    assert rig.docker.calls()[-1]["verb"] == "down"


def test_boot_refuses_a_missing_or_empty_state_file(tmp_path: Path) -> None:
    assert boot.main(["--state-file", str(tmp_path / "none.env")]) == 2
    (tmp_path / "empty.env").write_text("# nothing yet\n")
    assert boot.main(["--state-file", str(tmp_path / "empty.env")]) == 2


def test_legacy_compose_command_is_used_for_every_compose_step(rig: Rig) -> None:
    """CANDLECAST_DEPLOY_COMPOSE=docker-compose: the same arguments after another argv[0]."""
    legacy = rig.docker.bin / "docker-compose"
    legacy.write_text(f'#!/bin/sh\nexec "{rig.docker.bin / "docker"}" compose "$@"\n')
    legacy.chmod(0o755)
    config = replace(rig.config, compose_command=("docker-compose",))
    rig.docker.start_running(OLD)
    assert Deployer(config).deploy(REPOSITORY, "sha-2323232").outcome == "deployed"
    assert [c["verb"] for c in rig.docker.calls()] == [
        "pull",
        "ps",
        "inspect",
        "image inspect",
        "up",
    ]
    assert read_state(config.state_file)["CANDLECAST_DEPLOY_COMPOSE"] == "docker-compose"
    argv, _ = boot.boot_command(read_state(config.state_file))
    assert argv[:3] == ["docker-compose", "--project-name", "candlecast"]


def _notify(rig: Rig, *extra: str, tag: str = "sha-7777777") -> subprocess.CompletedProcess:
    url = f"http://{rig.address[0]}:{rig.address[1]}/hooks/deploy"
    args = ["--url", url, "--image", REPOSITORY, "--tag", tag, *extra]
    command = [sys.executable, "-m", "deploy.notify", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_notify_cli_signs_like_the_webhook_expects(rig: Rig) -> None:
    """CD's notifier and the webhook share deploy.auth: a real round trip deploys."""
    proc = _notify(rig, "--poll-interval", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("202 ")
    assert '"status": "deployed"' in proc.stdout
    assert rig.docker.running() == f"{REPOSITORY}:sha-7777777"
    assert SECRET.decode() not in proc.stdout + proc.stderr


def test_notify_cli_needs_the_secret_in_the_environment(rig: Rig, monkeypatch) -> None:
    monkeypatch.delenv("CANDLECAST_DEPLOY_SECRET")
    proc = _notify(rig)
    assert proc.returncode == 2
    assert "CANDLECAST_DEPLOY_SECRET is not set" in proc.stderr
    assert rig.docker.calls() == []


def test_notify_cli_fails_when_the_deployment_is_rolled_back(rig: Rig) -> None:
    rig.docker.start_running(OLD)
    proc = _notify(rig, "--poll-interval", "0.1", tag="sha-broken")
    assert proc.returncode == 1
    assert '"status": "rolled_back"' in proc.stdout


def test_unexpected_error_is_still_reported_and_releases_the_lock(rig: Rig, caplog) -> None:
    rig.config.state_file.parent.mkdir(parents=True)
    rig.config.state_file.mkdir()  # a directory where the state file should go: cannot replace
    status, result = _deploy(rig, "sha-8888888")
    assert status == 202
    assert result["status"] == "failed" and "internal error" in result["error"]
    assert _deploy_log(caplog)[-1]["outcome"] == "failed"
    rig.config.state_file.rmdir()
    assert _deploy(rig, "sha-9999999")[1]["status"] == "deployed"


def test_notify_cli_retries_while_a_deployment_runs(rig: Rig) -> None:
    """Two quick pushes: the second notification waits for the first deployment, then lands."""
    rig.docker.slow("pull", 1.0)
    status, first = _submit(rig, "sha-5555555")
    assert status == 202
    proc = _notify(rig, "--retry-interval", "0.3", "--wait-busy", "30", "--poll-interval", "0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("409 ")
    assert _wait_finished(rig, first["id"])["status"] == "deployed"
    assert rig.docker.running() == f"{REPOSITORY}:sha-7777777"
