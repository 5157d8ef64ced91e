"""The durable queue: stored before acknowledged, survives a restart, one open job per version, one scan per key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from scanner.registry.queue import SCHEMA_VERSION, QueueError, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delivery_is_recorded_once_and_its_job_queued(tmp_path: Path) -> None:
    queue = WorkQueue(tmp_path / "q.db")
    assert queue.record_delivery("d1", "model_version.created", ("m", "1"))
    assert not queue.record_delivery("d1", "model_version.created", ("m", "1"))  # MLflow's retry: same id
    assert queue.record_delivery("d2", "model_version_tag.set", None)  # stored, nothing to do
    assert queue.counts()["queued"] == 1


def test_one_open_job_per_version(tmp_path: Path) -> None:
    queue = WorkQueue(tmp_path / "q.db")
    assert queue.enqueue("m", "1", reason="webhook")
    assert not queue.enqueue("m", "1", reason="reconcile")
    job = queue.claim()
    assert job is not None
    assert not queue.enqueue("m", "1", reason="reconcile")  # running counts as open
    queue.finish(job, "clean")
    assert queue.enqueue("m", "1", reason="re-scan")  # closed jobs do not block a new one


def test_work_survives_a_restart_and_running_jobs_are_recovered(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = WorkQueue(path)
    for version in range(1, 4):
        first.record_delivery(f"d{version}", "model_version.created", ("m", str(version)))
    claimed = first.claim()
    assert claimed is not None and claimed.model_version == "1"
    first.close()  # as if the process died here, with version 1 running

    second = WorkQueue(path)
    assert second.recover_abandoned() == 1
    versions = []
    while (job := second.claim()) is not None:
        versions.append(job.model_version)
        second.finish(job, "done")
    assert versions == ["1", "2", "3"]
    assert second.claim() is None


def test_failed_job_is_retried_after_its_delay(tmp_path: Path) -> None:
    clock = Clock()
    queue = WorkQueue(tmp_path / "q.db", clock=clock)
    queue.enqueue("m", "1", reason="webhook")
    job = queue.claim()
    assert job is not None and job.attempts == 1
    queue.fail(job, "registry down", retry_in_s=10)
    assert queue.claim() is None
    clock.now += 11
    again = queue.claim()
    assert again is not None and again.attempts == 2
    queue.fail(again, "gave up", retry_in_s=None)
    assert queue.counts()["failed"] == 1


def test_scan_key_bookkeeping(tmp_path: Path) -> None:
    queue = WorkQueue(tmp_path / "q.db")
    assert not queue.already_scanned("m", "1", "k1")
    queue.scan_started("m", "1", "k1")
    assert not queue.already_scanned("m", "1", "k1")  # started but never finished: scan again
    queue.scan_finished("m", "1", "k1")
    assert queue.already_scanned("m", "1", "k1")
    assert not queue.already_scanned("m", "1", "k2")
    queue.scan_started("m", "1", "k2")
    assert [(r.scan_key, r.starts, r.publishes) for r in queue.scan_records()] == [("k1", 1, 1), ("k2", 1, 0)]
    assert [(key, finished is not None) for _, _, key, finished in queue.scans()] == [("k1", True), ("k2", False)]


def test_schema_is_versioned_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    WorkQueue(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(QueueError, match="newer"):
        WorkQueue(path)
