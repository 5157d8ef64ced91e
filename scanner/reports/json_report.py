"""The JSON report, schema `model-scanner/report/v1` (DESIGN.md; JSON Schema: report.schema.json beside this file).

Beyond DESIGN.md's keys, each detector entry carries `reason` (why it did not scan, else null) and each result
`artifacts` (files written for it, such as signature heatmaps). Both are optional in the schema.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from scanner.findings import DetectorResult, ScanResult
from scanner.reports.interface import Report

SCHEMA_ID = "model-scanner/report/v1"


def render_json(report: Report) -> str:
    return json.dumps(report_document(report), indent=2, ensure_ascii=False) + "\n"


def report_document(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "scanner_version": report.scanner_version,
        "policy": report.policy,
        "results": [_result(result) for result in report.results],
    }


def _result(result: ScanResult) -> dict[str, Any]:
    decision = result.decision
    return {
        "target": result.target,
        "sha256": result.sha256,
        "status": result.status.value,
        "error": None if result.error is None else {"kind": result.error.kind, "message": result.error.message},
        "score": _number(result.score),
        "verdict": result.verdict.value,
        "detectors": {name: _detector(detector) for name, detector in result.detectors.items()},
        "decision": None
        if decision is None
        else {"action": decision.action.value, "reasons": list(decision.reasons), "rule": decision.rule},
        "artifacts": list(result.artifacts),
    }


def _detector(result: DetectorResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "score": _number(result.score),
        "target_class": None if result.target_class is None else int(result.target_class),
        "forward_passes": None if result.forward_passes is None else int(result.forward_passes),
        "seconds": None if result.seconds is None else round(result.seconds, 3),
        "reason": result.reason,
    }


def _number(value: float | None) -> float | None:
    """Plain floats (detectors may hand numpy scalars, which json cannot write)."""
    return None if value is None else float(value)


@cache
def report_schema() -> dict[str, Any]:
    text = (resources.files("scanner.reports") / "report.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
