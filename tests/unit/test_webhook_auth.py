"""Signing, verification, replay memory and deployer configuration (no network)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys

import pytest

from deploy import auth
from deploy.auth import AuthError, ReplayGuard, sign, signed_headers, verify
from deploy.config import TAG_PATTERN, ConfigError, load_config

SECRET = b"s" * 40
BODY = b'{"image":"ghcr.io/acme/candlecast","tag":"sha-0123abc"}'
NOW = 1_750_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"%d.%s" % (NOW, BODY), hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == "sha256=" + expected


def test_signed_headers_verify() -> None:
    headers = signed_headers(SECRET, BODY, now=NOW)
    timestamp = verify(
        SECRET, headers[auth.TIMESTAMP_HEADER], headers[auth.SIGNATURE_HEADER], BODY, now=NOW
    )
    assert timestamp == NOW


@pytest.mark.parametrize(
    ("secret", "timestamp", "signature", "body", "reason"),
    [
        (b"t" * 40, str(NOW), None, BODY, "mismatch"),  # signed with another secret
        (SECRET, str(NOW), None, BODY + b" ", "mismatch"),  # body changed after signing
        (SECRET, str(NOW + 1), sign(SECRET, NOW, BODY), BODY, "mismatch"),  # time changed
        (SECRET, str(NOW), "sha256=" + "0" * 64, BODY, "mismatch"),
        (SECRET, str(NOW), "", BODY, "signature header"),
        (SECRET, str(NOW), "sha256=é", BODY, "signature header"),
        (SECRET, None, None, BODY, "timestamp header"),
        (SECRET, "12.5", None, BODY, "timestamp header"),
        (SECRET, "-5", None, BODY, "timestamp header"),
        (SECRET, "١٢٣", None, BODY, "timestamp header"),  # Unicode digits are not ASCII
        (SECRET, str(NOW - 301), None, BODY, "replay"),
        (SECRET, str(NOW + 61), None, BODY, "ahead"),
    ],
)
def test_verify_rejects(secret, timestamp, signature, body, reason) -> None:
    if signature is None and timestamp is not None and timestamp.lstrip("-").isdigit():
        signature = sign(secret, int(timestamp), BODY)
    with pytest.raises(AuthError, match=reason):
        verify(SECRET, timestamp, signature, body, now=NOW)


def test_window_edges_are_accepted() -> None:
    for timestamp in (NOW - 300, NOW + 60):
        assert verify(SECRET, str(timestamp), sign(SECRET, timestamp, BODY), BODY, now=NOW)


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return original(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    verify(SECRET, str(NOW), sign(SECRET, NOW, BODY), BODY, now=NOW)
    assert len(seen) == 1


def test_replay_guard_accepts_each_signature_once_per_window() -> None:
    guard = ReplayGuard(window_seconds=360)
    guard.check_and_remember("sha256=aa", now=NOW)
    guard.check_and_remember("sha256=bb", now=NOW)
    with pytest.raises(AuthError, match="already used"):
        guard.check_and_remember("sha256=aa", now=NOW + 100)
    guard.check_and_remember("sha256=aa", now=NOW + 400)  # forgotten after the window


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("sha-0123456789abcdef", True),
        ("v1.2.3", True),
        ("latest", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("-rm", False),  # would read as an option
        (".hidden", False),
        ("sha-1\n", False),
        ("sha 1", False),
        ("tag;reboot", False),
        ("täg", False),
        ("", False),
    ],
)
def test_tag_pattern(tag: str, ok: bool) -> None:
    assert bool(TAG_PATTERN.fullmatch(tag)) is ok


BASE_ENV = {
    "CANDLECAST_DEPLOY_SECRET": "x" * 64,
    "CANDLECAST_DEPLOY_IMAGE": "ghcr.io/acme/candlecast",
    "CANDLECAST_DEPLOY_COMPOSE_FILE": "/opt/candlecast/deploy/pi/compose.yaml",
}


def test_config_reads_environment_and_hides_secret() -> None:
    config = load_config({**BASE_ENV, "CANDLECAST_DEPLOY_READY_TIMEOUT": "42"})
    assert config.repository == "ghcr.io/acme/candlecast"
    assert config.ready_timeout == 42
    assert "x" * 64 not in repr(config)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"CANDLECAST_DEPLOY_SECRET": ""}, "CANDLECAST_DEPLOY_SECRET is not set"),
        ({"CANDLECAST_DEPLOY_SECRET": "short"}, "shorter than 32"),
        ({"CANDLECAST_DEPLOY_IMAGE": ""}, "CANDLECAST_DEPLOY_IMAGE is not set"),
        ({"CANDLECAST_DEPLOY_IMAGE": "Ghcr.io/Acme"}, "not an image repository"),
        ({"CANDLECAST_DEPLOY_COMPOSE_FILE": ""}, "COMPOSE_FILE is not set"),
        ({"CANDLECAST_DEPLOY_READY_TIMEOUT": "soon"}, "not a number"),
    ],
)
def test_config_errors_name_the_variable(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({**BASE_ENV, **override})


def test_server_refuses_to_start_without_secret() -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != "CANDLECAST_DEPLOY_SECRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.webhook", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "CANDLECAST_DEPLOY_SECRET is not set" in proc.stderr
    assert "Traceback" not in proc.stderr
