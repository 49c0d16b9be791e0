"""A real local Ray cluster for a test module, and the worker processes it runs.

One cluster per module (starting one costs 5-10 s on 2 cores): capped at
``CANDLECAST_RAY_NUM_CPUS`` (2), no dashboard, its sessions and logs in a fresh short
/tmp dir (Ray's socket paths must stay under 107 bytes, which pytest's tmp paths do not),
removed afterwards. Feast's Ray store and the training fan-out both find it running.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.serve import descendants

pytest.importorskip("ray", reason="the scale extra: pip install -e '.[scale]'")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """``ray`` with this module's local cluster running."""
    import ray

    from candlecast.ray_cluster import ensure_ray
    from candlecast.settings import reset_settings

    temp = tempfile.mkdtemp(prefix="cc-ray-")
    previous = os.environ.get("CANDLECAST_RAY_DIR")
    os.environ["CANDLECAST_RAY_DIR"] = temp
    reset_settings()
    try:
        yield ensure_ray()
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("CANDLECAST_RAY_DIR", None)
        else:
            os.environ["CANDLECAST_RAY_DIR"] = previous
        reset_settings()
        shutil.rmtree(temp, ignore_errors=True)


def task_pids(title: str) -> list[int]:
    """PIDs of this process' Ray workers now running the task named ``title``.

    Ray titles a busy worker ``ray::<task name>``; only descendants of this process (its
    own cluster, not another user's) are returned.
    """
    mine = descendants(os.getpid())
    wanted = f"ray::{title}".encode()
    found = []
    for pid in mine:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.rstrip(b"\0").split(b"\0")[0] == wanted:
            found.append(pid)
    return found
