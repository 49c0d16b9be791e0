"""The multi-arch tag in a registry: one manifest list, and its arm64 image run under qemu.

The test starts a local ``docker-registry`` on 127.0.0.1 and pushes both platforms to it the
way a user does (``python -m deploy.image --push --platform linux/amd64,linux/arm64
--registry 127.0.0.1:PORT``, i.e. ``make image … PUSH=1``), from the champions of
``CANDLECAST_MULTIARCH_HOME`` (default the demo's home, ``data/demo-sample``: run ``make demo``
first). ``CANDLECAST_MULTIARCH_REF`` names an already pushed tag instead and skips the build.
Marked ``slow``: the arm64 build and API run under emulation (~45 min on 2 CPUs in all;
``make image-smoke`` leaves it out; run it with ``pytest -m docker
tests/integration/image/test_multiarch.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pandas as pd
import pytest

from candlecast.settings import PROJECT_ROOT
from candlecast.times import utc_now
from deploy.base import emulates
from deploy.engine import manifest_platforms
from ingestion.sample import synthetic_candles
from tests.fakes.coinbase import FakeCoinbase, client_env
from tests.integration.image.conftest import SOURCE, docker, get_json, run_args, wait_ready

#: pytest-timeout's 900 s default also covers the fixtures: the build alone takes ~25 min here.
pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.timeout(4000),
]
SYMBOL = "BTC-USD"
ARM64 = "linux/arm64"


#: The build and push of both platforms: the arm64 half under qemu takes most of it.
BUILD_TIMEOUT_SECONDS = 3600


@pytest.fixture(scope="module")
def multiarch_ref(request: pytest.FixtureRequest) -> str:
    """CANDLECAST_MULTIARCH_REF, or a tag this test builds and pushes to its own registry."""
    ref = os.environ.get("CANDLECAST_MULTIARCH_REF")
    if ref:
        return ref
    registry = request.getfixturevalue("registry")
    home = os.environ.get("CANDLECAST_MULTIARCH_HOME") or str(PROJECT_ROOT / "data" / "demo-sample")
    if not os.path.isdir(os.path.join(home, "bentoml", "models")):
        pytest.fail(f"no champions to pack in {home}: run `make demo` (or set the variables)")
    env = {**os.environ, "CANDLECAST_HOME": home, "BENTOML_HOME": os.path.join(home, "bentoml")}
    env.setdefault("CANDLECAST_SERVE_SYMBOLS", "BTC-USD,ETH-USD")
    tag = f"multi-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "deploy.image", "--push", "--registry", registry]
    command += ["--platform", "linux/amd64,linux/arm64", "--tag", tag]
    made = [f"{registry}/candlecast:{tag}{suffix}" for suffix in ("", "-amd64", "-arm64")]
    request.addfinalizer(lambda: docker("rmi", "--force", *made, check=False))  # ~4 GB
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


def test_one_manifest_list_for_both_platforms(multiarch_ref: str) -> None:
    assert sorted(manifest_platforms(multiarch_ref)) == ["linux/amd64", "linux/arm64"]


def test_arm64_image_answers_under_emulation(multiarch_ref: str) -> None:
    if not emulates(ARM64):
        pytest.skip("no qemu-aarch64 in binfmt_misc (apt-get install qemu-user-static)")
    docker("pull", "--quiet", "--platform", ARM64, multiarch_ref)
    arch = docker("image", "inspect", "--format", "{{.Architecture}}", multiarch_ref).stdout
    assert arch.strip() == "arm64"
    volume = f"candlecast-arm64-{uuid.uuid4().hex[:8]}"
    container = f"{volume}-api"
    port = 3000 + int(uuid.uuid4().int % 20000)
    try:
        with FakeCoinbase() as fake:
            now = utc_now().floor("h")
            fake.set_candles(SYMBOL, synthetic_candles(SYMBOL, 24 * 40, seed=5, end=now))
            env = [f"{k}={v}" for k, v in client_env(fake.url).items()]
            base = ["run", "--rm", "--platform", ARM64, *run_args(volume, *env), "-w", SOURCE]
            start = (now - pd.Timedelta(days=35)).isoformat()
            job = ("python", "-m", "candlecast")
            docker(*base, multiarch_ref, *job, "backfill", "-s", SYMBOL, "--start", start)
            docker(*base, multiarch_ref, *job, "features", "-s", SYMBOL, "--materialize")
        api = ["run", "-d", "--name", container, "--platform", ARM64]
        docker(*api, *run_args(volume, f"BENTOML_PORT={port}"), multiarch_ref)
        url = f"http://127.0.0.1:{port}"
        ready_after = wait_ready(f"{url}/readyz", 1200, container)
        started = time.monotonic()
        answer = get_json(f"{url}/predict?symbol={SYMBOL}")
        print(f"arm64 under qemu: ready after {ready_after:.0f} s, /predict in "
              f"{time.monotonic() - started:.2f} s")  # fmt: skip
        assert answer["predicted_price"] > 0
    finally:
        docker("rm", "-f", container, check=False)
        docker("volume", "rm", "-f", volume, check=False)
