"""`serve` assembled: queue, webhook receiver, workers and reconcile poller, started and stopped together.

Start-up order matters for reliability: the queue recovers jobs a crash left running, the receiver listens, the
webhook is registered (pointing at the receiver), then workers and the poller start; the poller's first round runs
at once, so versions registered while the service was down are caught up without waiting for an interval.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scanner.errors import RegistryError
from scanner.registry.client import RegistryClient
from scanner.registry.queue import WorkQueue
from scanner.registry.service.receiver import WebhookReceiver
from scanner.registry.service.reconcile import DEFAULT_INTERVAL_S, ReconcilePoller
from scanner.registry.service.subscription import ensure_webhook
from scanner.registry.service.worker import ScanEngine, Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    tracking_uri: str
    queue_path: Path
    webhook_secret: str
    scanner_token: str | None
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    # The URL MLflow posts to; defaults to the receiver's own address (fine when both run on one host).
    public_url: str | None = None
    workers: int = 1
    reconcile_interval_s: float = DEFAULT_INTERVAL_S
    register_webhook: bool = True
    max_age_s: float = 300


class QueueOwnership:
    """One `serve` per queue file: an exclusive lock beside it, held while the service runs.

    A second service on the same queue would put the first one's running jobs back in the queue at start-up
    (`recover_abandoned`) and scan them twice. The lock is the operating system's (flock), so a crashed service never
    leaves it stale: a restart after a crash takes it at once. `rescan` shares the queue without it (it claims
    versions one by one).
    """

    def __init__(self, queue_path: Path) -> None:
        self.path = queue_path.with_name(queue_path.name + ".serve-lock")
        self._descriptor: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise RegistryError(
                f"another model-scanner serve (pid {holder}) is using the queue {self.path.with_suffix('')}",
                hint="stop it, or give this one its own --state-dir",
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing drops the lock
            self._descriptor = None


class ScannerService:
    def __init__(self, config: ServiceConfig, engine: ScanEngine) -> None:
        self.config = config
        self.ownership = QueueOwnership(config.queue_path)
        self.ownership.acquire()  # before the queue is touched; released by stop()
        self.queue = WorkQueue(config.queue_path)
        try:
            self.registry = RegistryClient(config.tracking_uri, token=config.scanner_token)
            self.receiver = WebhookReceiver(
                self.queue,
                secret=config.webhook_secret,
                host=config.listen_host,
                port=config.listen_port,
                max_age_s=config.max_age_s,
            )
        except BaseException:  # e.g. the address cannot be listened on: leave the queue to the next start
            self.queue.close()
            self.ownership.release()
            raise
        self.engine = engine
        # Scans download and write here. A run killed mid-scan (or stopped past its deadline) leaves its scratch
        # behind; the folder is this service's alone while it holds the queue's lock, so each start empties it.
        self.scratch_dir = config.queue_path.with_name(config.queue_path.name + ".scratch")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def webhook_url(self) -> str:
        return self.config.public_url or self.receiver.url

    def start(self) -> None:
        recovered = self.queue.recover_abandoned()
        if recovered:
            log.info("requeued %d job(s) left running by a previous run", recovered)
        shutil.rmtree(self.scratch_dir, ignore_errors=True)
        self.scratch_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.receiver.start()
        if self.config.register_webhook:
            ensure_webhook(self.registry.mlflow, url=self.webhook_url, secret=self.config.webhook_secret)
        for index in range(self.config.workers):
            worker = Worker(self.queue, self.registry, self.engine, work_dir=self.scratch_dir)
            self._spawn(f"scan-worker-{index}", worker.run_forever)
        poller = ReconcilePoller(self.registry, self.queue, interval_s=self.config.reconcile_interval_s)
        self._spawn("reconcile", poller.run_forever)

    def _spawn(self, name: str, target: object) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def stop(self, *, timeout_s: float = 30) -> bool:
        """Stops taking work and lets running jobs finish, all within `timeout_s` together; False if some did not.

        A job still running then (a long scan, a call to an MLflow server that does not answer) is left to die with
        the process: its job stays `running` in the queue and the next start puts it back (`recover_abandoned`).
        The queue is then left open too, so that the job's thread never meets a closed database.
        """
        give_up_at = time.monotonic() + timeout_s
        self._stop.set()
        self.receiver.stop()
        for thread in self._threads:
            thread.join(timeout=max(0.0, give_up_at - time.monotonic()))
        busy = [thread.name for thread in self._threads if thread.is_alive()]
        if busy:
            log.warning(
                "stopping with %s still busy after %g s: the next start picks up their jobs", ", ".join(busy), timeout_s
            )
        else:
            self.queue.close()
        self.ownership.release()
        return not busy

    def wait(self) -> None:
        self._stop.wait()
