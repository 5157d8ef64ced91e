"""Judging one scan result for one promotion: a pure function of (policy, result, target, today) -> Decision.

Every rule whose match covers the promotion is in scope; those whose conditions hold fire. Beside the rules, within
any rule's scope, the policy checks that the model was scanned at all and by its required detectors (fail-closed).
The most severe action that fired wins (block > warn > allow); a block from a waived rule becomes a warning while the
waiver lasts. Every decision carries its reasons, the winning ones first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from scanner.findings import Action, Decision, ScanResult, Status, Verdict
from scanner.policy.model import (
    FAIL_CLOSED_RULE,
    REQUIRED_DETECTORS_RULE,
    UNSCANNED,
    Condition,
    Policy,
    PromotionTarget,
    Rule,
    report_key,
)

SEVERITY = {Action.ALLOW: 0, Action.WARN: 1, Action.BLOCK: 2}


@dataclass(frozen=True)
class _Subject:
    """What a rule looks at: the fused result, or one detector's."""

    what: str
    status: str
    score: float | None
    verdict: Verdict | None


@dataclass(frozen=True)
class _Firing:
    rule_id: str
    action: Action
    reason: str


def evaluate(
    policy: Policy, result: ScanResult | None, target: PromotionTarget, *, today: dt.date | None = None
) -> Decision:
    """Decide what happens to `target` given `result` (None: the model was never scanned)."""
    today = today or dt.date.today()
    covering = [rule for rule in policy.rules if rule.match.covers(target)]
    firings = [_fire(rule, result, target) for rule in covering if _holds(rule.when, _subject(result, rule))]
    if covering:
        firings.extend(_fail_closed(policy, result))
    firings, notes = _apply_waivers(policy, firings, result, target, today)
    if not firings:
        return Decision(Action.ALLOW, (_why_allowed(policy, result, target, bool(covering)), *notes))
    top = max(firings, key=lambda firing: SEVERITY[firing.action])
    ordered = sorted(firings, key=lambda firing: -SEVERITY[firing.action])  # stable: file order within an action
    return Decision(top.action, (*(firing.reason for firing in ordered), *notes), rule=top.rule_id)


def _subject(result: ScanResult | None, rule: Rule) -> _Subject:
    detector = rule.match.detector
    if detector is None:
        if result is None:
            return _Subject("model", UNSCANNED, None, None)
        return _Subject("model", result.status.value, result.score, result.verdict)
    found = None if result is None else result.detectors.get(report_key(detector))
    if found is None:
        return _Subject(f"detector {detector}", UNSCANNED, None, None)
    return _Subject(f"detector {detector}", found.status.value, found.score, None)


def _holds(condition: Condition | None, subject: _Subject) -> bool:
    if condition is None:
        return True
    if condition.statuses and subject.status not in condition.statuses:
        return False
    if condition.verdicts and subject.verdict not in condition.verdicts:
        return False
    if condition.score_at_least is not None and (subject.score is None or subject.score < condition.score_at_least):
        return False
    return condition.score_below is None or (subject.score is not None and subject.score < condition.score_below)


def _fire(rule: Rule, result: ScanResult | None, target: PromotionTarget) -> _Firing:
    subject = _subject(result, rule)
    facts = [f"status {subject.status}"]
    if subject.verdict is not None:
        facts.append(f"verdict {subject.verdict.value}")
    if subject.score is not None:
        facts.append(f"score {subject.score:.3f}")
    about = f" ({rule.description})" if rule.description else ""
    verdict = f"{rule.action.value} for the {target.describe()}"
    reason = f"rule {rule.id}{about}: {subject.what} has {', '.join(facts)}; {verdict}"
    return _Firing(rule.id, rule.action, reason)


def _fail_closed(policy: Policy, result: ScanResult | None) -> Iterator[_Firing]:
    action = Action.BLOCK if policy.fail_closed else Action.WARN
    stance = "the policy fails closed" if policy.fail_closed else "the policy does not fail closed, so only a warning"
    if result is None:
        yield _Firing(FAIL_CLOSED_RULE, action, f"{FAIL_CLOSED_RULE}: the model was never scanned; {stance}")
        return
    if result.status is Status.ERROR:
        what = f"{result.error.kind}: {result.error.message}" if result.error else "unknown error"
        yield _Firing(
            FAIL_CLOSED_RULE, action, f"{FAIL_CLOSED_RULE}: the model could not be scanned ({what}); {stance}"
        )
        return
    for detector in policy.required_detectors:
        found = result.detectors.get(report_key(detector))
        if found is not None and found.status is Status.SCANNED:
            continue
        state = UNSCANNED if found is None else found.status.value
        why = f": {found.reason}" if found is not None and found.reason else ""
        yield _Firing(
            REQUIRED_DETECTORS_RULE,
            action,
            f"{REQUIRED_DETECTORS_RULE}: required detector {detector} did not scan the model ({state}{why}); {stance}",
        )


def _apply_waivers(
    policy: Policy, firings: list[_Firing], result: ScanResult | None, target: PromotionTarget, today: dt.date
) -> tuple[list[_Firing], list[str]]:
    sha256 = None if result is None else result.sha256
    waived: list[_Firing] = []
    notes: list[str] = []
    for firing in firings:
        if firing.action is not Action.BLOCK:
            waived.append(firing)
            continue
        covering = [w for w in policy.waivers if w.covers(target.model_name, sha256, firing.rule_id)]
        active = next((w for w in covering if not w.expired(today)), None)
        if active is not None:
            waived.append(
                _Firing(firing.rule_id, Action.WARN, f"{firing.reason}; waived to a warning by {active.describe()}")
            )
            continue
        waived.append(firing)
        notes.extend(
            f"{w.describe()} expired on {w.expires.isoformat()} and no longer applies to {firing.rule_id}"
            for w in covering
        )
    return waived, notes


def _why_allowed(policy: Policy, result: ScanResult | None, target: PromotionTarget, in_scope: bool) -> str:
    if not in_scope:
        return f"policy {policy.name} has no rule for the {target.describe()}: allowed"
    if result is None:
        return f"no rule of policy {policy.name} fired for the {target.describe()}: allowed"
    score = "none" if result.score is None else f"{result.score:.3f}"
    return (
        f"no rule of policy {policy.name} fired for the {target.describe()} "
        f"(status {result.status.value}, verdict {result.verdict.value}, score {score}): allowed"
    )
