"""``python -m deploy.image`` through the real ``bentoml build``/``containerize`` and a fake docker.

A throwaway one-endpoint service stands in for the real one (whose build needs trained models;
that build is tested with the service). What is under test is the invocation: one
``docker buildx build --platform linux/amd64,linux/arm64 --push`` with one tag, and a
Dockerfile that runs as a non-root user with thread caps from the environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from candlecast.settings import PROJECT_ROOT
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


def _image(docker: FakeDocker, project: Path, *args: str) -> subprocess.CompletedProcess:
    # A store of its own: the throwaway Bento must not show up in other tests' stores.
    env = {**os.environ, **docker.env(), "BENTOML_HOME": str(project.parent / "bentoml")}
    command = [sys.executable, "-m", "deploy.image", *args]
    command += ["--bentofile", str(project / "bentofile.yaml"), "--context", str(project)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def test_push_builds_one_multi_arch_tag_with_buildx(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "service.py").write_text(SERVICE)
    (project / "bentofile.yaml").write_text(BENTOFILE)
    (project / "deploy").mkdir()
    shutil.copy2(PROJECT_ROOT / "deploy" / "image_setup.sh", project / "deploy")
    docker = FakeDocker(tmp_path / "docker")

    proc = _image(docker, project, "--push", "--image", "ghcr.io/acme/candlecast", "--tag", "sha-1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ghcr.io/acme/candlecast:sha-1")
    (build,) = docker.calls("buildx build")
    argv = build["argv"]
    assert argv[:7] == [
        "buildx", "build", "--push", "--platform", "linux/amd64,linux/arm64",
        "--tag", "ghcr.io/acme/candlecast:sha-1",
    ]  # fmt: skip
    assert "--load" not in argv and argv.count("--tag") == 1
    dockerfile = (docker.state / "Dockerfile").read_text()
    assert dockerfile.rstrip().splitlines()[-3] == "USER bentoml"  # non-root at runtime
    assert "ENV OMP_NUM_THREADS=$OMP_NUM_THREADS" in dockerfile
    assert "ENV TF_NUM_INTRAOP_THREADS=$TF_NUM_INTRAOP_THREADS" in dockerfile
    assert "ENV CANDLECAST_HOME=$CANDLECAST_HOME" in dockerfile
    assert "./env/docker/script__" in dockerfile  # the volume mount point is created

    # Without --push: this machine's platform only, loaded into the local engine.
    proc = _image(docker, project, "--image", "candlecast", "--bento", "tiny:latest")
    assert proc.returncode == 0, proc.stderr
    local = docker.calls("buildx build")[-1]["argv"]
    assert "--load" in local and "--push" not in local
    platform = local[local.index("--platform") + 1]
    assert platform in ("linux/amd64", "linux/arm64")
