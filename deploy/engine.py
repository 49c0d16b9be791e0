"""The docker commands of an image build: the base, ``build``, ``push`` and the manifest list.

Two ways to build several platforms into one tag:
- **buildx** (GitHub, Docker Desktop): one ``docker buildx build --platform A,B --push``.
- **the engine's classic builder** (a plain ``docker.io`` engine, no buildx): one
  ``docker build --platform P`` per platform, tagged ``TAG-<arch>``; with a push, both arch tags
  are pushed first and only then ``docker manifest create`` + ``push`` publishes ``TAG`` as one
  manifest list, so a failed push never leaves a tag that lacks a platform.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from deploy.base import LOCAL_BASE, STDERR, classic_builder_env, local_base_ref
from deploy.platforms import arch_of

DEFAULT_BASE = "python:3.11-slim"  # the official image; CD pulls it from Docker Hub
PULL_TIMEOUT_SECONDS = 600.0
#: Free space one platform's build takes in the engine's root, beyond its base: the image
#: (2.0 GB for amd64) plus the copy the engine makes while it commits the largest layer
#: (TensorFlow's, 1.1 GB) and pip's downloads inside the RUN step; measured 2.6 GB at its peak.
GIB_PER_PLATFORM = 3


class EngineError(Exception):
    """A docker step failed; the message says which and what to do."""


def run(command: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run ``command``, its output on stderr (stdout is the image ref); raise when it fails."""
    if subprocess.run(list(command), env=env, stdout=STDERR).returncode != 0:
        raise EngineError(f"{what} failed: {' '.join(command)}")


def engine_down(docker: str = "docker") -> str | None:
    """Why the Docker engine does not answer (None: it does), before anything is built."""
    proc = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True)
    if proc.returncode == 0:
        return None
    said = proc.stderr.decode(errors="replace").strip().splitlines()
    return said[-1] if said else f"`{docker} info` exited with {proc.returncode}"


def has_buildx(docker: str = "docker") -> bool:
    proc = subprocess.run([docker, "buildx", "version"], capture_output=True, text=True)
    return proc.returncode == 0


def check_disk(platforms: Sequence[str], docker: str = "docker") -> None:
    """Raise EngineError when the engine's disk cannot hold the builds of ``platforms``."""
    command = [docker, "info", "--format", "{{.DockerRootDir}}"]
    root = subprocess.run(command, capture_output=True, text=True).stdout.strip()
    if not root or not Path(root).exists():
        return  # a remote engine or a rootless one: its own error will tell
    free = shutil.disk_usage(root).free / 2**30
    need = GIB_PER_PLATFORM * len(platforms)
    if free < need:
        raise EngineError(
            f"{root} has {free:.1f} GiB free; building {', '.join(platforms)} needs about "
            f"{need} GiB: free space (docker image prune, docker builder prune) and retry"
        )


def image_platform(ref: str, docker: str = "docker") -> str | None:
    """``os/arch`` of the local image ``ref``, or None when there is none."""
    command = [docker, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", ref]
    proc = subprocess.run(command, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def pull(ref: str, platform: str, docker: str = "docker") -> str | None:
    """Pull ``ref`` for ``platform``; None on success, else the engine's reason."""
    command = [docker, "pull", "--quiet", "--platform", platform, ref]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=PULL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return f"no answer within {PULL_TIMEOUT_SECONDS:g} s"
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


def local_base(requested: str | None) -> bool:
    """Whether ``--base-image`` asks for the local Debian base (``local`` or its name)."""
    return requested is not None and requested.split(":")[0] in ("local", LOCAL_BASE)


def base_for(requested: str | None, platform: str, docker: str = "docker") -> tuple[str, str]:
    """The base to build ``platform`` from and why; the local base when the default cannot be
    had. Raise EngineError when an explicitly requested base is neither present nor pullable."""
    if local_base(requested):
        return local_base_ref(platform), "requested"
    ref = requested or DEFAULT_BASE
    if image_platform(ref, docker) == platform:
        return ref, "present"
    reason = pull(ref, platform, docker)
    if reason is None:
        return ref, "pulled"
    if requested is not None:
        raise EngineError(
            f"base image {ref} for {platform} is not present and cannot be pulled ({reason}): "
            "load it (docker load), or build the local Debian base with `make base-image` and "
            "use BASE_IMAGE=local"
        )
    return local_base_ref(platform), f"{ref} cannot be pulled ({reason})"


def classic_build_command(
    context: Path, ref: str, platform: str, base: str, wheels_url: str, docker: str = "docker"
) -> list[str]:
    """``docker build`` of one platform; its RUN steps fetch wheels from ``wheels_url``/<arch>/
    on 127.0.0.1, so they run on the host's network (which is all they reach)."""
    arch = arch_of(platform)
    command = [docker, "build", "--platform", platform, "--tag", ref, "--network", "host"]
    command += ["--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"TARGETARCH={arch}"]
    command += ["--build-arg", f"WHEELS={wheels_url}/{arch}/"]
    return [*command, "--file", str(context / "Dockerfile"), str(context)]


def classic_build(
    context: Path, ref: str, platform: str, base: str, wheels_url: str, docker: str = "docker"
) -> None:
    command = classic_build_command(context, ref, platform, base, wheels_url, docker)
    run(command, f"docker build for {platform}", env=classic_builder_env())


def buildx_command(
    context: Path, ref: str, platforms: str, push: bool, base: str | None
) -> list[str]:
    command = ["buildx", "build", "--push" if push else "--load", "--platform", platforms]
    command += ["--tag", ref]
    command += ["--build-arg", f"BASE_IMAGE={base}"] if base else []
    return [*command, "--file", str(context / "Dockerfile"), str(context)]


def registry_of(image: str) -> str | None:
    """The registry host of ``image`` (``127.0.0.1:5000``), or None for Docker Hub names."""
    first, _, rest = image.partition("/")
    return first if rest and ("." in first or ":" in first or first == "localhost") else None


def registry_answers(registry: str) -> str | None:
    """None when ``registry``'s ``/v2/`` answers at all (401 included), else why not."""
    local = registry.split(":")[0] in ("127.0.0.1", "localhost")
    url = f"{'http' if local else 'https'}://{registry}/v2/"
    try:
        with urllib.request.urlopen(url, timeout=10):
            return None
    except urllib.error.HTTPError:
        return None  # it answered (e.g. 401: log in first)
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"


def manifest_commands(ref: str, arch_refs: dict[str, str], insecure: bool) -> list[list[str]]:
    """``docker manifest create`` (+ ``annotate`` per arch) and ``push`` of ``ref``."""
    flag = ["--insecure"] if insecure else []
    commands = [["manifest", "create", *flag, "--amend", ref, *arch_refs.values()]]
    for platform, arch_ref in arch_refs.items():
        os_name, arch = platform.split("/")
        commands.append(["manifest", "annotate", "--os", os_name, "--arch", arch, ref, arch_ref])
    return [*commands, ["manifest", "push", *flag, "--purge", ref]]


def manifest_platforms(ref: str, docker: str = "docker") -> list[str]:
    """The ``os/arch`` of each entry of the manifest list ``ref`` in its registry."""
    proc = subprocess.run(
        [docker, "manifest", "inspect", "--insecure", ref], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise EngineError(f"docker manifest inspect {ref} failed: {proc.stderr.strip()}")
    entries = json.loads(proc.stdout).get("manifests", [])
    return [f"{m['platform']['os']}/{m['platform']['architecture']}" for m in entries]
