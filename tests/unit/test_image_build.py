"""The pieces of an image build, without docker: base, wheelhouse, context and manifest."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy import base, engine, image_context, wheelhouse
from deploy.platforms import MULTI_ARCH, arch_of, machine_of, split


def test_platform_names() -> None:
    assert split(MULTI_ARCH) == ["linux/amd64", "linux/arm64"]
    assert [arch_of(p) for p in split(MULTI_ARCH)] == ["amd64", "arm64"]
    assert [machine_of(p) for p in split(MULTI_ARCH)] == ["x86_64", "aarch64"]
    with pytest.raises(ValueError, match="unsupported platform"):
        split("linux/arm/v7")


def test_local_base_is_bookworm_python_per_arch() -> None:
    command = base.mmdebstrap_command("linux/arm64", Path("/tmp/rootfs.tar"))
    assert command[:4] == ["mmdebstrap", "--quiet", "--variant=minbase", "--arch=arm64"]
    assert "--include=python3.11,python3-venv,ca-certificates" in command
    assert command[-2:] == ["bookworm", "/tmp/rootfs.tar"]
    assert base.local_base_ref("linux/arm64") == "candlecast-base:bookworm-arm64"
    assert "FROM scratch" in base.DOCKERFILE  # built with --platform: the config's arch is right


def test_wheelhouse_asks_for_every_manylinux_tag_of_bookworm() -> None:
    command = wheelhouse.download_command(Path("r.txt"), Path("w"), "linux/arm64", offline=True)
    tags = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags and "--only-binary=:all:" in command
    assert command[-3:] == ["--no-index", "--find-links", "w"]
    stderr = "ERROR: No matching distribution found for tensorflow==9.9\n"
    assert wheelhouse.missing_requirement(stderr) == "tensorflow==9.9"


def test_incomplete_wheelhouse_offline_names_the_missing_wheel(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("candlecast-no-such-package==1.0\n")
    with pytest.raises(wheelhouse.WheelhouseError) as caught:
        wheelhouse.ensure(requirements, tmp_path / "wheels", "linux/arm64", offline=True)
    message = str(caught.value)
    assert "linux/arm64" in message and "candlecast-no-such-package==1.0" in message
    assert "make image" in message or "wheelhouse" in message


def test_dockerfile_gets_the_bento_envs_and_setup_script(tmp_path: Path) -> None:
    bento_yaml = tmp_path / "bento.yaml"
    info = {
        "envs": [{"name": "CANDLECAST_HOME", "value": "/home/bentoml/candlecast"}],
        "image": {"post_commands": ["chmod +x ./env/docker/script__ab && ./env/docker/script__ab"]},
    }
    bento_yaml.write_text(yaml.safe_dump(info))
    lines = image_context.render_dockerfile(bento_yaml).splitlines()
    assert 'ENV CANDLECAST_HOME="/home/bentoml/candlecast"' in lines
    assert "RUN chmod +x ./env/docker/script__ab && ./env/docker/script__ab" in lines
    assert "USER bentoml" in lines and lines[-1].startswith("ENTRYPOINT")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert "--no-index" in "\n".join(lines)  # the image build never reaches an index
    # BuildKit bind-mounts the wheels; the classic builder cannot, and fetches them instead.
    assert any(line.startswith("RUN --mount=type=bind,source=wheels/") for line in lines)
    classic = image_context.render_dockerfile(bento_yaml, classic=True)
    assert "RUN --mount" not in classic and classic.count('--find-links "$WHEELS"') == 2


def test_classic_build_fetches_the_wheels_it_is_served(tmp_path: Path) -> None:
    (tmp_path / "amd64").mkdir()
    (tmp_path / "amd64" / "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"w")
    with image_context.serve_wheels(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/amd64/", timeout=5) as response:
            listing = response.read().decode()  # what pip --find-links reads
        assert 'href="numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.whl"' in listing
    command = engine.classic_build_command(tmp_path, "c:t", "linux/arm64", "b", url)
    assert command[command.index("--network") + 1] == "host"  # 127.0.0.1 is the host's
    assert f"WHEELS={url}/arm64/" in command and "TARGETARCH=arm64" in command


def test_each_platform_gets_a_lock_it_has_wheels_for(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        "--index-url https://pypi.org/simple\n\nkeras==3.15.1\ntensorflow-cpu==2.21.0\n"
    )
    arm = wheelhouse.for_platform(lock, tmp_path / "r" / "arm64.txt", "linux/arm64")
    assert arm.read_text().splitlines()[2:] == ["keras==3.15.1", "tensorflow==2.21.0"]
    amd = wheelhouse.for_platform(lock, tmp_path / "r" / "amd64.txt", "linux/amd64")
    assert amd.read_text() == lock.read_text()


def test_manifest_list_is_pushed_after_both_arch_tags() -> None:
    arch_refs = {"linux/amd64": "r/c:t-amd64", "linux/arm64": "r/c:t-arm64"}
    commands = engine.manifest_commands("r/c:t", arch_refs, insecure=True)
    assert commands[0] == [
        "manifest",
        "create",
        "--insecure",
        "--amend",
        "r/c:t",
        *arch_refs.values(),
    ]
    assert [
        "manifest",
        "annotate",
        "--os",
        "linux",
        "--arch",
        "arm64",
        "r/c:t",
        "r/c:t-arm64",
    ] in commands
    assert commands[-1] == ["manifest", "push", "--insecure", "--purge", "r/c:t"]


def test_registry_of_an_image_name() -> None:
    assert engine.registry_of("127.0.0.1:5000/candlecast") == "127.0.0.1:5000"
    assert engine.registry_of("ghcr.io/acme/candlecast") == "ghcr.io"
    assert engine.registry_of("acme/candlecast") is None
    assert engine.registry_answers("127.0.0.1:1") is not None  # nothing listens there


def test_default_base_falls_back_to_the_local_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "image_platform", lambda ref, docker="docker": None)
    monkeypatch.setattr(engine, "pull", lambda ref, platform, docker="docker": "no such host")
    ref, why = engine.base_for(None, "linux/arm64")
    assert ref == "candlecast-base:bookworm-arm64" and "python:3.11-slim" in why
    assert engine.base_for("local", "linux/amd64")[0] == "candlecast-base:bookworm-amd64"
    with pytest.raises(engine.EngineError, match="make base-image"):
        engine.base_for("python:3.11-bookworm", "linux/amd64")


def test_a_full_disk_stops_the_build_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answer = subprocess.CompletedProcess([], 0, stdout=f"{tmp_path}\n")
    monkeypatch.setattr(engine.subprocess, "run", lambda *a, **k: answer)
    monkeypatch.setattr(
        engine.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 2**30)
    )
    with pytest.raises(engine.EngineError, match=r"1\.0 GiB free.*needs about 6 GiB"):
        engine.check_disk(["linux/amd64", "linux/arm64"])


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_a_dead_engine_stops_the_build_first_with_what_to_do(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from deploy.image import app

    dead = f"unix://{tmp_path / 'no-dockerd.sock'}"  # the real CLI, no engine behind it
    monkeypatch.setenv("DOCKER_HOST", dead)
    assert "no-dockerd.sock" in (engine.engine_down() or "")
    result = CliRunner().invoke(app, ["--bento", "candlecast:none"])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "the Docker engine does not answer" in said and "start it" in said
    assert "python:3.11-slim" not in said  # not mistaken for a missing base image
