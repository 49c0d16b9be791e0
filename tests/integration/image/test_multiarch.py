"""The multi-arch tag in a registry: one manifest list, and its arm64 image run under qemu.

``CANDLECAST_MULTIARCH_REF`` names a tag pushed by ``make image PLATFORMS=linux/amd64,linux/arm64
REGISTRY=127.0.0.1:PORT PUSH=1`` (README "Build the image"). Marked ``slow``: the arm64 API
starts under emulation in several minutes (``make image-smoke`` leaves it out; run it with
``pytest -m docker tests/integration/image/test_multiarch.py``).
"""

from __future__ import annotations

import os
import time
import uuid

import pandas as pd
import pytest

from candlecast.times import utc_now
from deploy.base import emulates
from deploy.engine import manifest_platforms
from ingestion.sample import synthetic_candles
from tests.fakes.coinbase import FakeCoinbase, client_env
from tests.integration.image.conftest import SOURCE, docker, get_json, run_args, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.integration]
SYMBOL = "BTC-USD"
ARM64 = "linux/arm64"


@pytest.fixture(scope="module")
def multiarch_ref() -> str:
    ref = os.environ.get("CANDLECAST_MULTIARCH_REF")
    if not ref:
        pytest.skip("set CANDLECAST_MULTIARCH_REF to a tag pushed with PLATFORMS=both, PUSH=1")
    return ref


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
