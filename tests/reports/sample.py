"""A report with one target of every kind, for the format tests."""

from __future__ import annotations

from pathlib import Path

from scanner.findings import Action, Decision, DetectorResult, ErrorInfo, ScanResult, Status, Verdict
from scanner.reports import Report


def sample_report(heatmap: Path | None = None) -> Report:
    clean = ScanResult(
        "models/clean.onnx",
        "11" * 32,
        Status.SCANNED,
        verdict=Verdict.CLEAN,
        score=0.04,
        detectors={
            "one_pixel": DetectorResult(
                "one_pixel", Status.SCANNED, score=0.05, target_class=2, forward_passes=4097, seconds=1.5
            ),
            "ban": DetectorResult("ban", Status.SCANNED, score=0.03, target_class=7, seconds=4.25),
        },
        decision=Decision(Action.ALLOW, ("no rule fired: allowed",)),
    )
    backdoored = ScanResult(
        "models/sub dir/trojan|1.onnx",
        "22" * 32,
        Status.SCANNED,
        verdict=Verdict.BACKDOORED,
        score=0.97,
        detectors={
            "one_pixel": DetectorResult(
                "one_pixel",
                Status.SCANNED,
                score=0.95,
                target_class=3,
                forward_passes=4097,
                evidence=("the signature of class 3 peaks at row 4, column 5", "a <b> square moves 90% of images"),
            ),
            "ban": DetectorResult.not_applicable("ban", "no clean sample data (--clean-data)"),
        },
        decision=Decision(
            Action.BLOCK, ("rule block-backdoored: verdict backdoored -> block",), rule="block-backdoored"
        ),
        artifacts=() if heatmap is None else (str(heatmap),),
    )
    broken = ScanResult(
        "/abs/broken.onnx",
        None,
        Status.ERROR,
        error=ErrorInfo("truncated", "broken.onnx was cut short"),
        decision=Decision(Action.BLOCK, ("fail-closed: could not be scanned",), rule="fail-closed"),
    )
    tabular = ScanResult(
        "models/tabular.onnx",
        "33" * 32,
        Status.NOT_APPLICABLE,
        error=ErrorInfo("not_applicable", "takes a (N, 12) input, not images"),
        decision=Decision(
            Action.WARN, ("rule warn-not-judged: status not_applicable -> warn",), rule="warn-not-judged"
        ),
    )
    half = ScanResult(
        "models/half.onnx",
        "44" * 32,
        Status.SCANNED,
        verdict=Verdict.CLEAN,
        score=0.2,
        detectors={
            "one_pixel": DetectorResult("one_pixel", Status.SCANNED, score=0.2, target_class=0),
            "ban": DetectorResult.failed("ban", "internal error: RuntimeError: boom"),
        },
        decision=Decision(Action.ALLOW, ("allowed",)),
    )
    return Report(
        results=(clean, backdoored, broken, tabular, half), policy="default@0123456789ab", scanner_version="0.1.0"
    )
