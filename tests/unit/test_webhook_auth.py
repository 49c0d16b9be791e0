"""Signing, verification, replay memory and deployer configuration (no network)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys

import pytest

from candlecast.settings import PROJECT_ROOT
from deploy import auth
from deploy.auth import AuthError, ReplayGuard, sign, signed_headers, verify
from deploy.config import TAG_PATTERN, ConfigError, compose_variables, load_config
from deploy.deployer import read_state, write_state

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
    assert config.rollback_ready_timeout == 42  # the image that ran before: the same wait
    env = {**BASE_ENV, "CANDLECAST_DEPLOY_READY_TIMEOUT": "60"}
    own = load_config({**env, "CANDLECAST_DEPLOY_ROLLBACK_TIMEOUT": "300"})
    assert (own.ready_timeout, own.rollback_ready_timeout) == (60, 300)
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
        ({"CANDLECAST_DEPLOY_ROLLBACK_TIMEOUT": "later"}, "ROLLBACK_TIMEOUT='later' is not"),
        ({"CANDLECAST_DEPLOY_COMPOSE": "  "}, "CANDLECAST_DEPLOY_COMPOSE is empty"),
        ({"CANDLECAST_DEPLOY_COMPOSE": "docker 'compose"}, "CANDLECAST_DEPLOY_COMPOSE="),
    ],
)
def test_config_errors_name_the_variable(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({**BASE_ENV, **override})


def test_compose_command_defaults_to_the_v2_plugin_and_is_split_without_a_shell() -> None:
    assert load_config(BASE_ENV).compose_command == ("docker", "compose")
    legacy = load_config({**BASE_ENV, "CANDLECAST_DEPLOY_COMPOSE": "docker-compose"})
    assert legacy.compose_command == ("docker-compose",)
    odd = load_config({**BASE_ENV, "CANDLECAST_DEPLOY_COMPOSE": "'/opt/my tools/dc' --ansi never"})
    assert odd.compose_command == ("/opt/my tools/dc", "--ansi", "never")
    injected = load_config({**BASE_ENV, "CANDLECAST_DEPLOY_COMPOSE": "docker compose; reboot"})
    assert injected.compose_command == ("docker", "compose;", "reboot")  # words, not a script


def test_compose_settings_are_the_candlecast_variables_compose_yaml_reads(tmp_path) -> None:
    """The real compose file: its settings, never the image ref or the deployer's own."""
    real = PROJECT_ROOT / "deploy" / "pi" / "compose.yaml"
    names = compose_variables(real)
    assert {"CANDLECAST_API_PORT", "CANDLECAST_COINBASE_URL"} <= names
    assert "CANDLECAST_IMAGE_REF" not in names
    assert not any(name.startswith("CANDLECAST_DEPLOY_") for name in names)
    env = {
        **BASE_ENV,
        "CANDLECAST_DEPLOY_COMPOSE_FILE": str(real),
        "CANDLECAST_API_PORT": "3100",
        "CANDLECAST_HOME": "/not/a/compose/variable",
    }
    config = load_config(env)
    assert config.compose_env == {"CANDLECAST_API_PORT": "3100"}
    assert config.readyz_url == "http://127.0.0.1:3100/readyz"  # follows the API's port
    explicit = load_config({**env, "CANDLECAST_DEPLOY_READYZ_URL": "http://127.0.0.1:9/readyz"})
    assert explicit.readyz_url == "http://127.0.0.1:9/readyz"
    escaped = tmp_path / "compose.yaml"
    escaped.write_text("a: $${CANDLECAST_LITERAL}\nb: ${CANDLECAST_X:-1}\n")
    assert compose_variables(escaped) == {"CANDLECAST_X"}
    assert compose_variables(tmp_path / "missing.yaml") == set()


def test_state_file_is_replaced_atomically_and_read_back(tmp_path) -> None:
    state = tmp_path / "var" / "deploy.env"
    write_state(
        state, {"CANDLECAST_IMAGE_REF": "r:1", "CANDLECAST_DEPLOY_COMPOSE": "docker compose"}
    )
    write_state(state, {"CANDLECAST_IMAGE_REF": "r@sha256:ab", "CANDLECAST_API_PORT": "3100"})
    assert read_state(state) == {
        "CANDLECAST_IMAGE_REF": "r@sha256:ab",
        "CANDLECAST_API_PORT": "3100",
    }
    assert sorted(p.name for p in state.parent.iterdir()) == ["deploy.env"]  # no temp file left
    with pytest.raises(ValueError, match="line break"):
        write_state(state, {"CANDLECAST_API_PORT": "1\nCANDLECAST_IMAGE_REF=evil"})
    assert read_state(state)["CANDLECAST_IMAGE_REF"] == "r@sha256:ab"


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
