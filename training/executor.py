"""Run independent units of work serially or as tasks on the local Ray cluster.

``train`` and ``backtest`` cut their work into (symbol, family) units whose function
reads and writes no store (``training.train.fit_family``, ``walk_forward``): the same
function runs here or in a Ray worker, and the caller (the driver) writes the results.
A unit that raises, or whose Ray worker dies (killed, out of memory), becomes a
:class:`UnitFailure` naming it; the other units still finish and are returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from candlecast.errors import Failure

log = logging.getLogger(__name__)
Executor = Literal["serial", "ray"]
EXECUTORS: tuple[Executor, ...] = ("serial", "ray")
J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class UnitFailure:
    """A unit that did not finish: its label (``SYMBOL family``) and why."""

    label: str
    reason: str


class UnitsFailedError(Failure, RuntimeError):
    """Some units failed (exit 1); the message names each one. The others were kept."""

    def __init__(self, failures: Sequence[UnitFailure], kept: int) -> None:
        self.failures = list(failures)
        named = "; ".join(f"{f.label}: {f.reason}" for f in failures)
        super().__init__(
            f"{len(failures)} of {len(failures) + kept} training units failed ({named}); "
            f"the other {kept} finished and were kept"
        )


def check_executor(name: str) -> Executor:
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose {' or '.join(EXECUTORS)}")
    return name  # type: ignore[return-value]


def run_units(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    labels: Sequence[str],
    executor: Executor = "serial",
    on_done: Callable[[str], None] | None = None,
) -> list[R | UnitFailure]:
    """``fn(job)`` for every job, results in the jobs' order; failures in their place."""
    if executor == "ray":
        return _on_ray(fn, jobs, labels, on_done)
    return [_serially(fn, job, label, on_done) for job, label in zip(jobs, labels, strict=True)]


def _serially(fn: Callable[[J], R], job: J, label: str, on_done) -> R | UnitFailure:
    try:
        result: R | UnitFailure = fn(job)
    except Exception as exc:
        log.exception("%s failed", label)
        result = UnitFailure(label, f"{type(exc).__name__}: {exc}")
    if on_done:
        on_done(label)
    return result


def _on_ray(fn, jobs, labels, on_done) -> list[Any]:
    """One Ray task per job (named after it, so ``ps`` shows ``ray::train BTC-USD lasso``).

    ``max_retries=0``: a dead worker fails its unit instead of silently re-running it.
    Each task takes one CPU and fits on one thread, so the cluster's CPUs are the cap.
    """
    from candlecast.ray_cluster import ensure_ray

    ray = ensure_ray()
    remote = ray.remote(num_cpus=1, max_retries=0)(fn)
    env = {"env_vars": {"CANDLECAST_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}}
    refs = [
        remote.options(name=f"train {label}", runtime_env=env).remote(job)
        for job, label in zip(jobs, labels, strict=True)
    ]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        i = index[done[0]]
        results[i] = _fetch(ray, done[0], labels[i])
        if on_done:
            on_done(labels[i])
    return results


def _fetch(ray, ref, label: str) -> Any:
    """The task's result, or a :class:`UnitFailure` saying how it failed."""
    from ray.exceptions import RayTaskError, WorkerCrashedError

    try:
        return ray.get(ref)
    except RayTaskError as exc:  # the unit raised: its own exception, not Ray's wrapper
        cause = exc.cause if exc.cause is not None else exc
        log.error("%s failed in its Ray worker: %s", label, cause)
        return UnitFailure(label, f"{type(cause).__name__}: {cause}")
    except WorkerCrashedError as exc:
        log.error("%s: its Ray worker died mid-task: %s", label, exc)
        return UnitFailure(label, "its Ray worker died before the unit finished (killed?)")
    except ray.exceptions.RayError as exc:
        log.error("%s: Ray lost the task: %s", label, exc)
        return UnitFailure(label, f"Ray lost the task: {type(exc).__name__}")
