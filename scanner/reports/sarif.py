"""SARIF 2.1.0 for GitHub code scanning: stable rule ids, one result per finding, the model file as its location.

GitHub needs a `ruleId`, a `level`, `properties.security-severity` on the rule, a physical location per result (a
binary file: `region.startLine` 1) and `partialFingerprints` (here: the model's digest and the rule), so the same
finding on the same model is one alert across runs, wherever the file moves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from scanner.findings import Action, ScanResult
from scanner.reports.interface import Report
from scanner.reports.rules import RULES, FindingRule, findings_for

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/model-scanner/model-scanner"
FINGERPRINT_KEY = "modelScannerFinding/v1"
LEVEL = {Action.BLOCK: "error", Action.WARN: "warning", Action.ALLOW: "note"}


def render_sarif(report: Report) -> str:
    return json.dumps(sarif_document(report), indent=2, ensure_ascii=False) + "\n"


def sarif_document(report: Report) -> dict[str, Any]:
    index = {rule.id: position for position, rule in enumerate(RULES)}
    results = [
        _result(result, rule, message, index[rule.id])
        for result in report.results
        for rule, message in findings_for(result)
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "model-scanner",
                        "version": report.scanner_version,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(rule) for rule in RULES],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "The directory the scan ran in."}}},
                "results": results,
                "properties": {"policy": report.policy},
            }
        ],
    }


def _rule(rule: FindingRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help, "markdown": f"**{rule.title}**\n\n{rule.help}"},
        "defaultConfiguration": {"level": "error" if rule.security_severity >= 7 else "warning"},
        "properties": {
            "security-severity": f"{rule.security_severity:.1f}",
            "tags": ["security", "machine-learning", "backdoor"],
            "precision": "medium",
        },
    }


def _result(result: ScanResult, rule: FindingRule, message: str, rule_index: int) -> dict[str, Any]:
    action = result.decision.action if result.decision is not None else Action.WARN
    identity = result.sha256 or result.target  # a file that could not be read has no digest
    properties: dict[str, Any] = {"status": result.status.value, "verdict": result.verdict.value, "score": result.score}
    if result.decision is not None:
        properties["decision"] = {"action": result.decision.action.value, "reasons": list(result.decision.reasons)}
    if result.sha256:
        properties["sha256"] = result.sha256
    return {
        "ruleId": rule.id,
        "ruleIndex": rule_index,
        "level": LEVEL[action],
        "message": {"text": message},
        "locations": [
            {"physicalLocation": {"artifactLocation": _artifact_location(result.target), "region": {"startLine": 1}}}
        ],
        "partialFingerprints": {FINGERPRINT_KEY: hashlib.sha256(f"{identity}:{rule.id}".encode()).hexdigest()},
        "properties": properties,
    }


def _artifact_location(target: str) -> dict[str, Any]:
    """A relative path stays relative to %SRCROOT% (what GitHub maps to the repository); others become URIs."""
    if "://" in target or target.startswith("models:/"):
        return {"uri": target}
    path = PurePath(target) if not PureWindowsPath(target).drive else PureWindowsPath(target)
    if path.is_absolute():
        return {"uri": "file://" + quote(path.as_posix() if path.as_posix().startswith("/") else "/" + path.as_posix())}
    posix = path.as_posix()
    posix = posix[2:] if posix.startswith("./") else posix
    return {"uri": quote(posix), "uriBaseId": "%SRCROOT%"}
