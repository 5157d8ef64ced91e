"""The `scan.*` tags on an MLflow model version: written by the scanner, read back by the gate and by re-scans.

The core tags (docs/interface.md: status, verdict, score, decision, policy, scanner_version, sha256, scanned_at),
plus those the gate and the UI need: `scan.detectors` (compact JSON: each detector's status, score and version, so a
policy that requires a detector can be judged from the tags alone), `scan.error` (why a scan failed), `scan.report`
(where the JSON report and heatmaps were logged), and from the registry's workers `scan.files` (the digest of the
version's files), `scan.inputs` (the input hints used) and `scan.engine`. Only the scanner may write any `scan.*`
tag: the gate enforces it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

from scanner.findings import DetectorResult, ErrorInfo, ScanResult, Status, Verdict

EnumT = TypeVar("EnumT", bound=enum.Enum)

PREFIX = "scan."
STATUS = "scan.status"
VERDICT = "scan.verdict"
SCORE = "scan.score"
DECISION = "scan.decision"
POLICY = "scan.policy"
SCANNER_VERSION = "scan.scanner_version"
SHA256 = "scan.sha256"
SCANNED_AT = "scan.scanned_at"
DETECTORS = "scan.detectors"
ERROR = "scan.error"
REPORT = "scan.report"
# Binds the verdict to the bytes: scanner.registry.model_files.files_digest of every file under the version's artifact
# location, as the scanner downloaded them. The gate recomputes it at each promotion.
FILES = "scan.files"
# The input hints the scan used (JSON of the version's model_scanner.* tags when it was scanned; '{}' for none).
INPUTS = "scan.inputs"
# The engine that made the scan (detector versions, shipped-file digest, policy digest, scanner version;
# CoreScanEngine.key): `rescan` re-scans a version whose engine differs from its own. Written by serve's workers and
# by rescan alike.
ENGINE = "scan.engine"

# scan.status while a version waits for or undergoes its scan (not a Status: no result exists yet).
PENDING = "pending"

# Tags on a model version that change how it must be scanned (a producer may set them after registering): not the
# scanner's own, so not under PREFIX.
INPUT_TAG_PREFIX = "model_scanner."

# MLflow caps model version tag values at 5000 characters.
MAX_TAG_VALUE = 5000


def is_scan_tag(key: str) -> bool:
    return key.startswith(PREFIX)


def tags_for(
    result: ScanResult, *, policy: str, scanner_version: str, report_uri: str | None, now: datetime | None = None
) -> dict[str, str]:
    """The tags that describe `result` on its model version; every scan.* key is always written (stale ones reset)."""
    detectors = {
        name: {"status": d.status.value, "score": d.score, "target_class": d.target_class}
        for name, d in sorted(result.detectors.items())
    }
    stamp = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    error = f"{result.error.kind}: {result.error.message}" if result.error else ""
    # scan.status is written last (RegistryClient.set_scan_tags): readers take its presence to mean a complete set.
    return {
        VERDICT: result.verdict.value,
        SCORE: "" if result.score is None else f"{result.score:.4f}",
        DECISION: result.decision.action.value if result.decision else "",
        POLICY: policy,
        SCANNER_VERSION: scanner_version,
        SHA256: result.sha256 or "",
        SCANNED_AT: stamp,
        DETECTORS: json.dumps(detectors, separators=(",", ":"))[:MAX_TAG_VALUE],
        ERROR: error[:MAX_TAG_VALUE],
        REPORT: report_uri or "",
        STATUS: result.status.value,
    }


@dataclass(frozen=True)
class TaggedScan:
    """What a model version's tags say about its scan; `result` is None when it was never scanned (or is pending)."""

    status: str | None
    result: ScanResult | None
    policy: str | None
    sha256: str | None


def read_scan(target: str, tags: Mapping[str, str]) -> TaggedScan:
    """Rebuilds the ScanResult the scanner tagged, for the gate's policy evaluation. Tolerates hand-made garbage."""
    status_text = tags.get(STATUS)
    sha = tags.get(SHA256) or None
    if status_text not in {s.value for s in Status}:
        return TaggedScan(status=status_text, result=None, policy=tags.get(POLICY), sha256=sha)
    status = Status(status_text)
    verdict = _enum(Verdict, tags.get(VERDICT), Verdict.UNKNOWN)
    try:
        score: float | None = float(tags[SCORE]) if tags.get(SCORE) else None
    except ValueError:
        score = None
    error = None
    if status is Status.ERROR:
        kind, _, message = (tags.get(ERROR) or "unknown: no reason recorded").partition(": ")
        error = ErrorInfo(kind=kind, message=message)
    result = ScanResult(
        target=target,
        sha256=sha,
        status=status,
        verdict=verdict,
        score=score,
        error=error,
        detectors=_detectors(tags.get(DETECTORS)),
    )
    return TaggedScan(status=status_text, result=result, policy=tags.get(POLICY), sha256=sha)


def _detectors(text: str | None) -> dict[str, DetectorResult]:
    try:
        document = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    if not isinstance(document, dict):
        return {}
    found: dict[str, DetectorResult] = {}
    for name, entry in document.items():
        if not isinstance(entry, dict):
            continue
        status = _enum(Status, entry.get("status"), Status.ERROR)
        score = entry.get("score")
        target_class = entry.get("target_class")
        found[str(name)] = DetectorResult(
            detector=str(name),
            status=status,
            score=float(score) if isinstance(score, (int, float)) else None,
            target_class=target_class if isinstance(target_class, int) else None,
        )
    return found


def _enum(kind: type[EnumT], text: object, default: EnumT) -> EnumT:
    try:
        return kind(text)
    except ValueError:
        return default
