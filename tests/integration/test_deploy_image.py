"""``python -m deploy.image`` through the real ``bentoml build``/``export`` and a fake docker.

A throwaway one-endpoint service stands in for the real one (whose build needs trained models;
that build is tested with the service, and the image itself by tests/integration/image). What
is under test is the invocation: with buildx, one ``docker buildx build --platform
linux/amd64,linux/arm64 --push`` with one tag, of a context holding the exported Bento and
each platform's wheelhouse, and a Dockerfile that runs as a non-root user with the Bento's envs.
The wheelhouse is stubbed (downloading wheels is not this test's business).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candlecast.settings import PROJECT_ROOT
from deploy import image, wheelhouse
from tests.fakes.deploy_rig import FakeDocker

pytestmark = pytest.mark.integration

SERVICE = """
import bentoml


@bentoml.service
class Tiny:
    @bentoml.api
    def ping(self) -> str:
        return "pong"
"""

BENTOFILE = """
service: "service:Tiny"
include: ["service.py"]
python:
  packages: []
  lock_packages: false
envs:
  - name: CANDLECAST_HOME
    value: /home/bentoml/candlecast
  - name: TF_NUM_INTRAOP_THREADS
    value: "2"
  - name: OMP_NUM_THREADS
    value: "2"
docker:
  python_version: "3.11"
  setup_script: deploy/image_setup.sh
"""


def _image(
    docker: FakeDocker, project: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> subprocess.CompletedProcess:
    wheels = project.parent / "wheels"
    (wheels / "x86_64").mkdir(parents=True, exist_ok=True)
    (wheels / "aarch64").mkdir(exist_ok=True)
    for machine in ("x86_64", "aarch64"):
        (wheels / machine / f"stub-1.0-py3-none-{machine}.whl").write_text("")

    def ensure(requirements: Path, root: Path, platform: str, offline: bool = False) -> Path:
        assert requirements.is_file()  # the exported Bento's pinned requirements
        return root / ("x86_64" if platform == "linux/amd64" else "aarch64")

    # A store of its own: the throwaway Bento must not show up in other tests' stores.
    for name, value in {**docker.env(), "BENTOML_HOME": str(project.parent / "bentoml")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(wheelhouse, "ensure", ensure)
    command = [*args, "--bentofile", str(project / "bentofile.yaml"), "--context", str(project)]
    result = CliRunner().invoke(image.app, [*command, "--wheelhouse", str(wheels)])
    output = result.stdout if result.exit_code == 0 else result.output
    return subprocess.CompletedProcess(command, result.exit_code, output, result.output)


def test_push_builds_one_multi_arch_tag_with_buildx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "service.py").write_text(SERVICE)
    (project / "bentofile.yaml").write_text(BENTOFILE)
    (project / "deploy").mkdir()
    shutil.copy2(PROJECT_ROOT / "deploy" / "image_setup.sh", project / "deploy")
    docker = FakeDocker(tmp_path / "docker")

    args = ("--push", "--image", "ghcr.io/acme/candlecast", "--tag", "sha-1")
    proc = _image(docker, project, monkeypatch, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ghcr.io/acme/candlecast:sha-1")
    (build,) = docker.calls("buildx build")
    argv = build["argv"]
    assert argv[:7] == [
        "buildx", "build", "--push", "--platform", "linux/amd64,linux/arm64",
        "--tag", "ghcr.io/acme/candlecast:sha-1",
    ]  # fmt: skip
    assert "--load" not in argv and argv.count("--tag") == 1
    assert "--build-arg" not in argv  # buildx pulls the Dockerfile's default base itself
    lines = (docker.state / "Dockerfile").read_text().splitlines()
    assert "USER bentoml" in lines  # non-root at runtime
    assert 'ENV OMP_NUM_THREADS="2"' in lines
    assert 'ENV TF_NUM_INTRAOP_THREADS="2"' in lines
    assert 'ENV CANDLECAST_HOME="/home/bentoml/candlecast"' in lines
    assert any(line.startswith("RUN chmod +x ./env/docker/script__") for line in lines)

    # Without --push: this machine's platform only, loaded into the local engine.
    proc = _image(docker, project, monkeypatch, "--image", "candlecast", "--bento", "tiny:latest")
    assert proc.returncode == 0, proc.stderr
    local = docker.calls("buildx build")[-1]["argv"]
    assert "--load" in local and "--push" not in local
    platform = local[local.index("--platform") + 1]
    assert platform in ("linux/amd64", "linux/arm64")
