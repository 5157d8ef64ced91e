"""The JSON report, schema `model-scanner/report/v1` (docs/interface.md; JSON Schema: report.schema.json here).

Beyond the core keys, each detector entry carries `reason` (why it did not scan, else null) and each result
`artifacts` (files written for it, such as signature heatmaps). Both are optional in the schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from scanner.findings import Action, Decision, DetectorResult, ErrorInfo, Normalization, ScanResult, Status, Verdict
from scanner.reports.interface import Report, budget_fitted_to, reduced_note

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
        **({"clean_data": result.clean_data} if result.clean_data is not None else {}),
        **({"normalization": _normalization(result)} if result.normalization is not None else {}),
    }


def _normalization(result: ScanResult) -> dict[str, Any]:
    assert result.normalization is not None
    return {
        "mean": list(result.normalization.mean),
        "std": list(result.normalization.std),
        "channel_ranges": [[low, high] for low, high in result.channel_ranges],
    }


def _detector(result: DetectorResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "score": _number(result.score),
        "target_class": None if result.target_class is None else int(result.target_class),
        "forward_passes": None if result.forward_passes is None else int(result.forward_passes),
        "seconds": None if result.seconds is None else round(result.seconds, 3),
        "reason": result.reason,
        **({"budget": budget} if (budget := budget_fitted_to(result)) else {}),
        **({"reduced": reduced} if (reduced := reduced_note(result)) else {}),
    }


def _number(value: float | None) -> float | None:
    """Plain floats (detectors may hand numpy scalars, which json cannot write)."""
    return None if value is None else float(value)


@cache
def report_schema() -> dict[str, Any]:
    text = (resources.files("scanner.reports") / "report.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def read_report(text: str) -> Report:
    """A JSON report back as a `Report`, so the other formats can render it (the GitHub Action's SARIF)."""
    document = json.loads(text)
    results = []
    for entry in document["results"]:
        decision = entry.get("decision")
        error = entry.get("error")
        results.append(
            ScanResult(
                target=entry["target"],
                sha256=entry.get("sha256"),
                status=Status(entry["status"]),
                verdict=Verdict(entry.get("verdict") or "unknown"),
                score=entry.get("score"),
                error=ErrorInfo(error["kind"], error["message"]) if error else None,
                detectors={
                    name: DetectorResult(
                        detector=name,
                        status=Status(found["status"]),
                        score=found.get("score"),
                        target_class=found.get("target_class"),
                        forward_passes=found.get("forward_passes"),
                        seconds=found.get("seconds"),
                        reason=found.get("reason"),
                        details=_budget_details_from(found),
                    )
                    for name, found in (entry.get("detectors") or {}).items()
                },
                decision=Decision(
                    Action(decision["action"]), tuple(decision.get("reasons") or ()), decision.get("rule")
                )
                if decision
                else None,
                artifacts=tuple(entry.get("artifacts") or ()),
                clean_data=entry.get("clean_data"),
                **_normalization_from(entry.get("normalization")),
            )
        )
    return Report(
        results=tuple(results), policy=document.get("policy", ""), scanner_version=document.get("scanner_version", "")
    )


def _budget_details_from(found: Mapping[str, Any]) -> dict[str, Any]:
    if not found.get("budget") and not found.get("reduced"):
        return {}
    reduced = bool(found.get("reduced"))
    return {"budget": {"fitted_to": found.get("budget") or "", "reduced": reduced, "note": found.get("reduced") or ""}}


def _normalization_from(found: Mapping[str, Any] | None) -> dict[str, Any]:
    if not found:
        return {}
    return {
        "normalization": Normalization(mean=tuple(found["mean"]), std=tuple(found["std"])),
        "channel_ranges": tuple((float(low), float(high)) for low, high in found.get("channel_ranges", ())),
    }
