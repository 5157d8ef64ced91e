"""Where re-scans run: in this process, one after another, or as Ray tasks spread over a cluster.

An executor maps one picklable, top-level function over a list of jobs and yields `(job, result)` pairs as they
finish. The function is the same for every executor, so their results are the same; only where and when it runs
differs. The caller (the re-scan) stays the only writer of tags: workers compute, the driver records.
"""

from __future__ import annotations

import abc
import enum
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import scanner
from scanner.errors import MissingDependency, UsageError

log = logging.getLogger(__name__)

Job = TypeVar("Job")
Result = TypeVar("Result")


class ExecutorKind(str, enum.Enum):
    LOCAL = "local"
    RAY = "ray"


class Executor(abc.ABC):
    """Runs `function(job)` for every job and yields `(job, result)` in the order they finish."""

    name: str

    @abc.abstractmethod
    def map_unordered(self, function: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[tuple[Job, Result]]: ...

    def close(self) -> None:  # noqa: B027 - optional hook, most executors hold nothing
        """Releases what the executor started (a local Ray cluster); a no-op by default."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """One job after another in this process: the reference behaviour every other executor must match."""

    name = "local"

    def map_unordered(self, function: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[tuple[Job, Result]]:
        for job in jobs:
            yield job, function(job)


class _Pending(Generic[Job]):
    def __init__(self, job: Job, ref: Any) -> None:
        self.job = job
        self.ref = ref


class RayExecutor(Executor):
    """Each job is one Ray task: one GPU per task where the cluster has GPUs, one CPU otherwise.

    With `address=None` it starts a private local Ray (bounded to `local_cpus` CPUs and a small object store) and
    stops it on `close()`; with an address ("auto", "ray://head:10001", "10.0.0.5:6379") it joins an existing
    cluster and leaves it running. Jobs and results travel by pickle, so they must be small values (references to
    models, not model bytes): each task fetches its own model, which is what lets tasks spread across machines.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        local_cpus: int | None = None,
        object_store_bytes: int = 256 * 2**20,
        max_in_flight: int | None = None,
    ) -> None:
        self._ray = _import_ray()
        self._owns_cluster = address is None
        # Ship this very scanner package to the workers, so every node runs the same detectors and policy code as
        # the driver (identical results), whether or not (or whichever version) it is installed there.
        runtime_env = {"py_modules": [str(Path(scanner.__file__).parent)]}
        if self._ray.is_initialized():
            self._owns_cluster = False
        elif address is None:
            self._ray.init(
                num_cpus=local_cpus,
                object_store_memory=object_store_bytes,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env=runtime_env,
            )
        else:
            self._ray.init(address=address, log_to_driver=False, configure_logging=False, runtime_env=runtime_env)
        resources = self._ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.cpus = int(resources.get("CPU", 1))
        self.max_in_flight = max_in_flight or 2 * max(1, self.gpus or self.cpus)
        log.info("Ray executor on %s CPUs, %s GPUs (address=%s)", self.cpus, self.gpus, address or "local")

    def task_options(self) -> dict[str, int]:
        """One GPU per task where GPUs exist (the scan then picks CUDA), else one CPU."""
        return {"num_gpus": 1, "num_cpus": 1} if self.gpus else {"num_gpus": 0, "num_cpus": 1}

    def map_unordered(self, function: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[tuple[Job, Result]]:
        ray = self._ray
        remote = ray.remote(**self.task_options())(function)
        waiting = list(jobs)
        pending: list[_Pending[Job]] = []
        # A bounded window of tasks in flight: the queue of a big registry never sits whole in the object store.
        while waiting or pending:
            while waiting and len(pending) < self.max_in_flight:
                job = waiting.pop(0)
                pending.append(_Pending(job, remote.remote(job)))
            ready, _ = ray.wait([p.ref for p in pending], num_returns=1)
            done = next(p for p in pending if p.ref == ready[0])
            pending.remove(done)
            yield done.job, ray.get(done.ref)

    def close(self) -> None:
        if self._owns_cluster and self._ray.is_initialized():
            self._ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise MissingDependency("ray", "ray") from error
    return ray


def make_executor(
    kind: ExecutorKind | str, *, ray_address: str | None = None, local_cpus: int | None = None
) -> Executor:
    kind = ExecutorKind(kind)
    if kind is ExecutorKind.LOCAL:
        if ray_address:
            raise UsageError("--ray-address only applies to --executor ray", hint="add --executor ray, or drop it")
        return LocalExecutor()
    if kind is ExecutorKind.RAY:
        return RayExecutor(ray_address, local_cpus=local_cpus)
    raise AssertionError(kind)  # pragma: no cover - exhaustive over ExecutorKind
