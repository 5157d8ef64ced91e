"""The reconcile poller queues unscanned versions, but not one whose job just gave up (a poison job stays aside)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from scanner.registry.client import RegistryClient, VersionInfo
from scanner.registry.queue import WorkQueue
from scanner.registry.service.reconcile import FAILED_ASIDE_S, reconcile_once
from scanner.registry.service.worker import retry_delay


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class ListedRegistry(RegistryClient):
    """A registry that lists two unscanned versions and nothing else (no server)."""

    def __init__(self) -> None:
        self.tracking_uri = "http://127.0.0.1:9"
        self.token = None
        self.mlflow = None

    def all_versions(self, *, page_size: int = 200) -> Iterator[VersionInfo]:
        yield VersionInfo(name="poison", version="1", run_id=None)
        yield VersionInfo(name="fine", version="1", run_id=None)


def test_a_job_that_gave_up_is_not_queued_again_until_it_has_been_aside_a_while(tmp_path: Path) -> None:
    clock = Clock()
    queue = WorkQueue(tmp_path / "queue.db", clock=clock)
    registry = ListedRegistry()
    assert reconcile_once(registry, queue) == 2
    while (job := queue.claim()) is not None:  # the poison's every attempt fails, as when MLflow answers 500
        if job.model_name == "fine":
            queue.finish(job, "clean")
            continue
        retry = retry_delay(job.attempts)
        queue.fail(job, "models:/poison/1: INTERNAL_ERROR", retry_in_s=retry)
        clock.now += retry or 0
    assert {(name, state) for name, _, _, state in queue.jobs()} == {("fine", "done"), ("poison", "failed")}
    assert sum(1 for name, *_ in queue.jobs() if name == "poison") == 1  # one job, given up after its retries

    clock.now += 60  # the next polls: "fine" has no tags in this listing either, so it comes back; the poison not
    assert reconcile_once(registry, queue) == 1
    assert queue.open_versions() == {("fine", "1")}
    clock.now += FAILED_ASIDE_S
    assert reconcile_once(registry, queue) == 1
    assert ("poison", "1") in queue.open_versions()
