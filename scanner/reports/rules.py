"""Every kind of finding the scanner reports, with a stable id, title, severity and help (SARIF keys on the ids).

Ids never change meaning; a new kind of finding gets a new id.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.findings import Action, ScanResult, Status, Verdict


@dataclass(frozen=True)
class FindingRule:
    id: str
    name: str  # PascalCase, SARIF's reportingDescriptor.name
    title: str
    security_severity: float  # 0-10, GitHub code scanning's scale (>= 9 critical, >= 7 high, >= 4 medium)
    help: str


BACKDOOR = FindingRule(
    "MS001",
    "BackdooredModel",
    "Model is likely backdoored (trojaned)",
    9.0,
    "The fused score of the backdoor detectors (one-pixel signature, BAN) says this model probably carries a "
    "backdoor: an input trigger that flips its prediction to an attacker's class. Do not promote it. Retrain it "
    "from trusted data and code, or, after a manual review finds a false positive, add a waiver to the policy with "
    "a reason, an approver and an expiry date.",
)
SCAN_ERROR = FindingRule(
    "MS002",
    "ModelNotScannable",
    "Model could not be scanned",
    7.0,
    "The model file was refused by the intake's safety checks or every detector failed on it, so nothing is known "
    "about backdoors in it. Policies that fail closed block it. Read the message: fix the file (a valid, "
    "self-contained ONNX image classifier), or the scan's input settings (--value-range, --layout, the policy's "
    "inputs).",
)
NOT_JUDGED = FindingRule(
    "MS003",
    "ModelNotJudged",
    "Model is outside what the scanner can judge",
    3.0,
    "The model is not an image classifier the detectors understand (or no detector applied to it), so the scanner "
    "has no opinion about it. Review it by other means; the policy decides whether that is acceptable.",
)
DETECTOR_FAILED = FindingRule(
    "MS004",
    "DetectorFailed",
    "A detector failed on this model",
    4.0,
    "One detector could not run on this model (the others did, so the model has a verdict). The verdict rests on "
    "fewer detectors than usual. Read the detector's reason; run with -v for details.",
)
POLICY_FLAGGED = FindingRule(
    "MS005",
    "PolicyFlagged",
    "The policy blocks or warns about this model",
    5.0,
    "No backdoor verdict, but the policy still blocks or warns about this model, for example because a required "
    "detector did not run, the score is above the policy's suspicion threshold, or a waiver expired. The result's "
    "message lists the policy's reasons.",
)

RULES: tuple[FindingRule, ...] = (BACKDOOR, SCAN_ERROR, NOT_JUDGED, DETECTOR_FAILED, POLICY_FLAGGED)
RULES_BY_ID = {rule.id: rule for rule in RULES}


def findings_for(result: ScanResult) -> list[tuple[FindingRule, str]]:
    """The findings about one target, each with its message; a clean, allowed model has none."""
    findings: list[tuple[FindingRule, str]] = []
    if result.status is Status.ERROR:
        detail = f"{result.error.kind}: {result.error.message}" if result.error else "unknown error"
        findings.append((SCAN_ERROR, f"{result.target} could not be scanned: {detail}"))
    elif result.status is Status.NOT_APPLICABLE:
        reasons = "; ".join(f"{name}: {r.reason}" for name, r in result.detectors.items() if r.reason)
        detail = (result.error.message if result.error else reasons) or "no detector applies"
        findings.append((NOT_JUDGED, f"{result.target} was not judged: {detail}"))
    if result.verdict is Verdict.BACKDOORED:
        score = "unknown" if result.score is None else f"{result.score:.3f}"
        flagged = [
            f"{name} (score {r.score:.3f}, target class {r.target_class})"
            for name, r in result.detectors.items()
            if r.status is Status.SCANNED and r.score is not None
        ]
        message = f"{result.target} is likely backdoored: fused score {score}; {', '.join(flagged)}"
        deciding = max(
            (r for r in result.detectors.values() if r.status is Status.SCANNED and r.score is not None),
            key=lambda r: r.score or 0.0,
            default=None,
        )
        if deciding is not None and deciding.evidence:  # the fused score follows the larger detector score
            message += f". {deciding.detector}: {'; '.join(deciding.evidence)}"
        findings.append((BACKDOOR, message))
    if result.status is Status.SCANNED:
        for name, detector in result.detectors.items():
            if detector.status is Status.ERROR:
                findings.append((DETECTOR_FAILED, f"detector {name} failed on {result.target}: {detector.reason}"))
    decision = result.decision
    if not findings and decision is not None and decision.action is not Action.ALLOW:
        findings.append((POLICY_FLAGGED, f"{result.target}: {decision.action.value}: {'; '.join(decision.reasons)}"))
    return findings
