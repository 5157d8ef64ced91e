"""The durable work queue of `serve`: an sqlite file that outlives crashes and restarts.

An event is committed here before the webhook is acknowledged, so MLflow retries anything we did not store. A job is
one model version to look at; at most one job per version waits or runs at a time. `scan_runs` records every scan
that ran, keyed by (digest, detector versions, policy version): a version is scanned once per key, however many
events, restarts or pollers point at it. The schema carries a version (PRAGMA user_version) and is upgraded forward
in small steps.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scanner.errors import RegistryError

SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    outcome TEXT
);
CREATE UNIQUE INDEX one_open_job_per_version ON jobs (model_name, model_version) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_by_state ON jobs (state, not_before, id);
CREATE TABLE scan_runs (
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    scan_key TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    starts INTEGER NOT NULL DEFAULT 0,
    publishes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (model_name, model_version, scan_key)
);
"""

# Index i upgrades a database at version i to version i + 1.
_UPGRADES: tuple[str, ...] = (_SCHEMA_V1,)


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    id: int
    model_name: str
    model_version: str
    reason: str
    attempts: int


@dataclass(frozen=True)
class ScanRecord:
    model_name: str
    model_version: str
    scan_key: str
    starts: int  # more than one: a scan was interrupted (crash) and ran again
    publishes: int  # tags written; more than one would be a double scan


class QueueError(RegistryError):
    kind = "queue"


class WorkQueue:
    """Thread-safe: one connection, serialised by a lock (sqlite writes serialise anyway)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives a power cut
        self._upgrade()

    def _upgrade(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise QueueError(
                    f"queue database {self.path} has schema version {version}, newer than this scanner's "
                    f"{SCHEMA_VERSION}",
                    hint="upgrade model-scanner, or point --queue at a new file",
                )
            for step in range(version, SCHEMA_VERSION):
                _run_script(db, _UPGRADES[step])
                db.execute(f"PRAGMA user_version = {step + 1}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- intake of work -------------------------------------------------------------------------------------------

    def record_delivery(self, delivery_id: str, event: str, target: tuple[str, str] | None) -> bool:
        """Stores a delivery (and its job, if any) atomically. False when the delivery id was seen before."""
        with self._transaction() as db:
            seen = db.execute("SELECT 1 FROM deliveries WHERE delivery_id = ?", (delivery_id,)).fetchone()
            if seen:
                return False
            db.execute(
                "INSERT INTO deliveries (delivery_id, event, received_at) VALUES (?, ?, ?)",
                (delivery_id, event, self._clock()),
            )
            if target is not None:
                self._enqueue(db, target[0], target[1], reason=f"webhook {event}")
            return True

    def enqueue(
        self, model_name: str, model_version: str, *, reason: str, unless_failed_within_s: float | None = None
    ) -> bool:
        """Queues a version unless a job for it already waits or runs (or, with `unless_failed_within_s`, gave up
        that recently: a poison job stays aside instead of coming back at every poll). True when a job was added."""
        with self._transaction() as db:
            if unless_failed_within_s is not None:
                failed = db.execute(
                    "SELECT 1 FROM jobs WHERE model_name = ? AND model_version = ? AND state = ? AND finished_at > ?",
                    (model_name, model_version, JobState.FAILED.value, self._clock() - unless_failed_within_s),
                ).fetchone()
                if failed:
                    return False
            return self._enqueue(db, model_name, model_version, reason=reason)

    def _enqueue(self, db: sqlite3.Connection, model_name: str, model_version: str, *, reason: str) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO jobs (model_name, model_version, reason, state, enqueued_at) VALUES (?, ?, ?, ?, ?)",
            (model_name, model_version, reason, JobState.QUEUED.value, self._clock()),
        )
        return cursor.rowcount == 1

    # -- workers ----------------------------------------------------------------------------------------------------

    def recover_abandoned(self) -> int:
        """Puts jobs left running by a previous process (a crash) back in the queue. Call once at start-up."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET state = ?, started_at = NULL WHERE state = ?",
                (JobState.QUEUED.value, JobState.RUNNING.value),
            )
            return cursor.rowcount

    def claim(self) -> Job | None:
        """Takes the oldest ready job and marks it running."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, model_name, model_version, reason, attempts FROM jobs "
                "WHERE state = ? AND not_before <= ? ORDER BY id LIMIT 1",
                (JobState.QUEUED.value, self._clock()),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = ?, started_at = ?, attempts = attempts + 1 WHERE id = ?",
                (JobState.RUNNING.value, self._clock(), row[0]),
            )
            return Job(id=row[0], model_name=row[1], model_version=row[2], reason=row[3], attempts=row[4] + 1)

    def claim_version(self, model_name: str, model_version: str, *, reason: str) -> Job | None:
        """Claims one given version as a running job, atomically; None when a job for it is already queued or
        running (how `rescan` and `serve` share one queue file without scanning a version twice)."""
        try:
            with self._transaction() as db:
                cursor = db.execute(
                    "INSERT INTO jobs (model_name, model_version, reason, state, attempts, enqueued_at, started_at) "
                    "VALUES (?, ?, ?, ?, 1, ?, ?)",
                    (model_name, model_version, reason, JobState.RUNNING.value, self._clock(), self._clock()),
                )
                job_id = cursor.lastrowid
        except sqlite3.IntegrityError:
            return None
        assert job_id is not None
        return Job(id=job_id, model_name=model_name, model_version=model_version, reason=reason, attempts=1)

    def finish(self, job: Job, outcome: str) -> None:
        self._close_job(job, JobState.DONE, outcome)

    def fail(self, job: Job, outcome: str, *, retry_in_s: float | None) -> None:
        """Ends a job that could not complete; with `retry_in_s`, queues it again after that delay."""
        if retry_in_s is None:
            self._close_job(job, JobState.FAILED, outcome)
            return
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, not_before = ?, outcome = ? WHERE id = ?",
                (JobState.QUEUED.value, self._clock() + retry_in_s, outcome, job.id),
            )

    def _close_job(self, job: Job, state: JobState, outcome: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, outcome = ? WHERE id = ?",
                (state.value, self._clock(), outcome, job.id),
            )

    # -- scan bookkeeping ---------------------------------------------------------------------------------------------

    def already_scanned(self, model_name: str, model_version: str, scan_key: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM scan_runs WHERE model_name = ? AND model_version = ? AND scan_key = ? "
                "AND finished_at IS NOT NULL",
                (model_name, model_version, scan_key),
            ).fetchone()
        return row is not None

    def scan_started(self, model_name: str, model_version: str, scan_key: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO scan_runs (model_name, model_version, scan_key, started_at, starts) "
                "VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT DO UPDATE SET started_at = excluded.started_at, starts = starts + 1",
                (model_name, model_version, scan_key, self._clock()),
            )

    def scan_finished(self, model_name: str, model_version: str, scan_key: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE scan_runs SET finished_at = ?, publishes = publishes + 1 "
                "WHERE model_name = ? AND model_version = ? AND scan_key = ?",
                (self._clock(), model_name, model_version, scan_key),
            )

    # -- inspection (status, tests, benchmarks) ---------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state.value: 0 for state in JobState} | {row[0]: row[1] for row in rows}

    def scans(self) -> list[tuple[str, str, str, float | None]]:
        """Every recorded scan: (model name, version, scan key, finished_at or None if it never finished)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT model_name, model_version, scan_key, finished_at FROM scan_runs ORDER BY started_at"
            ).fetchall()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def scan_records(self) -> list[ScanRecord]:
        """Every scan key seen, with how often its scan started and how often its result was published."""
        with self._lock:
            rows = self._db.execute(
                "SELECT model_name, model_version, scan_key, starts, publishes FROM scan_runs ORDER BY started_at"
            ).fetchall()
        return [ScanRecord(*row) for row in rows]

    def jobs(self) -> list[tuple[str, str, str, str]]:
        """Every job, oldest first: (model name, version, why it was queued, state)."""
        with self._lock:
            rows = self._db.execute("SELECT model_name, model_version, reason, state FROM jobs ORDER BY id").fetchall()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def open_versions(self) -> set[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT model_name, model_version FROM jobs WHERE state IN (?, ?)",
                (JobState.QUEUED.value, JobState.RUNNING.value),
            ).fetchall()
        return {(row[0], row[1]) for row in rows}


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the open transaction; run the statements one by one inside it instead.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
