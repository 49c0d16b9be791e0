"""The local Ray cluster of this process, capped for a small machine.

Feast's Ray offline store and engine (``feature_store.scale.yaml``'s ``ray_conf``) and the
training fan-out (``training.executor``) share one cluster per process: whichever starts
it first uses the same caps (``Settings.ray_num_cpus`` CPUs, no dashboard, its sessions
and logs under ``Settings.ray_temp_dir``), and the other finds it running. ``ray`` is the
``scale`` extra (``pip install -e '.[scale]'``); nothing else in the core imports it.
"""

from __future__ import annotations

import logging
from typing import Any

from candlecast.errors import Failure
from candlecast.settings import get_settings

log = logging.getLogger(__name__)


class RayMissing(Failure, ImportError):  # noqa: N818 (the install step is the message)
    """``ray`` is not installed: the scale extra is not in this environment (exit 1)."""


def ray_module() -> Any:
    """``import ray``, or a one-line answer saying which extra installs it."""
    try:
        import ray
    except ImportError as exc:
        raise RayMissing(
            "Ray is not installed: `pip install -e '.[scale]'` (the scale profile's extra)"
        ) from exc
    return ray


def init_kwargs() -> dict[str, Any]:
    """``ray.init`` arguments: a new local cluster (never one another user started),
    ``ray_num_cpus`` CPUs, no dashboard, quiet drivers, the temp dir of the settings."""
    settings = get_settings()
    temp = settings.ray_temp_dir
    temp.mkdir(parents=True, exist_ok=True)
    return {
        "address": "local",
        "num_cpus": settings.ray_num_cpus,
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "_temp_dir": str(temp),
    }


def ensure_ray() -> Any:
    """The ``ray`` module with this process's cluster running (started here if not yet)."""
    ray = ray_module()
    if not ray.is_initialized():
        kwargs = init_kwargs()
        log.info("starting a local Ray cluster: %d CPUs, logs under %s", *_shown(kwargs))
        ray.init(**kwargs)
    return ray


def _shown(kwargs: dict[str, Any]) -> tuple[int, str]:
    return kwargs["num_cpus"], kwargs["_temp_dir"]
