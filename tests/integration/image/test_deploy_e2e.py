"""The Pi's deployment for real: compose, a local registry, the signed webhook, a reboot.

Everything runs on this machine's Docker engine and stays on 127.0.0.1: a local registry
(Debian's ``docker-registry``) holding the image under test as ``good1``, a tiny derived
``good2`` (one LABEL: another digest) and a ``broken`` one whose API never becomes ready;
``deploy/pi/compose.yaml`` started with the deployer's compose command (``docker-compose``
1.29 here, ``docker compose`` where the v2 plugin exists), the hourly job fetching from the
fake exchange; the real webhook on an ephemeral port, signed as CD signs.

One scenario, in order: first deployment (good1) -> upgrade through the webhook (good2,
deployed) -> a broken image (rolled back to good2's digest) -> ``down`` and a boot from the
state file alone (good2 again, on the same port). The data volume and the online store
must survive all of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from candlecast.times import utc_now
from deploy import boot
from deploy.config import load_config
from deploy.deployer import OUTCOMES, Deployer, compose_argv, compose_process_env, read_state
from deploy.notify import get_status
from deploy.webhook import DeployServer
from ingestion.sample import synthetic_candles
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.deploy_rig import signed_post
from tests.integration.image.conftest import HOME, docker, free_port, get_json, wait_ready

#: ``slow`` too: 890 s on 2 CPUs (push of the ~2.5 GB image to the local registry 366 s; four
#: API starts at 50-150 s each; a 60 s broken wait), so ``make image-smoke`` (``docker and not
#: slow``) leaves it out; ``pytest -m docker tests/integration/image/test_deploy_e2e.py`` runs
#: it. The run timeout (pytest-timeout, 900 s by default) also covers the module's fixtures.
pytestmark = [
    pytest.mark.docker,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(2400),
]
SYMBOL = "BTC-USD"
SECRET = "e2e-secret-" + "k" * 40
COMPOSE_FILE = Path(__file__).resolve().parents[3] / "deploy" / "pi" / "compose.yaml"
#: Hours of candles the fake exchange holds: enough for features and `/predict`, too few to
#: train (the live loop's initial training fails in seconds, as it would on a new Pi whose
#: exchange is down), so the hourly job stays cheap on a small CI machine.
FAKE_HOURS = 72
#: Seconds the API may take to answer /readyz after `up` (about 100 s on 2 busy CPUs).
READY_TIMEOUT = 300.0
#: A broken image is given less: its deployment must give up and roll back.
BROKEN_READY_TIMEOUT = 60.0
#: An API that never gets ready but stops at once on SIGTERM (not a 30 s stop timeout).
BROKEN_ENTRYPOINT = (
    '["python", "-c", "import signal, sys, time; '
    'signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(86400)"]'
)


def _log(message: str, started: float) -> None:
    print(f"[e2e {time.monotonic() - started:6.1f} s] {message}", flush=True)


def _compose_command() -> str:
    """CANDLECAST_DEPLOY_COMPOSE if set; else the v2 plugin when present; else docker-compose."""
    named = os.environ.get("CANDLECAST_DEPLOY_COMPOSE")
    if named:
        return named
    if docker("compose", "version", check=False).returncode == 0:
        return "docker compose"
    if shutil.which("docker-compose"):
        return "docker-compose"
    pytest.fail("neither `docker compose` nor docker-compose (apt-get install docker-compose)")


@dataclass
class Images:
    repository: str  # 127.0.0.1:<port>/candlecast
    digests: dict[str, str]  # tag -> repo@sha256:…


def _repo_digest(ref: str, repository: str) -> str:
    listing = docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout
    return next(d for d in json.loads(listing) if d.startswith(repository + "@"))


def _build(ref: str, dockerfile: str) -> None:
    """A derived image from a Dockerfile on stdin: no context, no RUN, built in a second."""
    proc = subprocess.run(
        ["docker", "build", "--quiet", "--tag", ref, "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def images(image_ref: str, registry: str) -> Iterator[Images]:
    """good1 (the image under test), good2 and broken, pushed; local copies removed after."""
    repository = f"{registry}/candlecast"
    refs = {tag: f"{repository}:{tag}" for tag in ("good1", "good2", "broken")}
    built: list[str] = []
    try:
        docker("tag", image_ref, refs["good1"])
        docker("push", refs["good1"], timeout=1800)
        _build(refs["good2"], f"FROM {refs['good1']}\nLABEL org.candlecast.e2e=good2\n")
        broken = f"FROM {refs['good1']}\nLABEL org.candlecast.e2e=broken\n"
        _build(refs["broken"], broken + f"ENTRYPOINT {BROKEN_ENTRYPOINT}\nCMD []\n")
        digests = {}
        for tag in ("good2", "broken"):
            built.append(
                docker("image", "inspect", "--format", "{{.Id}}", refs[tag]).stdout.strip()
            )
            docker("push", refs[tag], timeout=600)
        for tag, ref in refs.items():
            digests[tag] = _repo_digest(ref, repository)
        # The deployer must pull these from the registry, as on the Pi (the last tag gone,
        # the image and its digest reference go too).
        docker("rmi", refs["good2"], refs["broken"])
        assert docker("image", "inspect", digests["good2"], check=False).returncode != 0
        yield Images(repository, digests)
    finally:
        _remove_images(repository, built)


def _remove_images(repository: str, built: list[str]) -> None:
    """Every tag and digest of ``repository`` (all ours), then the derived images' ids."""
    listing = docker("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}")
    refs = []
    for line in listing.stdout.splitlines():
        repo, tag, digest = line.split()
        if repo == repository:
            refs += [f"{repo}:{tag}"] if tag != "<none>" else []
            refs += [f"{repo}@{digest}"] if digest != "<none>" else []
    if refs:
        docker("rmi", *refs, check=False)
    for image_id in built:
        docker("rmi", image_id, check=False)


@dataclass
class Stack:
    project: str
    deployer: Deployer
    state_file: Path
    api_url: str
    webhook: tuple[str, int]
    images: Images

    def compose(self, *args: str, ref: str | None = None) -> str:
        config = self.deployer.config
        argv = compose_argv(config.compose_command, self.project, config.compose_file, *args)
        variables = self.deployer.compose_variables(ref or self.images.digests["good1"])
        proc = subprocess.run(
            argv, env=compose_process_env(variables), capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def api_container(self) -> str:
        (container,) = self.compose("ps", "--quiet", "api").split()
        return container

    def api_image_id(self) -> str:
        return docker("inspect", "--format", "{{.Image}}", self.api_container()).stdout.strip()

    def in_volume(self, script: str) -> str:
        """Run ``script`` with the image's Python (as its user) on the stack's data volume."""
        volume = f"{self.project}_candlecast-home"
        args = ["run", "--rm", "--network", "host", "--pull", "never", "--entrypoint", "python"]
        args += ["-v", f"{volume}:{HOME}", self.images.digests["good1"], "-c", script]
        return docker(*args).stdout


@contextmanager
def serving(server: DeployServer) -> Iterator[tuple[str, int]]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def stack(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The compose project's settings and the webhook; compose down --volumes at the end."""
    root = tmp_path_factory.mktemp("deploy")
    project = f"cce2e{uuid.uuid4().hex[:8]}"
    port = free_port()
    now = utc_now().floor("h")
    with FakeCoinbase() as fake:
        fake.set_candles(SYMBOL, synthetic_candles(SYMBOL, FAKE_HOURS, seed=5, end=now))
        env = {
            "CANDLECAST_DEPLOY_SECRET": SECRET,
            "CANDLECAST_DEPLOY_IMAGE": images.repository,
            "CANDLECAST_DEPLOY_COMPOSE_FILE": str(COMPOSE_FILE),
            "CANDLECAST_DEPLOY_COMPOSE": _compose_command(),
            "CANDLECAST_DEPLOY_PROJECT": project,
            "CANDLECAST_DEPLOY_STATE_FILE": str(root / "var" / "deploy.env"),
            "CANDLECAST_DEPLOY_READY_TIMEOUT": str(READY_TIMEOUT),
            # Compose settings: the API on 127.0.0.1:<free port> with at most the CPUs this
            # machine has (docker refuses more), the hourly job against the fake exchange.
            "CANDLECAST_API_PORT": str(port),
            "CANDLECAST_API_HOST": "127.0.0.1",
            "CANDLECAST_API_CPUS": str(min(2, os.cpu_count() or 1)),
            "CANDLECAST_COINBASE_URL": fake.url,
        }
        config = load_config(env)
        assert config.readyz_url == f"http://127.0.0.1:{port}/readyz"
        deployer = Deployer(config)
        server = DeployServer(("127.0.0.1", 0), config, deployer)
        with serving(server) as address:
            api_url = f"http://127.0.0.1:{port}"
            stack = Stack(project, deployer, config.state_file, api_url, address, images)
            try:
                yield stack
            finally:
                deployer.wait_idle(timeout=600)
                _dump_logs(stack)
                stack.compose("down", "--volumes", "--remove-orphans")
                docker("volume", "rm", "-f", f"{project}_candlecast-home", check=False)


def _dump_logs(stack: Stack) -> None:
    """The containers' last lines, shown by pytest when the test failed."""
    for service in ("api", "ingest"):
        proc = subprocess.run(
            compose_argv(stack.deployer.config.compose_command, stack.project,
                         COMPOSE_FILE, "logs", "--tail", "40", service),
            env=compose_process_env(stack.deployer.compose_variables("unused")),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        print(f"--- {service} ---\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}")


def _webhook_deploy(stack: Stack, tag: str, timeout: float) -> dict:
    """POST the signed request as CD does; 202 and an id at once; then poll to the outcome."""
    body = {"image": stack.images.repository, "tag": tag}
    started = time.monotonic()
    status, accepted = signed_post(stack.webhook, SECRET.encode(), body)
    assert status == 202, accepted
    assert time.monotonic() - started < 5  # answered before the pull, not after the deploy
    assert accepted["status"] in ("queued", "running") and accepted["id"]
    url = f"http://{stack.webhook[0]}:{stack.webhook[1]}/hooks/deploy"
    seen = []
    while time.monotonic() - started < timeout:
        code, record = get_status(url, accepted["status_url"], SECRET.encode(), timeout=30)
        assert code == 200, record
        seen.append(record["status"])
        if record["status"] in OUTCOMES:
            assert "running" in seen
            return record
        time.sleep(2)
    raise AssertionError(f"deployment of {tag} not finished after {timeout:g} s: {seen[-1:]}")


def _wait_predict(url: str, timeout: float) -> dict:
    """``/predict`` once the hourly job has published the features (a new volume)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get_json(f"{url}/predict?symbol={SYMBOL}")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


ONLINE_ROWS = f"""
import glob, json, os, sqlite3
home = {HOME!r}
db = sqlite3.connect(f"file:{{home}}/feast/online_store.db?mode=ro", uri=True)
tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
rows = {{t: db.execute(f'select count(*) from "{{t}}"').fetchone()[0] for t in tables}}
candles = sorted(p[len(home):] for p in glob.glob(f"{{home}}/candles/**/*", recursive=True)
                 if os.path.isfile(p))
print(json.dumps({{"rows": rows, "candles": candles}}))
"""


def _data(stack: Stack) -> dict:
    """Rows in the online store and the candle files the hourly job wrote, read off the volume."""
    return json.loads(stack.in_volume(ONLINE_ROWS))


def _assert_data_survived(stack: Stack, before: dict) -> None:
    after = _data(stack)
    assert set(before["candles"]) <= set(after["candles"])
    for table, count in before["rows"].items():
        assert after["rows"].get(table, 0) >= count, (table, before, after)


def test_upgrade_rollback_and_reboot_on_the_real_engine(stack: Stack) -> None:
    started = time.monotonic()
    digests = stack.images.digests
    deployer = stack.deployer

    # 1. First deployment (nothing runs yet): compose up of the API and the hourly job.
    first = deployer.deploy(stack.images.repository, "good1")
    assert first.outcome == "deployed", first
    assert first.previous is None
    _log(f"good1 deployed in {first.duration_seconds:.0f} s", started)
    answer = _wait_predict(stack.api_url, 300)
    assert answer["predicted_price"] > 0
    good1_image = stack.api_image_id()
    before = _data(stack)
    assert any(before["rows"].values()) and before["candles"], before
    _log(f"hourly job wrote {before}", started)

    # 2. Upgrade through the signed webhook: good2 is pulled from the registry and started.
    record = _webhook_deploy(stack, "good2", timeout=READY_TIMEOUT + 120)
    assert record["status"] == record["outcome"] == "deployed", record
    assert record["previous"] == digests["good1"]
    _log(f"good2 deployed in {record['duration_seconds']:.0f} s", started)
    good2_image = stack.api_image_id()
    assert good2_image != good1_image
    assert _repo_digest(good2_image, stack.images.repository) == digests["good2"]
    with urllib.request.urlopen(f"{stack.api_url}/readyz", timeout=10) as response:
        assert response.status == 200
    assert _wait_predict(stack.api_url, 60)["predicted_price"] > 0
    _assert_data_survived(stack, before)

    # 3. A broken image: never ready within the (short) timeout -> back to good2's digest.
    deployer.config = replace(
        deployer.config, ready_timeout=BROKEN_READY_TIMEOUT, rollback_timeout=READY_TIMEOUT
    )
    record = _webhook_deploy(stack, "broken", timeout=BROKEN_READY_TIMEOUT + READY_TIMEOUT + 120)
    assert record["status"] == "rolled_back", record
    assert record["rolled_back_to"] == record["previous"] == digests["good2"]
    assert f"not ready within {BROKEN_READY_TIMEOUT:g} s" in record["error"]
    _log(f"broken rolled back in {record['duration_seconds']:.0f} s", started)
    assert stack.api_image_id() == good2_image
    assert _wait_predict(stack.api_url, 60)["predicted_price"] > 0
    _assert_data_survived(stack, before)
    state = read_state(stack.state_file)
    assert state["CANDLECAST_IMAGE_REF"] == digests["good2"]

    # 4. Reboot-like: down (the volume stays), then up from the state file alone.
    assert state["CANDLECAST_API_PORT"] == stack.api_url.rsplit(":", 1)[1]
    assert SECRET not in stack.state_file.read_text()
    assert boot.main(["--state-file", str(stack.state_file), "down"]) == 0
    assert stack.compose("ps", "--quiet").split() == []
    assert boot.main(["--state-file", str(stack.state_file)]) == 0
    container = stack.api_container()
    wait_ready(f"{stack.api_url}/readyz", READY_TIMEOUT, container)
    _log("booted from the state file", started)
    assert stack.api_image_id() == good2_image
    assert _wait_predict(stack.api_url, 60)["predicted_price"] > 0
    _assert_data_survived(stack, before)
