"""The image, run for real on a Docker engine (marker ``docker``; ``make image-smoke``).

``CANDLECAST_IMAGE_REF`` names the image under test (``make image`` prints it); without it the
newest local ``candlecast`` image is used. Every container runs with ``--network host`` and
``--pull never``: it reaches nothing but 127.0.0.1, and a missing image is never pulled.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

#: The image's non-root user (BentoML's ``bentoml``, uid 1034).
USER, UID = "bentoml", 1034
HOME = "/home/bentoml/candlecast"
SOURCE = "/home/bentoml/bento/src"  # `python -m candlecast` runs from the Bento's source


def docker(*args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def run_args(volume: str, *env: str) -> list[str]:
    """``docker run`` options every test container shares."""
    args = ["--network", "host", "--pull", "never", "-v", f"{volume}:{HOME}"]
    return args + [item for name in env for item in ("-e", name)]


def wait_ready(url: str, timeout: float, container: str) -> float:
    """Seconds until ``url`` answers 200; fail with the container's log if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        state = docker("inspect", "--format", "{{.State.Running}}", container, check=False)
        if state.stdout.strip() == "false":
            break
        time.sleep(1)
    logs = docker("logs", "--tail", "80", container, check=False)
    raise AssertionError(f"{url} not ready after {timeout:g} s:\n{logs.stdout}{logs.stderr}")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.load(response)


def _newest_candlecast_image() -> str | None:
    listing = docker("images", "candlecast", "--format", "{{.Repository}}:{{.Tag}}", check=False)
    refs = [ref for ref in listing.stdout.split() if not ref.endswith(":<none>")]
    return refs[0] if refs else None


@pytest.fixture(scope="session")
def image_ref() -> str:
    """The image under test. Named by CANDLECAST_IMAGE_REF (as ``.ci/run`` does), a missing
    engine or image fails the run; otherwise the tests skip, saying what to do."""
    named = os.environ.get("CANDLECAST_IMAGE_REF")
    missing = pytest.fail if named else pytest.skip
    if shutil.which("docker") is None or docker("version", check=False).returncode != 0:
        missing("no Docker engine (apt-get install docker.io; start dockerd)")
    ref = named or _newest_candlecast_image()
    if ref is None or docker("image", "inspect", ref, check=False).returncode != 0:
        missing(f"no candlecast image {ref or ''} here: build one with `make image`")
    return ref


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1:<free port>, storage in a temp dir."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("no docker-registry (apt-get install docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {address}\n"
    )
    with (root / "registry.log").open("w") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"registry did not start:\n{(root / 'registry.log').read_text()}")
                time.sleep(0.2)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(root / "data", ignore_errors=True)  # the pushed layers: ~0.8 GB
