"""Scheduled re-scans of a registry: which versions need a new scan, and what changed after it.

A version needs a new scan when its scan is missing (never scanned, still pending, or failed), when it was made by
another detector version, policy, scanner version or budget than the ones in use now, or when it is older than a
maximum age. `plan_rescan` decides from the tags alone (a pure function); `summarise` compares the decision before
and after and keeps only what changed (newly blocked, newly allowed). The registry I/O and the scanning itself are
done by `scanner.registry.rescan.driver` with an executor from `scanner.registry.rescan.executors`.
"""

from __future__ import annotations

import enum
import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from scanner.findings import Action, ScanResult, Status
from scanner.registry import tags as scan_tags

# Tag keys written by the scanner on each model version (docs/interface.md; scanner.registry.tags owns them).
STATUS_TAG = "scan.status"
DECISION_TAG = "scan.decision"
POLICY_TAG = "scan.policy"
SCANNER_VERSION_TAG = "scan.scanner_version"
SCANNED_AT_TAG = "scan.scanned_at"
# The engine key (detector versions, policy digest, scanner version, budget) of the scan the tags describe.
ENGINE_TAG = scan_tags.ENGINE

RESCAN_REPORT_SCHEMA = "model-scanner/rescan/v1"


class Staleness(str, enum.Enum):
    """Why a version is scanned again; ordered from most to least urgent."""

    NEVER_SCANNED = "never_scanned"
    FAILED = "failed"
    FILES_UNRECORDED = "files_unrecorded"  # scanned before verdicts were bound to the files: the gate refuses it
    DETECTOR_CHANGED = "detector_changed"
    POLICY_CHANGED = "policy_changed"
    SCANNER_CHANGED = "scanner_changed"
    BUDGET_CHANGED = "budget_changed"  # under another --budget the detectors may have run other settings
    EXPIRED = "expired"
    REQUESTED = "requested"  # not stale: re-scanned because --stale-only was not given


@dataclass(frozen=True)
class ScanStamp:
    """What a scan made now is stamped with: a version whose tags say otherwise is stale.

    `engine_key` is the registry engine's key (scanner.registry.engine.CoreScanEngine.key): JSON naming the detector
    versions, the digest of their shipped trained files, the policy digest, the scanner version and the budget. Scans
    tag it as `scan.engine`.
    """

    scanner_version: str
    policy: str  # Policy.label: name@digest
    engine_key: str


@dataclass(frozen=True)
class EngineParts:
    detectors: tuple[tuple[str, str], ...]
    policy: str
    scanner: str
    data: str = ""  # digest of the detectors' shipped trained files ("" in keys written before it was recorded)
    budget: str = ""  # '600 s', '150000 passes' or 'none' ("" in keys written before it was recorded: stale now)


def engine_parts(key: str | None) -> EngineParts | None:
    try:
        document = json.loads(key or "")
        detectors = tuple((str(name), str(version)) for name, version in document["detectors"])
        return EngineParts(
            detectors=tuple(sorted(detectors)),
            policy=str(document["policy"]),
            scanner=str(document["scanner"]),
            data=str(document.get("data", "")),
            budget=str(document.get("budget", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class PlannedScan:
    version: RegisteredVersion
    reason: Staleness


def parse_scanned_at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def staleness(
    tags: Mapping[str, str], stamp: ScanStamp, *, now: datetime, max_age: timedelta | None = None
) -> Staleness | None:
    """Why the scan these tags describe must be made again, or None when it is current."""
    status = tags.get(STATUS_TAG)
    if status not in {Status.SCANNED.value, Status.NOT_APPLICABLE.value, Status.ERROR.value}:
        return Staleness.NEVER_SCANNED  # no tags, "pending", or garbage
    if status == Status.ERROR.value:
        return Staleness.FAILED
    if tags.get(ENGINE_TAG) != stamp.engine_key:
        return _what_changed(tags, stamp)
    if tags.get(POLICY_TAG) != stamp.policy:
        return Staleness.POLICY_CHANGED  # same rules under another name
    if not tags.get(scan_tags.FILES):
        return Staleness.FILES_UNRECORDED  # nothing else changed, but the gate cannot bind this verdict to the files
    if max_age is not None:
        scanned_at = parse_scanned_at(tags.get(SCANNED_AT_TAG))
        if scanned_at is None or now - scanned_at > max_age:
            return Staleness.EXPIRED
    return None


def _what_changed(tags: Mapping[str, str], stamp: ScanStamp) -> Staleness:
    then, now = engine_parts(tags.get(ENGINE_TAG)), engine_parts(stamp.engine_key)
    if then is None or now is None:
        # Tagged without an engine key: detector versions unknown, so they count as changed unless something else did.
        if tags.get(POLICY_TAG) != stamp.policy:
            return Staleness.POLICY_CHANGED
        if tags.get(SCANNER_VERSION_TAG) != stamp.scanner_version:
            return Staleness.SCANNER_CHANGED
        return Staleness.DETECTOR_CHANGED
    if then.detectors != now.detectors or then.data != now.data:
        return Staleness.DETECTOR_CHANGED  # a new version, or the same version refitted
    if then.policy != now.policy:
        return Staleness.POLICY_CHANGED
    if then.scanner != now.scanner:
        return Staleness.SCANNER_CHANGED
    if then.budget != now.budget:
        return Staleness.BUDGET_CHANGED
    return Staleness.DETECTOR_CHANGED


def matches(name: str, globs: Sequence[str]) -> bool:
    return not globs or any(fnmatch.fnmatchcase(name, glob) for glob in globs)


def plan_rescan(
    versions: Iterable[RegisteredVersion],
    stamp: ScanStamp,
    *,
    now: datetime,
    stale_only: bool,
    max_age: timedelta | None = None,
    models: Sequence[str] = (),
) -> list[PlannedScan]:
    """The versions to scan, in registry order: the stale ones, or (without `stale_only`) every matching one."""
    planned = []
    for version in versions:
        if not matches(version.name, models):
            continue
        reason = staleness(version.tags, stamp, now=now, max_age=max_age)
        if reason is None and not stale_only:
            reason = Staleness.REQUESTED
        if reason is not None:
            planned.append(PlannedScan(version, reason))
    return planned


class ChangeKind(str, enum.Enum):
    NEWLY_BLOCKED = "newly_blocked"
    NEWLY_ALLOWED = "newly_allowed"  # was blocked (or unscanned/failed), now allowed or warned
    NEWLY_WARNED = "newly_warned"
    FAILED = "failed"  # could not be scanned this time


@dataclass(frozen=True)
class Change:
    name: str
    version: str
    kind: ChangeKind
    before: str | None  # the previous scan.decision tag ("allow" | "warn" | "block"), None when there was none
    after: str | None  # the new decision, None when the scan failed
    verdict: str
    score: float | None
    reason: Staleness
    message: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One re-scanned version: what the tags said before, what the scan says now."""

    planned: PlannedScan
    result: ScanResult


def change_of(outcome: Outcome) -> Change | None:
    """The change one re-scan made to a version's decision, or None when nothing a user acts on changed."""
    version = outcome.planned.version
    result = outcome.result
    before = version.tags.get(DECISION_TAG) or None
    after = result.decision.action.value if result.decision else None
    message = None
    if result.status is Status.ERROR:
        kind: ChangeKind | None = ChangeKind.FAILED
        message = f"{result.error.kind}: {result.error.message}" if result.error else "scan failed"
    elif after == before:
        kind = None
    else:
        kind = _CHANGE_TO.get(after or "")
    if kind is None:
        return None
    return Change(
        name=version.name,
        version=version.version,
        kind=kind,
        before=before,
        after=after,
        verdict=result.verdict.value,
        score=result.score,
        reason=outcome.planned.reason,
        message=message,
    )


_CHANGE_TO = {
    Action.BLOCK.value: ChangeKind.NEWLY_BLOCKED,
    Action.WARN.value: ChangeKind.NEWLY_WARNED,
    Action.ALLOW.value: ChangeKind.NEWLY_ALLOWED,
}


@dataclass(frozen=True)
class RescanSummary:
    considered: int
    planned: tuple[PlannedScan, ...]
    scanned: tuple[str, ...]  # models:/name/version of each version scanned, in name and version order
    skipped: tuple[tuple[str, str, str], ...]  # (name, version, why): another scanner (serve) has it
    changes: tuple[Change, ...]
    seconds: float
    executor: str

    @property
    def newly_blocked(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind is ChangeKind.NEWLY_BLOCKED)

    @property
    def failed(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind is ChangeKind.FAILED)


def summarise(
    considered: int,
    planned: Sequence[PlannedScan],
    outcomes: Sequence[Outcome],
    skipped: Sequence[tuple[str, str, str]],
    *,
    seconds: float,
    executor: str,
) -> RescanSummary:
    ordered = sorted(outcomes, key=lambda o: (o.planned.version.name, _version_order(o.planned.version.version)))
    changes = tuple(change for change in map(change_of, ordered) if change is not None)
    return RescanSummary(
        considered=considered,
        planned=tuple(planned),
        scanned=tuple(o.planned.version.uri for o in ordered),
        skipped=tuple(skipped),
        changes=changes,
        seconds=seconds,
        executor=executor,
    )


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


def summary_as_json(summary: RescanSummary) -> str:
    document = {
        "schema": RESCAN_REPORT_SCHEMA,
        "executor": summary.executor,
        "considered": summary.considered,
        "planned": len(summary.planned),
        "scanned": len(summary.scanned),
        "seconds": round(summary.seconds, 3),
        "reasons": _count(p.reason.value for p in summary.planned),
        "plan": [{"version": p.version.uri, "reason": p.reason.value} for p in summary.planned],
        "rescanned": list(summary.scanned),
        "skipped": [{"name": n, "version": v, "why": why} for n, v, why in summary.skipped],
        "changes": [
            {
                "name": c.name,
                "version": c.version,
                "change": c.kind.value,
                "before": c.before,
                "after": c.after,
                "verdict": c.verdict,
                "score": c.score,
                "reason": c.reason.value,
                "message": c.message,
            }
            for c in summary.changes
        ],
    }
    return json.dumps(document, indent=2) + "\n"


_HEADINGS = {
    ChangeKind.NEWLY_BLOCKED: "Newly blocked",
    ChangeKind.NEWLY_WARNED: "Newly warned",
    ChangeKind.NEWLY_ALLOWED: "Newly allowed",
    ChangeKind.FAILED: "Could not be scanned",
}


def summary_as_markdown(summary: RescanSummary) -> str:
    lines = [
        "# model-scanner re-scan",
        "",
        f"{len(summary.scanned)} of {summary.considered} registered versions re-scanned "
        f"({summary.executor} executor, {summary.seconds:.1f} s); {len(summary.changes)} changed.",
    ]
    reasons = _count(p.reason.value for p in summary.planned)
    if reasons:
        lines.append("Why: " + ", ".join(f"{why} {n}" for why, n in sorted(reasons.items())) + ".")
    for kind, heading in _HEADINGS.items():
        rows = [c for c in summary.changes if c.kind is kind]
        if not rows:
            continue
        lines += ["", f"## {heading} ({len(rows)})", "", "| model | version | before | after | verdict | score |"]
        lines.append("|---|---|---|---|---|---|")
        for c in rows:
            score = "" if c.score is None else f"{c.score:.3f}"
            after = c.after or (c.message or "error").replace("|", "\\|")
            lines.append(f"| {c.name} | {c.version} | {c.before or '-'} | {after} | {c.verdict} | {score} |")
    if summary.skipped:
        lines += ["", f"Skipped {len(summary.skipped)} version(s) another scanner is handling."]
    return "\n".join(lines) + "\n"


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
