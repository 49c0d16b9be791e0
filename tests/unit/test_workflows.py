"""The CI/CD workflows, the Pi's compose file and systemd units, parsed and checked.

No Docker or GitHub here: these tests pin the contract between the files (image names, the
image-ref variable, paths, platforms, step order) so that a rename in one breaks the build.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from candlecast.settings import PROJECT_ROOT
from deploy import boot, image
from deploy.config import DeployConfig
from deploy.deployer import IMAGE_REF_VAR, compose_process_env

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
PI = PROJECT_ROOT / "deploy" / "pi"
PI_CHECKOUT = "/opt/candlecast"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _index(steps: list[dict], predicate) -> int:
    matches = [i for i, step in enumerate(steps) if predicate(step)]
    assert matches, "no step matches"
    return matches[0]


def _runs(text: str):
    return lambda step: text in step.get("run", "")


def _uses(action: str):
    return lambda step: step.get("uses", "").startswith(action + "@")


def test_ci_lints_and_tests_pull_requests_and_main() -> None:
    ci = _load(WORKFLOWS / "ci.yaml")
    triggers = _triggers(ci)
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    steps = _steps(ci)
    lint = _index(steps, _runs("make lint"))
    test = _index(steps, lambda s: "make test" in s.get("run", "") or ".ci/run" in s.get("run", ""))
    assert lint < test
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()
    setup = steps[_index(steps, _uses("actions/setup-python"))]
    assert setup["with"]["python-version"] == "3.11"


def test_cd_runs_on_main_only_and_may_push_packages() -> None:
    cd = _load(WORKFLOWS / "cd.yaml")
    triggers = _triggers(cd)
    assert triggers["push"]["branches"] == ["main"]
    assert "pull_request" not in triggers
    assert cd["permissions"]["packages"] == "write"


def test_cd_step_order_models_build_push_smoke_notify() -> None:
    steps = _steps(_load(WORKFLOWS / "cd.yaml"))
    models = min(_index(steps, _runs("training import")), _index(steps, _runs("training train")))
    qemu = _index(steps, _uses("docker/setup-qemu-action"))
    buildx = _index(steps, _uses("docker/setup-buildx-action"))
    push = _index(steps, _runs("python -m deploy.image --push"))
    smoke = _index(steps, _runs("/readyz"))
    notify = _index(steps, _runs("python -m deploy.notify"))
    assert models < qemu < buildx < push < smoke < notify
    assert "/predict" in steps[smoke]["run"]
    assert "arm64" in steps[qemu]["with"]["platforms"]


def test_cd_builds_both_platforms_and_deploys_the_tag_it_pushed() -> None:
    steps = _steps(_load(WORKFLOWS / "cd.yaml"))
    push = steps[_index(steps, _runs("python -m deploy.image --push"))]["run"]
    assert "--platform" not in push  # --push defaults to both platforms:
    assert image.MULTI_ARCH == "linux/amd64,linux/arm64"
    reference = '--image "$CANDLECAST_IMAGE" --tag "$IMAGE_TAG"'
    assert reference in push
    notify = steps[_index(steps, _runs("python -m deploy.notify"))]
    assert reference in notify["run"]
    smoke = steps[_index(steps, _runs("/readyz"))]["run"]
    assert '"$CANDLECAST_IMAGE:$IMAGE_TAG"' in smoke
    manifest = steps[_index(steps, _runs("imagetools inspect"))]["run"]
    assert "linux/amd64" in manifest and "linux/arm64" in manifest


def test_cd_secret_travels_in_the_environment_only() -> None:
    steps = _steps(_load(WORKFLOWS / "cd.yaml"))
    notify = steps[_index(steps, _runs("python -m deploy.notify"))]
    assert notify["env"]["CANDLECAST_DEPLOY_SECRET"] == "${{ secrets.CANDLECAST_DEPLOY_SECRET }}"
    assert all("secrets." not in step.get("run", "") for step in steps)
    assert "secret" not in notify["env"]["DEPLOY_URL"].lower()


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load(PI / "compose.yaml")


def _candlecast_services(compose: dict) -> list[dict]:
    """The services running the candlecast image (not the scale profile's Redis)."""
    return [v for k, v in compose["services"].items() if k != "redis"]


def test_compose_services_share_the_deployed_image(compose: dict) -> None:
    services = {k: v for k, v in compose["services"].items() if k != "redis"}
    assert set(services) == {"api", "ingest"}
    for service in services.values():
        assert service["image"].startswith("${" + IMAGE_REF_VAR + ":?")
        assert service["restart"] == "unless-stopped"
    assert DeployConfig.health_service == "api"


def test_compose_keeps_candlecast_home_on_a_named_volume(compose: dict) -> None:
    for service in _candlecast_services(compose):
        home = service["environment"]["CANDLECAST_HOME"]
        assert f"candlecast-home:{home}" in service["volumes"]
    assert "candlecast-home" in compose["volumes"]


def test_both_services_use_the_model_store_on_the_volume(compose: dict) -> None:
    """The loop's retrains land where the api looks for new champions, and survive upgrades."""
    stores = set()
    for service in _candlecast_services(compose):
        home, store = (service["environment"][k] for k in ("CANDLECAST_HOME", "BENTOML_HOME"))
        assert store.startswith(home.rstrip("/") + "/")
        stores.add(store)
    assert len(stores) == 1


def test_compose_api_health_check_and_thread_caps(compose: dict) -> None:
    api = compose["services"]["api"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert api["healthcheck"]["start_period"]
    # Host networking (the only mode on a bridge-less engine): no `ports:`, which
    # docker-compose 1.29 refuses next to it; the API binds CANDLECAST_API_PORT itself, and
    # the healthcheck follows that port as the image's own HEALTHCHECK does.
    assert "ports" not in api
    assert api["environment"]["BENTOML_PORT"] == "${CANDLECAST_API_PORT:-3000}"
    assert "BENTOML_PORT" in " ".join(api["healthcheck"]["test"])
    assert DeployConfig.readyz_url == "http://127.0.0.1:3000/readyz"
    threads = {k: int(v) for k, v in api["environment"].items() if k.endswith("_THREADS")}
    assert {"TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"} <= set(threads)
    default_cpus = float(api["cpus"].removeprefix("${CANDLECAST_API_CPUS:-").removesuffix("}"))
    assert max(threads.values()) <= default_cpus


def test_every_compose_service_uses_host_networking(compose: dict) -> None:
    for service in compose["services"].values():
        assert service["network_mode"] == "host"
        assert "ports" not in service


def test_ingest_runs_the_live_loop_with_a_heartbeat_healthcheck(compose: dict) -> None:
    ingest = compose["services"]["ingest"]
    assert ingest["command"] == ["python", "-m", "candlecast", "live"]
    assert ingest["init"] is True  # SIGTERM reaches the loop, which stops cleanly
    check = ingest["healthcheck"]["test"]
    assert check[:5] == ["CMD", "python", "-m", "candlecast", "live"]
    assert "--healthcheck" in check
    max_age = float(check[check.index("--max-age") + 1])
    interval = pd.Timedelta(ingest["healthcheck"]["interval"]).total_seconds()
    # The loop beats every minute: a few missed beats, not one, make it unhealthy.
    assert max_age >= 3 * 60 and interval <= max_age


def _unit(path: Path) -> dict[str, list[str]]:
    """``key -> values`` of a systemd unit (keys may repeat, so no configparser)."""
    entries: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def test_compose_unit_starts_the_stack_on_boot_with_the_recorded_image() -> None:
    unit = _unit(PI / "candlecast-compose.service")
    compose_file = f"{PI_CHECKOUT}/deploy/pi/compose.yaml"
    (start,) = unit["ExecStart"]
    # From the state file alone (image ref, compose settings, compose command): deploy.boot.
    assert start == f"/usr/bin/python3 -m deploy.boot --state-file {DeployConfig.state_file} up"
    assert unit["WorkingDirectory"] == [PI_CHECKOUT]
    assert unit["ConditionPathExists"] == [str(DeployConfig.state_file)]
    assert "EnvironmentFile" not in unit
    assert compose_file == str(boot.DEFAULT_COMPOSE_FILE).replace(str(PROJECT_ROOT), PI_CHECKOUT)
    assert unit["Restart"] == ["on-failure"]
    assert unit["WantedBy"] == ["multi-user.target"]
    assert "docker.service" in unit["Requires"][0]


def test_deployer_unit_runs_the_webhook_from_the_checkout() -> None:
    unit = _unit(PI / "candlecast-deployer.service")
    assert unit["ExecStart"][0].startswith("/usr/bin/python3 -m deploy.webhook --host ")
    assert unit["WorkingDirectory"] == [PI_CHECKOUT]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # no secret: fail once, loudly
    assert unit["User"] != ["root"] and unit["SupplementaryGroups"] == ["docker"]
    assert unit["WantedBy"] == ["multi-user.target"]
    example = _unit(PI / "deployer.env.example")
    assert unit["EnvironmentFile"] == ["/etc/candlecast/deployer.env"]
    assert example["CANDLECAST_DEPLOY_COMPOSE_FILE"] == [f"{PI_CHECKOUT}/deploy/pi/compose.yaml"]
    assert example["CANDLECAST_DEPLOY_STATE_FILE"] == [str(DeployConfig.state_file)]
    assert {"CANDLECAST_DEPLOY_SECRET", "CANDLECAST_DEPLOY_IMAGE"} <= set(example)


def test_bentofile_carries_what_the_image_and_the_pi_need(compose: dict) -> None:
    """Thread caps, CANDLECAST_HOME (the volume's mount point) and the hourly job's code."""
    path = PROJECT_ROOT / "bentofile.yaml"
    if not path.exists():
        pytest.skip("bentofile.yaml is not written yet (the service's packaging, issue 5)")
    bentofile = _load(path)
    envs = {env["name"]: env.get("value") for env in bentofile.get("envs", [])}
    assert {"TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"} <= set(envs)
    assert envs.get("CANDLECAST_HOME") == compose["x-environment"]["CANDLECAST_HOME"]
    assert bentofile["docker"]["setup_script"] == "deploy/image_setup.sh"
    assert "ingestion/*.py" in bentofile["include"]  # `python -m ingestion update` runs in it
    packages = " ".join(bentofile["python"]["packages"])
    assert "typer==" in packages and "rich==" in packages


def _compose(*args: str) -> str:
    """The real docker-compose (1.29 here) on compose.yaml, as the deployer runs it."""
    command = shutil.which("docker-compose")
    if command is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env = compose_process_env({IMAGE_REF_VAR: "example.org/candlecast:1"})
    argv = [command, "--project-name", "candlecast", "--file", str(PI / "compose.yaml"), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout


def test_the_scale_profile_adds_redis_and_points_both_services_at_it(compose: dict) -> None:
    # Only redis has a profile, so `up` without COMPOSE_PROFILES starts api and ingest only.
    assert _compose("config", "--profiles").split() == ["scale"]
    assert set(_compose("config", "--services").split()) == {"api", "ingest", "redis"}
    assert [k for k, v in compose["services"].items() if v.get("profiles")] == ["redis"]
    assert "COMPOSE_PROFILES" not in compose_process_env({"CANDLECAST_STORE_PROFILE": "local"})
    scale = compose_process_env({"CANDLECAST_STORE_PROFILE": "scale"})
    assert scale["COMPOSE_PROFILES"] == "scale"
    redis = compose["services"]["redis"]
    assert redis["network_mode"] == "host" and "candlecast-redis:/data" in redis["volumes"]
    assert "--appendonly" in redis["command"] and "127.0.0.1" in redis["command"]
    for service in _candlecast_services(compose):
        env = service["environment"]
        assert env["CANDLECAST_STORE_PROFILE"] == "${CANDLECAST_STORE_PROFILE:-local}"
        assert env["CANDLECAST_REDIS_URL"].endswith("redis://127.0.0.1:6379/0}")
        assert env["CANDLECAST_SCALE_RAY"] == "false"  # the image has no Ray
