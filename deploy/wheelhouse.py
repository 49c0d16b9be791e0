"""The wheelhouse: every wheel the image installs, downloaded on the host for each target.

``pip download --only-binary=:all: --platform … --python-version 3.11`` fetches the wheels of the
Bento's pinned requirements for another machine. pip does not widen ``manylinux_2_36_<machine>``
to the older glibc tags it implies, so every tag from ``manylinux_2_17`` (``manylinux2014``) up to
Debian bookworm's glibc 2.36 is passed. The image build then installs with
``pip install --no-index --find-links``, so it never reaches a package index: a wheelhouse that
is already complete is checked offline first and never downloaded again.

BentoML locks the Bento's requirements for linux/amd64 only, so each platform gets its own
copy of the lock (``for_platform``) with the packages that publish no wheel for it swapped for
the ones that do.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from deploy.platforms import machine_of

GLIBC_MINORS = range(36, 16, -1)  # 2.36: Debian bookworm; python:3.11-slim has a newer one
PYTHON_VERSION = "3.11"
_MISSING = re.compile(r"No matching distribution found for (\S+)")
#: Per machine, the locked package names that have no wheel there and what replaces them at the
#: same version. tensorflow-cpu is published for x86_64 only; on aarch64 the ``tensorflow``
#: wheel is itself the CPU build, with the same dependencies.
SWAPS = {"aarch64": {"tensorflow-cpu": "tensorflow"}}


class WheelhouseError(Exception):
    """A wheel is missing for one platform; the message names it and what to do."""


def download_command(requirements: Path, dest: Path, platform: str, offline: bool) -> list[str]:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest)]
    command += ["--requirement", str(requirements), "--only-binary=:all:"]
    for tag in platform_tags(platform):
        command += ["--platform", tag]
    command += ["--python-version", PYTHON_VERSION, "--implementation", "cp"]
    return command + (["--no-index", "--find-links", str(dest)] if offline else [])


def for_platform(requirements: Path, dest: Path, platform: str) -> Path:
    """Write ``requirements`` (a lock) to ``dest`` with ``platform``'s SWAPS; return ``dest``."""
    swaps = SWAPS.get(machine_of(platform), {})
    lines = []
    for line in requirements.read_text().splitlines():
        name, sep, rest = line.partition("==")
        lines.append(f"{swaps.get(name.strip().lower(), name)}{sep}{rest}" if sep else line)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n")
    return dest


def platform_tags(platform: str) -> list[str]:
    machine = machine_of(platform)
    return [f"manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS] + [
        f"manylinux2014_{machine}"
    ]


def missing_requirement(pip_output: str) -> str | None:
    """The requirement pip could not find a wheel for, from its error output."""
    found = _MISSING.search(pip_output)
    return found.group(1) if found else None


def _pip(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


def ensure(requirements: Path, root: Path, platform: str, offline: bool = False) -> Path:
    """``root/<machine>`` holding a wheel for every requirement; return that folder.

    The folder is checked offline first; only when something is missing (and ``offline`` is
    False) does pip download from the index.
    """
    dest = root / machine_of(platform)
    dest.mkdir(parents=True, exist_ok=True)
    proc = _pip(download_command(requirements, dest, platform, offline=True))
    if proc.returncode != 0 and not offline:
        proc = _pip(download_command(requirements, dest, platform, offline=False))
    if proc.returncode == 0:
        return dest
    missing = missing_requirement(proc.stderr) or "a requirement"
    how = (
        f"copy a complete wheelhouse to {root} (`make image PLATFORMS={platform}` fills it on "
        "a machine that reaches the package index)"
        if offline
        else "no wheel for this platform on the index: change the pin in bentofile.yaml"
    )
    raise WheelhouseError(f"wheelhouse {dest} has no {platform} wheel for {missing}: {how}")
