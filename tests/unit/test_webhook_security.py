"""Every way to be refused by POST /hooks/deploy, over real HTTP on 127.0.0.1.

Each rejection must leave docker untouched, and the secret must never reach a log line.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_headers
from deploy.webhook import status_message
from tests.fakes.deploy_rig import (
    REPOSITORY,
    SECRET,
    Rig,
    deploy_rig,
    http_post,
    signed_post,
)

GOOD = {"image": REPOSITORY, "tag": "sha-0123abc"}


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> Iterator[Rig]:
    caplog.set_level(logging.DEBUG)
    with deploy_rig(tmp_path, monkeypatch) as rig:
        yield rig
    assert SECRET.decode() not in caplog.text


def _headers(body: bytes, **extra: str) -> dict[str, str]:
    return {"Content-Length": str(len(body)), **extra}


def test_unsigned_request_is_401(rig: Rig) -> None:
    body = json.dumps(GOOD).encode()
    status, payload = http_post(rig.address, body, _headers(body))
    assert status == 401
    assert payload == {"error": "invalid or missing signature"}
    assert rig.docker.calls() == []


def test_wrong_secret_is_401(rig: Rig) -> None:
    status, _ = signed_post(rig.address, b"another-secret-" + b"x" * 40, GOOD)
    assert status == 401
    assert rig.docker.calls() == []


def test_body_changed_after_signing_is_401(rig: Rig) -> None:
    signed = json.dumps(GOOD).encode()
    sent = json.dumps({**GOOD, "tag": "sha-evil"}).encode()
    headers = _headers(sent, **signed_headers(SECRET, signed))
    status, _ = http_post(rig.address, sent, headers)
    assert status == 401
    assert rig.docker.calls() == []


@pytest.mark.parametrize("age", [301, 3600, -120])  # too old (replay) or too far ahead
def test_stale_or_future_timestamp_is_401(rig: Rig, age: int) -> None:
    status, _ = signed_post(rig.address, SECRET, GOOD, now=time.time() - age)
    assert status == 401
    assert rig.docker.calls() == []


def test_same_signed_request_twice_is_a_replay(rig: Rig) -> None:
    rig.docker.slow("pull", 0.5)  # the replay arrives while the first deployment runs
    body = json.dumps(GOOD).encode()
    headers = _headers(body, **signed_headers(SECRET, body))
    status, accepted = http_post(rig.address, body, headers)
    assert status == 202 and accepted["status"] in ("queued", "running")
    assert http_post(rig.address, body, headers)[0] == 401  # not 409: refused before the lock
    _wait_finished(rig, accepted["status_url"])
    calls = len(rig.docker.calls())
    assert http_post(rig.address, body, headers)[0] == 401
    assert len(rig.docker.calls()) == calls


def _wait_finished(rig: Rig, path: str) -> None:
    """Poll the signed status until the deployment ends, so teardown finds it idle."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(*rig.address, timeout=30)
        connection.request("GET", path, headers=signed_headers(SECRET, status_message(path)))
        record = json.loads(connection.getresponse().read())
        connection.close()
        if record["status"] not in ("queued", "running"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} still running after 30 s")


def test_status_paths_are_refused_unsigned_before_anything_is_looked_up(rig: Rig) -> None:
    for path in ("/deployments/latest", "/deployments/" + "a" * 16, "/deployments/x"):
        connection = http.client.HTTPConnection(*rig.address, timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 401
        assert json.loads(response.read()) == {"error": "invalid or missing signature"}
        connection.close()


def test_signature_over_another_timestamp_is_401(rig: Rig) -> None:
    body = json.dumps(GOOD).encode()
    now = int(time.time())
    headers = _headers(
        body, **{TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(SECRET, now - 1, body)}
    )
    assert http_post(rig.address, body, headers)[0] == 401


def test_oversized_body_is_413_before_reading_it(rig: Rig) -> None:
    started = time.monotonic()
    # Announce 64 KiB + 1 and send nothing: reading first would hang until the socket timeout.
    status, _ = http_post(rig.address, b"", {"Content-Length": str(64 * 1024 + 1)})
    assert status == 413
    assert time.monotonic() - started < 5
    assert rig.docker.calls() == []


def test_missing_content_length_is_411(rig: Rig) -> None:
    status, _ = http_post(rig.address, b"", {})
    assert status == 411


def test_chunked_body_is_refused(rig: Rig) -> None:
    status, _ = http_post(rig.address, b"0\r\n\r\n", {"Transfer-Encoding": "chunked"})
    assert status == 411


@pytest.mark.parametrize(
    "payload",
    [
        {"image": "docker.io/evil/candlecast", "tag": "sha-0123abc"},
        {"image": REPOSITORY + "-other", "tag": "sha-0123abc"},
        {"image": REPOSITORY, "tag": "-rm"},
        {"image": REPOSITORY, "tag": "sha-1;reboot"},
        {"image": REPOSITORY, "tag": "sha-1\n"},
        {"image": REPOSITORY, "tag": 123},
        {"image": REPOSITORY, "tag": "sha-1", "command": "rm -rf /"},
        {"image": REPOSITORY},
        ["not", "an", "object"],
    ],
)
def test_bad_payload_is_400(rig: Rig, payload: object) -> None:
    status, answer = signed_post(rig.address, SECRET, payload)
    assert status == 400
    assert answer["error"]
    assert rig.docker.calls() == []


def test_signed_non_json_is_400(rig: Rig) -> None:
    body = b"\xff not json"
    status, _ = http_post(rig.address, body, _headers(body, **signed_headers(SECRET, body)))
    assert status == 400


def test_authentication_comes_before_validation(rig: Rig) -> None:
    """An unsigned request learns nothing about the configured repository."""
    body = json.dumps({"image": "docker.io/evil/x", "tag": "-x"}).encode()
    status, answer = http_post(rig.address, body, _headers(body))
    assert status == 401
    assert REPOSITORY not in json.dumps(answer)


def test_other_paths_and_methods(rig: Rig) -> None:
    body = json.dumps(GOOD).encode()
    headers = _headers(body, **signed_headers(SECRET, body))
    assert http_post(rig.address, body, headers, path="/hooks/deploy?x=1")[0] == 404
    assert http_post(rig.address, body, headers, path="/")[0] == 404
    assert rig.docker.calls() == []
