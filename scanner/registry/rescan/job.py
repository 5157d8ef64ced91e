"""One re-scan job, as it runs on an executor's worker (this process, or a Ray task on any machine of a cluster).

A job names a model version and carries everything else the scan needs by value (the loaded policy, detector names),
so a worker needs only the tracking server and the scanner package. It fetches the version, scans and judges it with
the same engine as `serve`, and hands back the result with its report and heatmaps as bytes: the driver, the only
writer to the registry, logs them and sets the tags.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scanner.detectors import DETECTORS
from scanner.errors import IntakeError, RegistryError, ScannerError
from scanner.findings import Budget, ErrorInfo, ScanResult, Status
from scanner.policy import Policy
from scanner.registry.engine import CoreScanEngine
from scanner.registry.model_files import sha256_of
from scanner.registry.scan_key import input_hint_tags
from scanner.registry.source import fetch_model, mlflow_client
from scanner.scan import DEFAULT_BUDGET

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RescanJob:
    tracking_uri: str
    name: str
    version: str
    policy: Policy
    detectors: tuple[str, ...]  # CLI names, as in --detectors
    device: str = "auto"
    max_model_bytes: int | None = None  # the intake's size limit (None: its default, 1 GiB)
    budget: Budget | None = DEFAULT_BUDGET  # --budget (None: full settings)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class JobOutcome:
    job: RescanJob
    result: ScanResult
    sha256: str | None  # of the ONNX file scanned; None when it could not be fetched
    report_json: str
    files: tuple[tuple[str, bytes], ...] = ()  # heatmaps by file name (result.artifacts holds the same names)
    publish: bool = True  # False for a registry outage: nothing was learnt about the model, so its tags stay
    files_sha256: str | None = None  # model_files.files_digest of the version's files (tag scan.files)
    hints: tuple[tuple[str, str], ...] | None = None  # the model_scanner.* tags scanned with (tag scan.inputs)


def build_engine(job: RescanJob) -> CoreScanEngine:
    detectors = [DETECTORS[name]() for name in job.detectors]
    return CoreScanEngine(
        detectors, job.policy, device=job.device, max_model_bytes=job.max_model_bytes, budget=job.budget
    )


def run_rescan_job(job: RescanJob) -> JobOutcome:
    """Fetches, scans and judges one version. Never raises for the model's sake: failures are results."""
    engine = build_engine(job)
    with tempfile.TemporaryDirectory(prefix="model-scanner-rescan-") as scratch:
        scratch_dir = Path(scratch)
        sha256 = None
        publish = True
        files_sha256, hints = None, None
        try:
            fetched = fetch_model(job.uri, scratch_dir, client=mlflow_client(job.tracking_uri))
        except IntakeError as refused:
            result = engine.judge(_unscannable(job, refused))
        except RegistryError as outage:
            result = engine.judge(_unscannable(job, outage))
            publish = False
        else:
            sha256 = sha256_of(fetched.path)
            files_sha256, hints = fetched.files_sha256, tuple(input_hint_tags(fetched.tags).items())
            try:
                result = engine.scan(fetched, scratch_dir / "artifacts")
            except ScannerError as error:
                result = engine.judge(_unscannable(job, error, sha256=sha256))
        pictures = [Path(path) for path in result.artifacts if Path(path).is_file()]
        files = tuple((path.name, path.read_bytes()) for path in pictures)
        result = dataclasses.replace(result, artifacts=tuple(name for name, _ in files))
        report = engine.report(result)
    log.info("%s: %s (score %s)", job.uri, result.verdict.value, result.score)
    return JobOutcome(
        job=job,
        result=result,
        sha256=sha256,
        report_json=report,
        files=files,
        publish=publish,
        files_sha256=files_sha256,
        hints=hints,
    )


def _unscannable(job: RescanJob, error: ScannerError, *, sha256: str | None = None) -> ScanResult:
    return ScanResult(
        target=job.uri, sha256=sha256, status=Status.ERROR, error=ErrorInfo(kind=error.kind, message=str(error))
    )
