"""The amd64 image as the Pi runs it: the hourly job fills a named volume, the API serves it.

One module-scoped run: a fresh named volume; ``candlecast backfill`` and ``candlecast live
--once`` inside the image against the fake exchange (on 127.0.0.1, reached through the host
network); then the API container on the same volume, until ``/readyz``. The tests check its
answers, the image's own properties, and that everything on the volume belongs to the
image's non-root user.
"""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid

import pandas as pd
import pytest

from candlecast.times import utc_now
from ingestion.sample import synthetic_candles
from tests.fakes.coinbase import FakeCoinbase, client_env
from tests.integration.image.conftest import (
    HOME,
    SOURCE,
    UID,
    USER,
    docker,
    get_json,
    run_args,
    wait_ready,
)

pytestmark = [pytest.mark.docker, pytest.mark.integration]
SYMBOL = "BTC-USD"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _in_image(image: str, volume: str, env: list[str], *command: str) -> str:
    args = ["run", "--rm", *run_args(volume, *env), "-w", SOURCE, image, *command]
    return docker(*args).stdout


@pytest.fixture(scope="module")
def served(image_ref: str, tmp_path_factory: pytest.TempPathFactory):
    volume = f"candlecast-smoke-{uuid.uuid4().hex[:8]}"
    container = f"candlecast-smoke-api-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    docker("volume", "create", volume)
    now = utc_now().floor("h")
    try:
        with FakeCoinbase() as fake:
            fake.set_candles(SYMBOL, synthetic_candles(SYMBOL, 24 * 40, seed=5, end=now))
            env = [f"{k}={v}" for k, v in client_env(fake.url).items()]
            env.append(f"CANDLECAST_SERVE_SYMBOLS={SYMBOL}")
            start = (now - pd.Timedelta(days=35)).isoformat()
            backfill = ("python", "-m", "candlecast", "backfill", "-s", SYMBOL, "--start", start)
            _in_image(image_ref, volume, env, *backfill)
            once = ("python", "-m", "candlecast", "live", "--once", "--max-wait", "0")
            live = _in_image(image_ref, volume, env, *once, "--no-drift")
        api = ["run", "-d", "--name", container, *run_args(volume, *env, f"BENTOML_PORT={port}")]
        docker(*api, image_ref)
        url = f"http://127.0.0.1:{port}"
        ready_after = wait_ready(f"{url}/readyz", 300, container)
        yield {"url": url, "volume": volume, "live": live, "ready_after": ready_after}
    finally:
        docker("rm", "-f", container, check=False)
        docker("volume", "rm", "-f", volume, check=False)


@pytest.mark.parametrize("model", ["lasso", "cnn", "naive"])
def test_predict_each_model(served, model: str) -> None:
    answer = get_json(f"{served['url']}/predict?symbol={SYMBOL}&model={model}")
    assert answer["model"] == model
    assert answer["predicted_price"] > 0 and answer["current_price"] > 0


def test_models_lists_the_packed_champions(served) -> None:
    listing = json.dumps(get_json(f"{served['url']}/models"))
    assert "lasso" in listing and "cnn" in listing


def test_dashboard_page(served) -> None:
    with urllib.request.urlopen(f"{served['url']}/", timeout=30) as response:
        assert response.status == 200
        assert "text/html" in response.headers["Content-Type"]
        assert "<html" in response.read().decode().lower()


def test_hourly_job_wrote_the_volume_as_the_non_root_user(served, image_ref: str) -> None:
    # A listing from inside the image, as root, of every path the job and the API wrote.
    owners = _in_image(
        image_ref, served["volume"], [], "find", HOME, "-printf", r"%u:%U %p\n"
    ).splitlines()
    paths = [line.split(" ", 1)[1] for line in owners]
    assert any("/feast/" in p for p in paths) and any("/candles" in p for p in paths)
    assert any("/predictions" in p for p in paths)  # live --once logged its forecasts
    wrong = [line for line in owners if not line.startswith(f"{USER}:{UID} ")]
    assert wrong == []


def test_image_runs_as_non_root_with_a_healthcheck(image_ref: str) -> None:
    (config,) = json.loads(docker("image", "inspect", image_ref).stdout)
    assert config["Config"]["User"] == USER
    assert "readyz" in " ".join(config["Config"]["Healthcheck"]["Test"])
    assert config["Architecture"] == "amd64"


def test_image_has_the_models_and_no_dev_tools(image_ref: str) -> None:
    script = (
        "import importlib.util as u, os; "
        "print(sorted(os.listdir('/home/bentoml/bento/models'))); "
        "print([m for m in ('pytest', 'ruff', 'pip', 'playwright') if u.find_spec(m)])"
    )
    args = ["run", "--rm", "--network", "host", "--pull", "never", image_ref]
    models, dev = docker(*args, "python", "-c", script).stdout.splitlines()
    assert "candlecast-lasso-btc-usd" in models and "candlecast-cnn-btc-usd" in models
    assert dev == "[]"
