"""Run the prediction service locally: ``bentoml serve`` as a managed child process.

Used by ``candlecast demo``, ``candlecast serve``, the serving benchmark and the
integration tests. It lives outside ``bentos/`` because it is how candlecast is
*run*, not part of the service (the image never needs it).

    from deploy.serve import free_port, serve_in_background
    with serve_in_background(port=free_port()) as client:
        print(client.predict("BTC-USD"))
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bentos.client import CandlecastClient
from candlecast.settings import PROJECT_ROOT

SERVICE = "bentos.service:PricePredictor"


def serve_command(port: int, host: str = "127.0.0.1", fused: bool = False) -> list[str]:
    """The ``bentoml serve`` command line for the candlecast service."""
    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]
    return [*cmd, *(["--development"] if fused else [])]


def free_port() -> int:
    """An unused loopback port, so a server started here never collides with another."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_background(
    port: int = 3000,
    *,
    fused: bool = False,
    api_workers: int | None = None,
    startup_timeout: float = 180.0,
    env: dict[str, str] | None = None,
    log_path: str | Path | None = None,
) -> Iterator[CandlecastClient]:
    """Run ``bentoml serve`` on 127.0.0.1:PORT until the block ends; yield a ready client.

    ``fused=True`` runs the model services inside the API process (``--development``:
    no per-call HTTP hop); ``api_workers`` sets PricePredictor's worker processes
    (default: ``CANDLECAST_API_WORKERS``, else two).
    The server reads CANDLECAST_HOME/BENTOML_HOME from the environment and logs to
    ``log_path`` (a temporary file by default). If it exits early (e.g. no champion
    model) or never gets ready, RuntimeError carries the end of its log.
    """
    cmd = serve_command(port, fused=fused)
    child_env = {**os.environ, **(env or {})}
    if api_workers is not None:  # else CANDLECAST_API_WORKERS, or the service's default
        child_env["CANDLECAST_API_WORKERS"] = str(api_workers)
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="candlecast-serve-")) / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = CandlecastClient(f"http://127.0.0.1:{port}")
    try:
        _wait_ready(proc, client, startup_timeout, Path(log_path))
        yield client
    finally:
        client.close()
        stop(proc)


def _wait_ready(proc: subprocess.Popen, client: CandlecastClient, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prediction server exited ({proc.returncode}):\n{_tail(log)}")
        if client.ready():
            return
        time.sleep(0.5)
    raise RuntimeError(f"prediction server not ready after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:]


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the server's process group (arbiter and workers), then SIGKILL if needed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (from /proc): a server's or a cluster's tree."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    mine, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - mine
        mine |= frontier
    return mine
