"""The re-scan driver: list the registry, pick the stale versions, scan them on an executor, record the results.

Workers only compute (`scanner.registry.rescan.job.run_rescan_job`); this driver is the only writer: it logs each
report and heatmaps on the version's run and sets the `scan.*` tags, exactly as `serve`'s workers do, `scan.engine`
(the engine key) included, so the next re-scan can tell which detector versions made the scan.

Running beside `serve`: given serve's queue database, a version is claimed in it before it is scanned (an atomic
insert of a running job, which the queue's one-open-job-per-version index refuses while serve has the version queued
or running), and the scan is recorded under serve's scan key; serve's workers then see it as done. So a version is
never scanned by both at once, and a version serve is about to scan is left to serve.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scanner import __version__
from scanner.detectors.interface import Detector
from scanner.findings import Budget
from scanner.policy import Policy
from scanner.registry import tags as scan_tags
from scanner.registry.client import RegistryClient, VersionInfo
from scanner.registry.engine import CoreScanEngine
from scanner.registry.queue import Job, WorkQueue
from scanner.registry.rescan.executors import Executor
from scanner.registry.rescan.job import JobOutcome, RescanJob, run_rescan_job
from scanner.registry.rescan.plan import (
    ENGINE_TAG,
    Outcome,
    PlannedScan,
    RegisteredVersion,
    RescanSummary,
    ScanStamp,
    plan_rescan,
    summarise,
)
from scanner.registry.scan_key import scan_key
from scanner.scan import DEFAULT_BUDGET

log = logging.getLogger(__name__)

RESCAN_REASON = "rescan"
PUBLISHERS = 4


@dataclass(frozen=True)
class RescanRequest:
    models: tuple[str, ...] = ()  # name globs; empty: every registered model
    stale_only: bool = False
    max_age: timedelta | None = None
    dry_run: bool = False


class Rescanner:
    def __init__(
        self,
        registry: RegistryClient,
        policy: Policy,
        detectors: Sequence[str],
        executor: Executor,
        *,
        device: str = "auto",
        queue: WorkQueue | None = None,
        max_model_bytes: int | None = None,  # the intake's size limit (None: its default, 1 GiB)
        budget: Budget | None = DEFAULT_BUDGET,  # --budget: part of the engine key, so a scan under another is stale
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.detectors = tuple(detectors)
        self.executor = executor
        self.device = device
        self.queue = queue
        self.max_model_bytes = max_model_bytes
        self.budget = budget
        self._now = now
        loaded = [_detector(name) for name in self.detectors]
        self.engine = CoreScanEngine(loaded, policy, device=device, max_model_bytes=max_model_bytes, budget=budget)

    @property
    def stamp(self) -> ScanStamp:
        return ScanStamp(scanner_version=__version__, policy=self.policy.label, engine_key=self.engine.key)

    def plan(self, request: RescanRequest) -> tuple[int, list[PlannedScan], dict[tuple[str, str], VersionInfo]]:
        infos = {(info.name, info.version): info for info in self.registry.all_versions()}
        versions = [RegisteredVersion(info.name, info.version, info.tags) for info in infos.values()]
        planned = plan_rescan(
            versions,
            self.stamp,
            now=self._now(),
            stale_only=request.stale_only,
            max_age=request.max_age,
            models=request.models,
        )
        return len(versions), planned, infos

    def run(self, request: RescanRequest) -> RescanSummary:
        started = time.monotonic()
        considered, planned, infos = self.plan(request)
        log.info("%d of %d registered versions to re-scan", len(planned), considered)
        skipped: list[tuple[str, str, str]] = []
        claims: dict[tuple[str, str], Job | None] = {}
        jobs: list[RescanJob] = []
        for entry in planned if not request.dry_run else []:
            ref = (entry.version.name, entry.version.version)
            claim = None
            if self.queue is not None:
                claim = self.queue.claim_version(*ref, reason=f"{RESCAN_REASON}: {entry.reason.value}")
                if claim is None:
                    skipped.append((*ref, "serve has it queued or running"))
                    continue
            claims[ref] = claim
            jobs.append(self._job(*ref))
        by_ref = {(p.version.name, p.version.version): p for p in planned}
        outcomes: list[Outcome] = []
        # Recording a result is a dozen HTTP calls (report upload, one call per tag): done by a few threads while
        # the executor scans on, so the registry's latency does not add to every scan's time.
        with ThreadPoolExecutor(max_workers=PUBLISHERS, thread_name_prefix="rescan-publish") as publishers:
            pending = []
            try:
                for job, outcome in self.executor.map_unordered(run_rescan_job, jobs):
                    ref = (job.name, job.version)
                    pending.append(publishers.submit(self._record, infos[ref], outcome, claims.pop(ref, None)))
                    outcomes.append(Outcome(by_ref[ref], outcome.result))
            finally:
                for claim in claims.values():  # an executor failure: give serve its versions back
                    if claim is not None and self.queue is not None:
                        self.queue.fail(claim, "re-scan interrupted", retry_in_s=None)
                for future in pending:
                    future.result()  # a registry error while recording ends the re-scan with that error
        return summarise(
            considered,
            planned,
            outcomes,
            skipped,
            seconds=time.monotonic() - started,
            executor=self.executor.name,
        )

    def _job(self, name: str, version: str) -> RescanJob:
        return RescanJob(
            tracking_uri=self.registry.tracking_uri,
            name=name,
            version=version,
            policy=self.policy,
            detectors=self.detectors,
            device=self.device,
            max_model_bytes=self.max_model_bytes,
            budget=self.budget,
        )

    def _record(self, info: VersionInfo, outcome: JobOutcome, claim: Job | None) -> None:
        digest = outcome.files_sha256 or outcome.sha256  # the worker's key: every file of the version counts
        key = scan_key(digest, self.engine.key, info.tags) if digest else None
        if outcome.publish:
            if key and self.queue is not None:
                self.queue.scan_started(info.name, info.version, key)
            self._publish(info, outcome)
            if key and self.queue is not None:
                self.queue.scan_finished(info.name, info.version, key)
        if claim is not None and self.queue is not None:
            self.queue.finish(claim, f"{outcome.result.status.value}: {outcome.result.verdict.value} (re-scan)")

    def _publish(self, info: VersionInfo, outcome: JobOutcome) -> None:
        with tempfile.TemporaryDirectory(prefix="model-scanner-rescan-") as scratch:
            folder = Path(scratch)
            report = folder / "scan-report.json"
            report.write_text(outcome.report_json, encoding="utf-8")
            pictures = []
            for name, data in outcome.files:
                picture = folder / Path(name).name
                picture.write_bytes(data)
                pictures.append(picture)
            report_uri = self.registry.log_report(info, [report, *pictures])
        tags = scan_tags.tags_for(
            outcome.result, policy=self.policy.label, scanner_version=__version__, report_uri=report_uri
        )
        tags[ENGINE_TAG] = self.engine.key
        tags[scan_tags.FILES] = outcome.files_sha256 or ""
        tags[scan_tags.INPUTS] = "" if outcome.hints is None else json.dumps(dict(outcome.hints), sort_keys=True)
        self.registry.set_scan_tags(info.name, info.version, tags)


def _detector(name: str) -> Detector:
    from scanner.detectors import DETECTORS

    return DETECTORS[name]()
