"""The local base image: Debian bookworm and its Python 3.11, built from Debian's packages.

``mmdebstrap`` unpacks a minimal bookworm with ``python3.11`` into a tarball, and a two-line
Dockerfile (``FROM scratch`` + ``ADD``) built with ``--platform`` makes it an image whose config
records the right architecture (``docker import --platform linux/arm64`` records the engine's
own, and a manifest list made from that would offer the Pi an "amd64" image). A foreign
architecture is unpacked through qemu-user-static (binfmt_misc).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from deploy.platforms import arch_of, machine_of, native_platform

#: The process's own stderr, also under a captured ``sys.stderr``: a build's output goes there,
#: since ``make image`` prints only the image ref on stdout.
STDERR = 2

LOCAL_BASE = "candlecast-base"
SUITE = "bookworm"  # Debian 12 ships Python 3.11, the version the Bento pins
PACKAGES = ("python3.11", "python3-venv", "ca-certificates")
#: What the image never reads: docs, man pages, translations (dpkg skips them on unpack).
EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
DOCKERFILE = 'FROM scratch\nADD rootfs.tar /\nENV LANG=C.UTF-8\nCMD ["python3.11"]\n'


class BaseImageError(Exception):
    """The base image could not be built; the message says what is missing."""


def classic_builder_env() -> dict[str, str]:
    """The engine's own builder: needs no buildx and never pulls a frontend image."""
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


def local_base_ref(platform: str) -> str:
    """``candlecast-base:bookworm-<arch>``: one local tag per architecture."""
    return f"{LOCAL_BASE}:{SUITE}-{arch_of(platform)}"


def mmdebstrap_command(platform: str, tarball: Path) -> list[str]:
    command = ["mmdebstrap", "--quiet", "--variant=minbase", f"--arch={arch_of(platform)}"]
    command += [f"--include={','.join(PACKAGES)}", "--aptopt=Acquire::Languages none"]
    command += [f"--dpkgopt=path-exclude={pattern}" for pattern in EXCLUDES]
    return [*command, SUITE, str(tarball)]


def check_tools(platform: str) -> None:
    """Raise BaseImageError naming the package to install when a tool is missing."""
    if shutil.which("mmdebstrap") is None:
        raise BaseImageError("mmdebstrap not found: apt-get install mmdebstrap")
    if platform != native_platform() and not emulates(platform):
        raise BaseImageError(
            f"{platform} needs qemu: apt-get install qemu-user-static binfmt-support (in a "
            "container also: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)"
        )


def emulates(platform: str) -> bool:
    """Whether binfmt_misc runs ``platform``'s binaries (through qemu-user-static)."""
    return Path(f"/proc/sys/fs/binfmt_misc/qemu-{machine_of(platform)}").exists()


def build_base(platform: str, docker: str = "docker") -> str:
    """Build ``candlecast-base:bookworm-<arch>`` for ``platform`` and return its ref."""
    check_tools(platform)
    ref = local_base_ref(platform)
    with tempfile.TemporaryDirectory(prefix="candlecast-base-") as tmp:
        unpack = mmdebstrap_command(platform, Path(tmp, "rootfs.tar"))
        if subprocess.run(unpack, stdout=STDERR).returncode:
            raise BaseImageError(f"mmdebstrap of {SUITE} for {platform} failed (see above)")
        Path(tmp, "Dockerfile").write_text(DOCKERFILE)
        build = [docker, "build", "--quiet", "--platform", platform, "--tag", ref, tmp]
        if subprocess.run(build, env=classic_builder_env(), stdout=subprocess.DEVNULL).returncode:
            raise BaseImageError(f"docker build of {ref} failed (see above)")
    return ref
