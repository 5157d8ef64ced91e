"""The reconcile poller: webhook delivery is best-effort (3 retries, then lost), so every so often it lists the
registry and queues each version that carries no scan result yet. The queue drops versions that already wait, and
versions whose job gave up within FAILED_ASIDE_S (a version MLflow keeps failing on is retried hourly, not at every
poll; a new webhook event for it is still taken at once)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from scanner.errors import RegistryError
from scanner.registry import tags as scan_tags
from scanner.registry.client import RegistryClient
from scanner.registry.queue import WorkQueue

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 60.0
FAILED_ASIDE_S = 3600.0


def needs_scan(version_tags: Mapping[str, str]) -> bool:
    """True for a version never scanned, or left `pending` (its job was lost with a queue file)."""
    status = version_tags.get(scan_tags.STATUS)
    return status is None or status == scan_tags.PENDING


def reconcile_once(registry: RegistryClient, queue: WorkQueue) -> int:
    """Queues every unscanned version; returns how many new jobs that made."""
    added = 0
    for info in registry.all_versions():
        if needs_scan(info.tags) and queue.enqueue(
            info.name, info.version, reason="reconcile", unless_failed_within_s=FAILED_ASIDE_S
        ):
            added += 1
    if added:
        log.info("reconcile: queued %d version(s) the webhooks missed", added)
    return added


class ReconcilePoller:
    def __init__(self, registry: RegistryClient, queue: WorkQueue, *, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.registry = registry
        self.queue = queue
        self.interval_s = interval_s

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                reconcile_once(self.registry, self.queue)
            except RegistryError as error:
                log.warning("reconcile: %s", error.one_line())
            except Exception:
                log.exception("reconcile crashed; trying again next round")
            stop.wait(self.interval_s)
