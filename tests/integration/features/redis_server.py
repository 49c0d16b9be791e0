"""A throwaway Debian ``redis-server`` on 127.0.0.1 for the scale-profile tests.

No persistence (``--save ''``, no AOF), so a killed and restarted server starts empty
on the same port, as a Redis that lost its data would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from deploy.serve import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def require_redis_server() -> str:
    """The redis-server binary, or a skip that says how to get it."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server not found: apt-get install -y redis-server")
    return REDIS_SERVER


class RedisServer:
    """One redis-server process on a fixed loopback port: start, kill, start again."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = require_redis_server()
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.proc.returncode})")
            if self._answers():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server not answering on port {self.port} after {timeout} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crashed server: no goodbye on the clients' connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
