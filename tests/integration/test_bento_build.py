"""``bentoml build`` of bentofile.yaml: the Bento has a Dockerfile, pinned requirements,
the source it needs, and references the champion models (packed on export/containerize)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from candlecast.settings import PROJECT_ROOT
from tests.fakes.serving import register_cnn, register_lasso

pytestmark = pytest.mark.integration
SYMBOL = "BUILD-USD"


@pytest.fixture(scope="module")
def bento() -> Path:
    tags = {register_lasso(SYMBOL), register_cnn(SYMBOL)}
    env = {**os.environ, "CANDLECAST_SERVE_SYMBOLS": SYMBOL}
    cmd = [sys.executable, "-m", "bentoml", "build", "--output", "tag", str(PROJECT_ROOT)]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    path = Path(os.environ["BENTOML_HOME"]) / "bentos" / name / version
    assert path.is_dir(), proc.stdout
    path.joinpath("expected_models").write_text("\n".join(sorted(tags)))
    return path


def test_bento_has_dockerfile_and_pinned_requirements(bento):
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "USER bentoml" in dockerfile.splitlines()  # non-root at runtime
    for env in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "CANDLECAST_HOME"):
        assert f"ENV {env}=" in dockerfile, env
    assert "./env/docker/script__" in dockerfile  # deploy/image_setup.sh: the volume mount point
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    for pin in ("tensorflow-cpu==2.21.0", "bentoml==1.4.39", "feast==0.67.0", "redis==7.4.1"):
        assert pin in requirements.splitlines()  # the CPU build: 1.1 GB installed, not 1.4


#: The image's interpreter: Debian bookworm's python3.11 (deploy/base.py). BentoML locks with
#: the host's Python and pip evaluates markers on the host, so a dependency needed only below
#: some patch release (redis: async-timeout on < 3.11.3) must be pinned in bentofile.yaml.
IMAGE_PYTHON = {"python_full_version": "3.11.2", "python_version": "3.11", "extra": ""}


def test_the_lock_holds_every_dependency_the_images_python_needs(bento):
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    locked = {canonicalize_name(line.split("==")[0]) for line in lines if "==" in line}
    missing = set()
    for name in sorted(locked):
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # not installed on this host (e.g. another platform's package)
        for spec in map(Requirement, requires):
            needed = spec.marker is None or spec.marker.evaluate({**IMAGE_PYTHON})
            if needed and canonicalize_name(spec.name) not in locked:
                missing.add(f"{spec.name} (for {name}: {spec})")
    assert not missing, f"pin these in bentofile.yaml: {sorted(missing)}"


def test_bento_references_and_packs_the_champions(bento):
    """BentoML 1.4 records models per service and copies them on export/containerize.

    The default (in-process) layout has one service, which names every champion itself.
    """
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    by_service = {s["name"]: {m["tag"] for m in s["models"]} for s in manifest["services"]}
    assert set(by_service) == {"PricePredictor"}
    assert by_service["PricePredictor"] == set((bento / "expected_models").read_text().split())
    assert manifest["labels"]["project"] == "candlecast"


def test_bento_source_is_the_explicit_include_list(bento):
    src = bento / "src"
    for needed in (
        "bentos/service.py",
        "feature_repo/feature_store.yaml",
        "feature_repo/feature_store.scale.yaml",  # the Redis profile runs in the image too
        "candlecast/settings.py",
        "deploy/live.py",  # the ingest service runs `python -m candlecast live`
        "training/retrain.py",  # which retrains
    ):
        assert (src / needed).is_file(), needed
    assert not (src / "tests").exists() and not (src / "bench").exists()
    assert "secret" not in (bento / "bento.yaml").read_text().lower()
