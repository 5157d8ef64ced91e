"""Scan results for policy tests."""

from __future__ import annotations

from scanner.findings import DetectorResult, ErrorInfo, ScanResult, Status, Verdict

DIGEST = "ab" * 32


def scanned(score: float, verdict: Verdict, **detector_scores: float) -> ScanResult:
    detectors = {
        name: DetectorResult(name, Status.SCANNED, score=value, target_class=3)
        for name, value in detector_scores.items()
    }
    return ScanResult("m.onnx", DIGEST, Status.SCANNED, verdict=verdict, score=score, detectors=detectors)


def failed(kind: str = "truncated", message: str = "m.onnx was cut short") -> ScanResult:
    return ScanResult("m.onnx", None, Status.ERROR, error=ErrorInfo(kind, message))
