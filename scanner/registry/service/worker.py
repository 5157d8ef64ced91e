"""Workers: take a job from the queue, fetch the model version, scan it once per scan key, write tags and report.

The scan key is (model digest, detector versions + policy digest, input hints): a version already scanned under the
same key is not scanned again, whatever number of webhooks, pollers and restarts point at it. A registry outage is
retried with backoff; a model that cannot be scanned (a pickle, no ONNX flavor, a broken file) is a result with
status `error`, tagged like any other, so the gate can fail closed on it. A scan that crashes (a bug, or input
nobody foresaw) is tagged the same way, as `internal_error`, and its job retried like an outage: no job is left
running and no crashed version goes untagged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol

from scanner import __version__
from scanner.errors import IntakeError, RegistryError, ScannerError, shortened
from scanner.findings import ErrorInfo, ScanResult, Status
from scanner.registry import tags as scan_tags
from scanner.registry.client import RegistryClient, VersionGone, VersionInfo
from scanner.registry.model_files import sha256_of
from scanner.registry.queue import Job, WorkQueue
from scanner.registry.scan_key import input_hint_tags, scan_key
from scanner.registry.source import FetchedModel, fetch_model

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
CRASH_KIND = "internal_error"
SHOWN_CRASH_CHARACTERS = 300


class ScanEngine(Protocol):
    """What a worker needs from the scanner's core (scanner.registry.engine builds the real one)."""

    @property
    def policy_label(self) -> str: ...

    @property
    def key(self) -> str:
        """Changes whenever a new scan could give a different result: detector versions, policy digest."""
        ...

    def scan(self, model: FetchedModel, artifacts_dir: Path) -> ScanResult:
        """Scans and judges one fetched model (for a plain scan: no stage, no alias)."""
        ...

    def judge(self, result: ScanResult) -> ScanResult:
        """`result` with the policy's decision, for results made outside `scan` (models that could not be fetched)."""
        ...

    def report(self, result: ScanResult) -> str:
        """The JSON report (schema model-scanner/report/v1) of one result."""
        ...


class Worker:
    def __init__(
        self, queue: WorkQueue, registry: RegistryClient, engine: ScanEngine, *, work_dir: Path | None = None
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.engine = engine
        self.work_dir = work_dir

    def run_forever(self, stop: threading.Event, *, idle_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                worked = self.run_one()
            except Exception:  # a bug in one job must not end the worker: log it and carry on
                log.exception("worker crashed on a job; continuing")
                worked = False
            if not worked:
                stop.wait(idle_s)

    def run_one(self) -> bool:
        """Processes the next ready job; False when there was none."""
        job = self.queue.claim()
        if job is None:
            return False
        uri = f"models:/{job.model_name}/{job.model_version}"
        try:
            outcome = self._process(job)
        except VersionGone as gone:
            log.info("%s: %s", uri, gone)
            self.queue.fail(job, str(gone), retry_in_s=None)
        except RegistryError as error:
            retry = retry_delay(job.attempts)
            log.warning("%s: attempt %d failed (%s)%s", uri, job.attempts, error, " - retrying" if retry else "")
            self.queue.fail(job, error.one_line(), retry_in_s=retry)
        except Exception as crash:  # whatever broke, the job ends and the version is judged
            retry = retry_delay(job.attempts)
            summary = crash_summary(crash)
            log.error(
                "%s: the scan crashed on attempt %d (%s)%s",
                uri,
                job.attempts,
                summary,
                " - tagged as an error, retrying" if retry else " - tagged as an error, giving up",
            )
            log.debug("traceback of the crash on %s", uri, exc_info=crash)
            self._record_crash(job, summary)
            self.queue.fail(job, f"{CRASH_KIND}: {summary}", retry_in_s=retry)
        else:
            self.queue.finish(job, outcome)
        return True

    def _record_crash(self, job: Job, summary: str) -> None:
        """Tags the version with an error result, so the gate fails closed on it while (or after) it is retried."""
        try:
            info = self.registry.version(job.model_name, job.model_version)
            result = ScanResult(
                target=f"models:/{info.name}/{info.version}",
                sha256=None,
                status=Status.ERROR,
                error=ErrorInfo(kind=CRASH_KIND, message=f"the scan crashed: {summary}"),
            )
            with tempfile.TemporaryDirectory(prefix="model-scanner-", dir=self.work_dir) as scratch:
                self._publish(info, self.engine.judge(result), Path(scratch))
        except Exception as unrecorded:  # the job is still released: a retry or the poller gets it
            log.warning("models:/%s/%s: could not tag the crash: %s", job.model_name, job.model_version, unrecorded)

    def _process(self, job: Job) -> str:
        info = self.registry.version(job.model_name, job.model_version)
        with tempfile.TemporaryDirectory(prefix="model-scanner-", dir=self.work_dir) as scratch:
            scratch_dir = Path(scratch)
            try:
                fetched = fetch_model(f"models:/{info.name}/{info.version}", scratch_dir, client=self.registry.mlflow)
            except IntakeError as refused:
                # Nothing to scan, and nothing that a retry would change: say so on the version.
                result = self.engine.judge(_unscannable(info, refused))
                self._publish(info, result, scratch_dir)
                return f"error: {refused.kind}"
            digest = sha256_of(fetched.path)
            # Every file counts (external data, MLmodel), not only the ONNX file: a change to any is a new model.
            key = scan_key(fetched.files_sha256 or digest, self.engine.key, fetched.tags)
            if self.queue.already_scanned(info.name, info.version, key):
                return "already scanned"
            self.queue.scan_started(info.name, info.version, key)
            started = time.perf_counter()
            try:
                result = self.engine.scan(fetched, scratch_dir / "artifacts")
            except ScannerError as error:
                result = self.engine.judge(_unscannable(info, error, sha256=digest))
            self._publish(info, result, scratch_dir, fetched)
            self.queue.scan_finished(info.name, info.version, key)
            if result.error is not None:
                log.warning("models:/%s/%s: %s: %s", info.name, info.version, result.error.kind, result.error.message)
            log.info(
                "models:/%s/%s: %s, score %s, decision %s (%.1f s)",
                info.name,
                info.version,
                result.verdict.value,
                "-" if result.score is None else f"{result.score:.3f}",
                result.decision.action.value if result.decision else "-",
                time.perf_counter() - started,
            )
            return f"{result.status.value}: {result.verdict.value}"

    def _publish(
        self, info: VersionInfo, result: ScanResult, scratch_dir: Path, fetched: FetchedModel | None = None
    ) -> None:
        # The pictures are logged beside the report, so the report names them relatively: the scratch folder they
        # were written to is gone by the time anyone reads it (as the re-scan job does).
        pictures = [Path(p) for p in result.artifacts if Path(p).is_file()]
        result = dataclasses.replace(result, artifacts=tuple(picture.name for picture in pictures))
        report = scratch_dir / "scan-report.json"
        report.write_text(self.engine.report(result), encoding="utf-8")
        report_uri = self.registry.log_report(info, [report, *pictures])
        tags = scan_tags.tags_for(
            result, policy=self.engine.policy_label, scanner_version=__version__, report_uri=report_uri
        )
        tags[scan_tags.ENGINE] = self.engine.key  # so that a later `rescan` knows this scan is current
        # What the verdict is bound to (the gate re-hashes the files at promotion) and the hints it was made with.
        tags[scan_tags.FILES] = (fetched.files_sha256 or "") if fetched else ""
        tags[scan_tags.INPUTS] = json.dumps(input_hint_tags(fetched.tags), sort_keys=True) if fetched else ""
        # One request per tag (MLflow has no batch call for version tags): skip what is already there, but always
        # write scan.status, last, so that its presence means a complete set.
        changed = {k: v for k, v in tags.items() if k == scan_tags.STATUS or info.tags.get(k, None if v else "") != v}
        self.registry.set_scan_tags(info.name, info.version, changed)


def retry_delay(attempts: int) -> float | None:
    """Seconds before a failed job runs again (exponential backoff); None once it has had MAX_ATTEMPTS."""
    return None if attempts >= MAX_ATTEMPTS else min(60.0, 2.0**attempts)


def crash_summary(crash: BaseException) -> str:
    """`Type: message` on one line, cut short: it lands in a tag, the queue and the log."""
    text = " ".join(f"{type(crash).__name__}: {crash}".split())
    return shortened(text, SHOWN_CRASH_CHARACTERS)


def _unscannable(info: VersionInfo, error: ScannerError, *, sha256: str | None = None) -> ScanResult:
    return ScanResult(
        target=f"models:/{info.name}/{info.version}",
        sha256=sha256,
        status=Status.ERROR,
        error=ErrorInfo(kind=error.kind, message=str(error)),
    )
