"""Docker platforms (``linux/arm64``), Debian architectures (``arm64``) and wheel machines
(``aarch64``): the three names of one target, and this machine's own."""

from __future__ import annotations

import platform as host

MULTI_ARCH = "linux/amd64,linux/arm64"
_ARCHES = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
_HOST = {"x86_64": "linux/amd64", "amd64": "linux/amd64", "aarch64": "linux/arm64"}


def native_platform() -> str:
    """This machine's Docker platform (what a build runs without emulation)."""
    return _HOST.get(host.machine().lower(), "linux/arm64")


def split(platforms: str) -> list[str]:
    """``"linux/amd64,linux/arm64"`` as a list; raise ValueError on an unknown platform."""
    names = [p.strip() for p in platforms.split(",") if p.strip()]
    unknown = [p for p in names if p not in _ARCHES]
    if unknown or not names:
        raise ValueError(f"unsupported platform {unknown or platforms!r}: use {MULTI_ARCH}")
    return names


def arch_of(platform: str) -> str:
    """Debian's and Docker's architecture name: ``amd64`` or ``arm64``."""
    return _ARCHES[platform]


def machine_of(platform: str) -> str:
    """The machine name wheels are tagged with: ``x86_64`` or ``aarch64``."""
    return _MACHINES[arch_of(platform)]
