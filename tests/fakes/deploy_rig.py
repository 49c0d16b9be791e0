"""Test rig for the deployer: fake docker on PATH, fake /readyz, the real webhook on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.auth import signed_headers
from deploy.config import DeployConfig
from deploy.deployer import Deployer
from deploy.webhook import DeployServer
from tests.fakes import deploy_docker
from tests.fakes.deploy_docker import image_id

if TYPE_CHECKING:
    import pytest


class FakeDocker:
    """Test-side handle: installs the wrapper, reads the record, injects failures."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.state = root / "state"
        self.bin.mkdir(parents=True)
        self.state.mkdir(parents=True)
        wrapper = self.bin / "docker"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{deploy_docker.__file__}" "$@"\n')
        wrapper.chmod(0o755)

    def env(self) -> dict[str, str]:
        """Environment entries that put this fake first on PATH."""
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_DOCKER_STATE": str(self.state),
        }

    def calls(self, verb: str | None = None) -> list[dict]:
        path = self.state / "calls.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        records = [json.loads(line) for line in lines]
        return [r for r in records if verb is None or r["verb"] == verb]

    def fail(self, *verbs: str) -> None:
        (self.state / "fail").write_text("\n".join(verbs))

    def slow(self, verb: str, seconds: float) -> None:
        (self.state / f"slow-{verb.replace(' ', '-')}").write_text(str(seconds))

    def start_running(self, ref: str) -> None:
        """Pretend ``ref`` was deployed before the test."""
        (self.state / "running").write_text(ref)
        (self.state / "images.json").write_text(json.dumps({image_id(ref): ref}))

    def running(self) -> str | None:
        path = self.state / "running"
        return path.read_text() if path.exists() else None


@contextmanager
def readyz_server(docker: FakeDocker, broken_marker: str = "broken") -> Iterator[str]:
    """Serve ``/readyz``: 200 while the running ref does not contain ``broken_marker``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            running = docker.running()
            healthy = running is not None and broken_marker not in running
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/readyz"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running_webhook(config: DeployConfig) -> Iterator[tuple[str, int]]:
    """Serve the real deploy webhook on an ephemeral 127.0.0.1 port; yield (host, port)."""
    server = DeployServer(("127.0.0.1", 0), config, Deployer(config))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_port
    finally:
        server.shutdown()
        server.server_close()


def http_post(
    address: tuple[str, int], body: bytes, headers: dict[str, str], path: str = "/hooks/deploy"
) -> tuple[int, dict]:
    """POST raw ``body`` with exactly ``headers`` (no automatic Content-Length)."""
    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        if body:
            connection.send(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def signed_post(
    address: tuple[str, int], secret: bytes, payload: dict, now: float | None = None
) -> tuple[int, dict]:
    """POST ``payload`` the way ``deploy.notify`` does, signed with ``secret``."""
    body = json.dumps(payload).encode()
    headers = {"Content-Length": str(len(body)), **signed_headers(secret, body, now)}
    return http_post(address, body, headers)


REPOSITORY = "ghcr.io/acme/candlecast"
SECRET = b"test-secret-" + b"k" * 40


@dataclass
class Rig:
    """A webhook on 127.0.0.1 wired to a fake docker and a fake /readyz."""

    docker: FakeDocker
    config: DeployConfig
    address: tuple[str, int]


@contextmanager
def deploy_rig(
    root: Path, monkeypatch: pytest.MonkeyPatch, ready_timeout: float = 0.6
) -> Iterator[Rig]:
    """Everything a deploy test needs; the secret is also in the environment, to catch leaks."""
    docker = FakeDocker(root)
    for name, value in docker.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CANDLECAST_DEPLOY_SECRET", SECRET.decode())
    with readyz_server(docker) as url:
        config = DeployConfig(
            secret=SECRET,
            repository=REPOSITORY,
            compose_file=root / "compose.yaml",
            state_file=root / "var" / "deploy.env",
            readyz_url=url,
            ready_timeout=ready_timeout,
            poll_interval=0.05,
        )
        with running_webhook(config) as address:
            yield Rig(docker, config, address)
